#!/usr/bin/env python
"""Sentence similarity from pooled GAU-alpha features, without fine-tuning, on afqmc.

    python examples/quickstart/similarity_afqmc.py               # bundled afqmc sample, small random model
    python examples/quickstart/similarity_afqmc.py --model-dir weights/chinese_GAU-alpha-char_L-24_H-768 \\
        --data-dir /data/clue

Each sentence becomes the mean of its tokens' hidden states; a pair's similarity is the
cosine of its two vectors. The threshold that best separates the dev pairs labelled 1
(same meaning) from 0 is chosen on dev; it labels the test pairs, written as the afqmc
submission file. (The fine-tuned recipe, examples/clue/sentence_pair.py, scores far higher.)
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
from gau_alpha import build_transformer_model
from gau_alpha.clue import accuracy, load_split, write_submission
from gau_alpha.clue.features import make_batches, pad_arrays
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.resources import clue_sample_dir
from gau_alpha.tokenization import load_tokenizer


def sentence_vectors(encoder, tokenizer, sentences, maxlen, batch_size=64):
    """Mean-pooled hidden states of the real tokens, L2-normalised: (len(sentences), H)."""
    encoded = [np.array(tokenizer.encode(s, maxlen=maxlen)[0], np.int32) for s in sentences]
    vectors = [None] * len(encoded)
    for batch in make_batches([len(ids) for ids in encoded], batch_size):  # similar lengths together
        token_ids = pad_arrays([encoded[i] for i in batch])
        hidden = encoder.predict_on_batch([token_ids, np.zeros_like(token_ids)])  # (B, N, H)
        mask = (token_ids > 0)[..., None]
        for i, pooled in zip(batch, (hidden * mask).sum(1) / mask.sum(1)):
            vectors[i] = pooled / np.linalg.norm(pooled)
    return np.stack(vectors)


def cosines(encoder, tokenizer, examples, maxlen):
    first = sentence_vectors(encoder, tokenizer, [e.text_a for e in examples], maxlen)
    second = sentence_vectors(encoder, tokenizer, [e.text_b for e in examples], maxlen)
    return (first * second).sum(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description="Zero-shot afqmc with cosine similarity of pooled features.")
    parser.add_argument("--data-dir", type=Path, help="CLUE data (default: the bundled sample)")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/example-similarity"))
    parser.add_argument("--maxlen", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        release = open_model_dir(args.model_dir) if args.model_dir else create_random_model_dir(Path(scratch) / "random")
        encoder = build_transformer_model(str(release.config), str(release.checkpoint), model="gau_alpha")
        tokenizer = load_tokenizer(release.vocab, fast=True)
    data_dir = args.data_dir or clue_sample_dir("afqmc")
    dev, test = load_split("afqmc", data_dir, "dev"), load_split("afqmc", data_dir, "test")

    dev_cosines, golds = cosines(encoder, tokenizer, dev, args.maxlen), [e.label for e in dev]
    def labelled(values, threshold):
        return ["1" if value >= threshold else "0" for value in values]
    threshold = max(np.unique(dev_cosines), key=lambda t: accuracy(golds, labelled(dev_cosines, t)))
    score = 100.0 * accuracy(golds, labelled(dev_cosines, threshold))
    print("dev: mean cosine %.4f (label 1) vs %.4f (label 0); threshold %.4f; accuracy %.2f (on dev itself)"
          % (dev_cosines[np.array(golds) == "1"].mean(), dev_cosines[np.array(golds) == "0"].mean(), threshold, score))
    predictions = labelled(cosines(encoder, tokenizer, test, args.maxlen), threshold)
    print("submission: %s" % write_submission("afqmc", test, predictions, args.output_dir / "submission"))


if __name__ == "__main__":
    main()
