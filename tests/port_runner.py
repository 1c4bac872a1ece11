"""Run the PyTorch port of GAU-alpha on a padded batch; used by tests/test_convert.py.

Runs under ``.venv-port/bin/python -I`` (isolated: the port's package is also called
``gau_alpha``, so this repository must not be on ``sys.path``). Needs only the port,
torch and numpy.

Usage::

    python -I port_runner.py MODEL_DIR TOKEN_IDS.npy SEGMENT_IDS.npy OUT_DIR

Loads ``GAUAlphaModel.from_pretrained(MODEL_DIR)`` in eval mode, runs the batch
(attention mask = token id != 0, the port's own default made explicit) and writes:

- ``OUT_DIR/last_hidden_state.npy``: (B, N, H) float32;
- ``OUT_DIR/mlm_logits.npy``: (B, N, V) from ``GAUAlphaForMaskedLM.from_pretrained(MODEL_DIR)``;
- ``OUT_DIR/loading.json``: missing/unexpected/mismatched keys reported by transformers for
  both classes, whether the MLM decoder is tied to the embeddings, and the port config's
  ``layer_norm_eps`` and ``max_position_embeddings``.
"""
from __future__ import annotations

import json
import os
import sys


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    model_dir, tokens_path, segments_path, out_dir = argv
    import numpy as np
    import torch
    from gau_alpha import GAUAlphaForMaskedLM, GAUAlphaModel

    if not hasattr(GAUAlphaModel, "from_pretrained"):
        raise SystemExit("imported the wrong gau_alpha package: %s" % GAUAlphaModel)
    torch.manual_seed(0)
    tokens = torch.from_numpy(np.load(tokens_path).astype("int64"))
    segments = torch.from_numpy(np.load(segments_path).astype("int64"))
    mask = (tokens != 0).long()

    model, info = GAUAlphaModel.from_pretrained(model_dir, output_loading_info=True)
    model.eval()
    with torch.no_grad():
        hidden = model(input_ids=tokens, attention_mask=mask, token_type_ids=segments).last_hidden_state

    mlm, mlm_info = GAUAlphaForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    mlm.eval()
    with torch.no_grad():
        logits = mlm(input_ids=tokens, attention_mask=mask, token_type_ids=segments).logits
    decoder = mlm.cls.predictions.decoder.weight
    embeddings = mlm.gau_alpha.embeddings.word_embeddings.weight

    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "last_hidden_state.npy"), hidden.numpy().astype("float32"))
    np.save(os.path.join(out_dir, "mlm_logits.npy"), logits.numpy().astype("float32"))

    def plain(loading):
        return {k: sorted(str(x) for x in v) for k, v in loading.items()}

    report = {
        "model": plain(info),
        "mlm": plain(mlm_info),
        "decoder_tied": bool(decoder.data_ptr() == embeddings.data_ptr() and torch.equal(decoder, embeddings)),
        "layer_norm_eps": model.config.layer_norm_eps,
        "max_position_embeddings": model.config.max_position_embeddings,
        "torch": torch.__version__,
    }
    with open(os.path.join(out_dir, "loading.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
