"""Fill-mask with GAU-alpha's tied MLM head: predict the characters at ``[MASK]``.

Command: ``gau-alpha fill-mask --model-dir DIR "北京是中国的[MASK][MASK]。"``

Every bad input is refused with one line before the model is built: a missing file in DIR
(``vocab.txt`` included: the release vocab is never used in its place), a vocab whose line
count differs from ``vocab_size`` (``--allow-larger-embedding`` accepts fewer lines), an
empty text or one without ``[MASK]``, ``--top-k`` below 1, a text longer than the config's
``max_position_embeddings``, a checkpoint that does not fit the config (layers, shapes).
A checkpoint holding NaN/Inf is refused when it is loaded (``--allow-nonfinite`` loads it
with a warning).
Token ids are below ``vocab_size`` by construction: they are line numbers of ``vocab.txt``,
which has at most ``vocab_size`` lines.
"""
from __future__ import annotations

import argparse
from typing import Any, List, Mapping, Tuple

import numpy as np

from gau_alpha.argtypes import positive_int
from gau_alpha.errors import ConfigError
from gau_alpha.model_options import add_model_arguments, model_overrides

MASK = "[MASK]"


def encode_with_masks(tokenizer: Any, text: str, mask: str = MASK) -> Tuple[List[int], List[int]]:
    """Token ids of ``[CLS] text [SEP]`` with each ``[MASK]`` marker as the mask id.

    Returns ``(token_ids, mask_positions)``.

    Raises:
        ConfigError (a ValueError): the text is empty or has no marker.
    """
    if not text.strip():
        raise ConfigError("the text is empty; give a sentence with at least one %s" % mask)
    pieces = text.split(mask)
    if len(pieces) < 2:
        raise ConfigError("text %r contains no %s marker" % (text, mask))
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


def check_text_length(token_ids: List[int], config: Mapping[str, Any], config_path: Any) -> None:
    """The encoded text fits the model.

    GAU-alpha has no position table (RoPE), so only a config that declares
    ``max_position_embeddings`` sets a limit.

    Raises:
        ConfigError: naming the length, the limit and the config file.
    """
    limit = config.get("max_position_embeddings")
    if limit is not None and len(token_ids) > limit:
        raise ConfigError(
            "the text is %d tokens long with [CLS] and [SEP]; the model takes at most %d "
            "(max_position_embeddings in %s)" % (len(token_ids), limit, config_path)
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gau-alpha fill-mask``."""
    parser.add_argument("text", help="text with one or more [MASK] markers")
    parser.add_argument("--model-dir", required=True,
                        help="release-layout directory (bert_config.json, bert_model.ckpt.*, vocab.txt)")
    parser.add_argument("--top-k", type=positive_int, default=5, help="predictions per [MASK] (default 5)")
    parser.add_argument("--allow-larger-embedding", action="store_true",
                        help="accept a vocab.txt with fewer lines than the config's vocab_size "
                             "(an embedding padded beyond the vocab)")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="load checkpoint tensors holding NaN or infinite values (with a warning) "
                             "instead of refusing them")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the ``top_k`` predictions of each ``[MASK]``. The model directory (files, config,
    vocab size) and the text (markers, length) are checked before TensorFlow is loaded;
    problems raise one-line errors."""
    from gau_alpha.errors import ModelDirError
    from gau_alpha.model_dir import open_model_dir
    from gau_alpha.tokenization import load_tokenizer

    files = open_model_dir(args.model_dir, allow_larger_embedding=args.allow_larger_embedding)
    config = files.load_config()
    tokenizer = load_tokenizer(files.vocab, fast=True)  # the reference's ids, without TensorFlow
    if tokenizer.mask_id is None:  # the tokenizer itself refuses a vocab without [CLS] or [SEP]
        raise ModelDirError("%s lacks the special token(s) %s" % (files.vocab, MASK))
    token_ids, _ = encode_with_masks(tokenizer, args.text)
    check_text_length(token_ids, config, files.config)

    import gau_alpha

    model = gau_alpha.build_transformer_model(
        str(files.config), str(files.checkpoint), with_mlm=True, allow_nonfinite=args.allow_nonfinite,
        **model_overrides(args),
    )
    for index, predictions in enumerate(fill_mask(model, tokenizer, args.text, args.top_k)):
        shown = "  ".join("%s %.3f" % (token, p) for token, p in predictions)
        print("[MASK] %d: %s" % (index + 1, shown))
    return 0
