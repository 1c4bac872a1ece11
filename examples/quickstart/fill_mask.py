#!/usr/bin/env python
"""The README quick start: GAU-alpha's MLM head fills in [MASK] tokens.

    python examples/quickstart/fill_mask.py --model-dir weights/chinese_GAU-alpha-char_L-24_H-768
    python examples/quickstart/fill_mask.py "北京是中国的[MASK][MASK]。" --top-k 5 --model-dir ...

Without ``--model-dir`` a small random GAU-alpha is built (its guesses are random: it shows
the code path only). The same as ``gau-alpha fill-mask --model-dir DIR TEXT``.
"""
import argparse
import tempfile
from pathlib import Path

import gau_alpha  # noqa: F401  (first: selects tf-keras and adapts bert4keras)
from gau_alpha import build_transformer_model
from gau_alpha.fill_mask import fill_mask
from gau_alpha.model_dir import create_random_model_dir, open_model_dir
from gau_alpha.tokenization import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description="Fill in [MASK] tokens with GAU-alpha's MLM head.")
    parser.add_argument("text", nargs="?", default="北京是中国的[MASK][MASK]。")
    parser.add_argument("--model-dir", type=Path, help="the release (default: a small random GAU-alpha)")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        release = open_model_dir(args.model_dir) if args.model_dir else create_random_model_dir(Path(scratch) / "random")
        model = build_transformer_model(str(release.config), str(release.checkpoint), model="gau_alpha", with_mlm=True)
        tokenizer = load_tokenizer(release.vocab)  # bert4keras's Tokenizer, lower-cased
    predictions = fill_mask(model, tokenizer, args.text, top_k=args.top_k)
    assert len(predictions) == args.text.count("[MASK]"), predictions  # one list per [MASK]
    print(args.text)
    for position, candidates in enumerate(predictions, start=1):
        print("[MASK] %d: %s" % (position, "  ".join("%s %.3f" % pair for pair in candidates)))


if __name__ == "__main__":
    main()
