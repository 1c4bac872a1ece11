"""Fill-mask with GAU-alpha's tied MLM head: predict the characters at ``[MASK]``.

Command: ``gau-alpha fill-mask --model-dir DIR "北京是中国的[MASK][MASK]。"``
"""
from __future__ import annotations

import argparse
import os
from typing import Any, List, Tuple

import numpy as np

MASK = "[MASK]"


def encode_with_masks(tokenizer: Any, text: str, mask: str = MASK) -> Tuple[List[int], List[int]]:
    """Token ids of ``[CLS] text [SEP]`` with each ``[MASK]`` marker as the mask id.

    Returns ``(token_ids, mask_positions)``. Raises ValueError if there is no marker.
    """
    pieces = text.split(mask)
    if len(pieces) < 2:
        raise ValueError("text %r contains no %s marker" % (text, mask))
    mask_id = tokenizer.token_to_id(mask)
    token_ids, positions = [tokenizer.token_to_id("[CLS]")], []
    for index, piece in enumerate(pieces):
        if piece:
            token_ids.extend(tokenizer.encode(piece)[0][1:-1])
        if index < len(pieces) - 1:
            positions.append(len(token_ids))
            token_ids.append(mask_id)
    token_ids.append(tokenizer.token_to_id("[SEP]"))
    return token_ids, positions


def fill_mask(model: Any, tokenizer: Any, text: str, top_k: int = 1) -> List[List[Tuple[str, float]]]:
    """For each ``[MASK]`` in ``text``, the ``top_k`` (token, probability) predictions.

    Args:
        model: a GAU-alpha Keras model built with ``with_mlm=True`` (probabilities
            (1, N, vocab)) or ``with_mlm='linear'`` (logits; a softmax is applied here).
        tokenizer: bert4keras ``Tokenizer`` or :class:`gau_alpha.tokenization.FastTokenizer`.
    """
    token_ids, positions = encode_with_masks(tokenizer, text)
    tokens = np.array([token_ids])
    output = np.asarray(model.predict([tokens, np.zeros_like(tokens)], verbose=0))[0]
    if not np.allclose(output.sum(-1), 1.0, atol=1e-3):
        output = np.exp(output - output.max(-1, keepdims=True))
        output /= output.sum(-1, keepdims=True)
    results = []
    for position in positions:
        best = np.argsort(-output[position])[:top_k]
        results.append([(tokenizer.id_to_token(int(i)), float(output[position, i])) for i in best])
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="text with one or more [MASK] markers")
    parser.add_argument("--model-dir", required=True, help="release-layout directory (bert_config.json, bert_model.ckpt.*, vocab.txt)")
    parser.add_argument("--top-k", type=int, default=5)


def run(args: argparse.Namespace) -> int:
    import gau_alpha
    from gau_alpha.tokenization import load_tokenizer

    config = os.path.join(args.model_dir, "bert_config.json")
    vocab = os.path.join(args.model_dir, "vocab.txt")
    model = gau_alpha.build_transformer_model(config, args.model_dir, with_mlm=True)
    tokenizer = load_tokenizer(vocab if os.path.exists(vocab) else None)
    for index, predictions in enumerate(fill_mask(model, tokenizer, args.text, args.top_k)):
        shown = "  ".join("%s %.3f" % (token, p) for token, p in predictions)
        print("[MASK] %d: %s" % (index + 1, shown))
    return 0
