#!/usr/bin/env python
"""The README quick start: GAU-alpha as a feature extractor, hidden states (batch, length, hidden).

    python examples/quickstart/features.py --model-dir weights/chinese_GAU-alpha-char_L-24_H-768
    python examples/quickstart/features.py "今天天气不错" "明天会下雨吗" --model-dir ...

Encodes the sentences as one zero-padded batch and prints the shape of the hidden states
and, per sentence, the norm of its first-token ([CLS]) state. Checks that padding does not
change a sentence's states (padding keys get no attention). Without ``--model-dir`` a small
random GAU-alpha is built.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
from gau_alpha import build_transformer_model
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.tokenization import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description="Hidden states of GAU-alpha for a batch of sentences.")
    parser.add_argument("sentences", nargs="*", default=["今天天气不错", "GAU-α 是一个中文预训练语言模型。"])
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        release = open_model_dir(args.model_dir) if args.model_dir else create_random_model_dir(Path(scratch) / "random")
        encoder = build_transformer_model(str(release.config), str(release.checkpoint), model="gau_alpha")
        tokenizer = load_tokenizer(release.vocab)
    encoded = [tokenizer.encode(sentence)[0] for sentence in args.sentences]
    width = max(map(len, encoded))
    token_ids = np.array([ids + [0] * (width - len(ids)) for ids in encoded])  # 0 is [PAD]
    hidden = encoder.predict([token_ids, np.zeros_like(token_ids)], verbose=0)  # (batch, length, hidden)
    print("hidden states:", hidden.shape)
    for sentence, ids, states in zip(args.sentences, encoded, hidden):
        alone = encoder.predict([np.array([ids]), np.zeros((1, len(ids)))], verbose=0)[0]
        np.testing.assert_allclose(states[: len(ids)], alone, rtol=1e-4, atol=1e-4)  # padding changes nothing
        print("%s: %d tokens, |[CLS] state| = %.4f" % (sentence, len(ids), np.linalg.norm(states[0])))


if __name__ == "__main__":
    main()
