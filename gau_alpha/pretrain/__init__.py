"""Pre-training with whole-word masked language modelling (``gau-alpha pretrain``).

One job per module, in the order data flows:

============  ===============================================================================
module        its job
============  ===============================================================================
corpus        stream documents from JSON-lines / plain-text files, resumable at a cursor;
              check a whole corpus first (line-numbered errors)
masking       segment a document into words (rjieba), tokenize it with character offsets,
              group tokens into whole-word units; whole-word masking (15%, 80/10/10)
packing       pack documents into ``maxlen`` sequences, shuffle them in windows, cut global
              batches; the stream's position is a small JSON state (exact resume)
schedule      the piecewise-linear learning-rate multiplier {0:1, 160k:0.5, 640k:0.1, 1.28M:0.01}
settings      a run's settings; every input checked before anything is written
optimizer     LAMB (no bias correction, decoupled weight decay, layer adaptation); AdaFactor
trainer       the MLM model, the distributed train step (gradient accumulation, stateless
              dropout), evaluation, the TF1 export
checkpoint    checkpoints on disk (weights, optimizer state, stream position), atomically
reporting     ``metrics.json`` and ``pretrain_curve.png``
run           one run start to end: check, build, train, checkpoint, resume, export
cli           the ``gau-alpha pretrain`` command
============  ===============================================================================

Only ``optimizer`` and ``trainer`` import TensorFlow (``run`` imports them once the inputs are
checked); the rest is pure Python (NumPy, rjieba, tokenizers).
"""
