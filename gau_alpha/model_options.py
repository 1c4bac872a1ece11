"""Which keyword options a bert4keras model class takes, found by inspecting the class.

bert4keras passes every config value and override to the model class as a keyword argument
and silently ignores the ones nothing reads, so a misspelt override (``hiden_size=64``) used
to build the wrong model without a word. :func:`model_options` lists what a class really
takes: the parameters of ``__init__`` and ``build`` up its MRO (GAU-alpha's own
``normalization``, ``residual_attention_*``, ``allow_unused_weights`` ... included, since
they are parameters of our classes), the options bert4keras's ``insert_arguments`` decorator
adds (``version`` of T5, ``final_activation`` of GPT), and the BERT-family config keys that
``bert4keras.models.build_transformer_model`` translates. :func:`check_overrides` rejects
anything else with a suggestion; :func:`check_required` reports a missing required key
(``num_attention_heads`` ...) instead of bert4keras's ``TypeError``. Pure Python.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, FrozenSet, Iterable, Mapping, Set

from gau_alpha.errors import ConfigError

__all__ = [
    "CONFIG_FILE_KEYS", "BUILDER_FILLED", "ModelOptions", "model_options", "check_overrides", "check_required",
    "add_model_arguments", "model_overrides",
]

#: keys of a BERT-family ``bert_config.json`` that bert4keras's builder translates
#: (``max_position_embeddings`` -> ``max_position``, ``hidden_dropout_prob`` ->
#: ``dropout_rate``, ``attention_probs_dropout_prob`` -> ``attention_dropout_rate``,
#: ``type_vocab_size`` -> ``segment_vocab_size``) or tolerates (``initializer_range``)
CONFIG_FILE_KEYS: FrozenSet[str] = frozenset({
    "max_position_embeddings", "hidden_dropout_prob", "attention_probs_dropout_prob", "type_vocab_size",
    "initializer_range",
})
#: options bert4keras's builder always fills in (from the keys above, or a default)
BUILDER_FILLED: FrozenSet[str] = frozenset({"max_position", "dropout_rate", "attention_dropout_rate", "segment_vocab_size"})


@dataclass(frozen=True)
class ModelOptions:
    """The keyword options of a model class.

    Attributes:
        known: every option the class (or bert4keras's builder) reads.
        required: options without a default (a config must give them).
        refused: options the class explicitly rejects (bert4keras's ``delete_arguments``).
    """

    known: FrozenSet[str]
    required: FrozenSet[str]
    refused: FrozenSet[str]


def _is_bert4keras_decorator(function: Callable) -> bool:
    qualname = getattr(function, "__qualname__", "")
    return qualname.startswith(("insert_arguments.", "delete_arguments.")) and bool(function.__closure__)


def _collect(function: Callable, known: Set[str], required: Set[str], defaulted: Set[str], refused: Set[str]) -> None:
    """Add the keyword parameters of ``function`` (a method) to the sets, looking through
    bert4keras's ``insert_arguments``/``delete_arguments`` wrappers."""
    if _is_bert4keras_decorator(function):
        for cell in function.__closure__:
            value = cell.cell_contents
            if isinstance(value, dict):  # insert_arguments(**arguments): options with defaults
                known.update(value)
                defaulted.update(value)
            elif isinstance(value, tuple):  # delete_arguments(*arguments)
                refused.update(value)
            elif callable(value):
                _collect(value, known, required, defaulted, refused)
        return
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]  # without self
    except (TypeError, ValueError):
        return
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        known.add(parameter.name)
        if parameter.default is parameter.empty:
            if parameter.name not in defaulted:
                required.add(parameter.name)
        else:
            defaulted.add(parameter.name)


@functools.lru_cache(maxsize=None)
def model_options(model_class: type) -> ModelOptions:
    """The options of ``model_class`` (a bert4keras ``Transformer`` subclass), from the
    ``__init__`` and ``build`` signatures up its MRO plus :data:`CONFIG_FILE_KEYS`.

    A parameter that a more derived class gives a default is not required, even if a base
    class requires it."""
    known: Set[str] = set(CONFIG_FILE_KEYS)
    required: Set[str] = set()
    defaulted: Set[str] = set()
    refused: Set[str] = set()
    for klass in model_class.__mro__:
        if klass is object:
            continue
        for method in ("__init__", "build"):
            function = klass.__dict__.get(method)
            if function is not None:
                _collect(function, known, required, defaulted, refused)
    return ModelOptions(frozenset(known - refused), frozenset(required), frozenset(refused))


def check_overrides(overrides: Iterable[str], model_class: type, config_keys: Iterable[str] = ()) -> None:
    """Reject options ``model_class`` does not take.

    Args:
        overrides: the names of the keyword overrides given to the builder.
        model_class: the resolved model class.
        config_keys: keys of the config file (overriding one of them is always allowed).

    Raises:
        ConfigError: ``unknown option 'hiden_size'; did you mean 'hidden_size'?`` (one clause
            per unknown option, closest known name by :mod:`difflib`).
    """
    options = model_options(model_class)
    known = options.known | set(config_keys)
    problems = []
    for name in overrides:
        if name in known:
            continue
        if name in options.refused:
            problems.append("option %r is not accepted by %s" % (name, model_class.__name__))
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        problems.append(
            "unknown option %r; did you mean %r?" % (name, close[0]) if close
            else "unknown option %r: not an option of %s nor a key of its config" % (name, model_class.__name__)
        )
    if problems:
        raise ConfigError("; ".join(problems))


def check_required(config: Mapping[str, Any], model_class: type, source: str) -> None:
    """Every required option of ``model_class`` is in ``config`` and not None.

    Raises:
        ConfigError: ``<source>: missing key 'num_attention_heads'`` (every missing key).
    """
    required = model_options(model_class).required - BUILDER_FILLED
    missing = sorted(k for k in required if config.get(k) is None)
    if missing:
        raise ConfigError("%s: %s" % (source, "; ".join("missing key %r" % key for key in missing)))


# ------------------------------------------------------------------------ command line
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The run-time model options a command that builds GAU-alpha offers:
    ``--attention-block-size N`` (exact attention N queries at a time; memory linear in the
    sequence length, see :class:`gau_alpha.layers.GatedAttentionUnit`)."""
    from gau_alpha.argtypes import positive_int

    parser.add_argument(
        "--attention-block-size", type=positive_int, default=None, metavar="N",
        help="compute attention N queries at a time: the same results, with activation memory "
             "linear in the sequence length (for long texts; e.g. 512). Default: whole attention matrices",
    )


def model_overrides(args: argparse.Namespace) -> dict:
    """``build_transformer_model`` keywords from :func:`add_model_arguments`'s options
    (only those given, so a model's defaults stay its own)."""
    overrides = {}
    block_size = getattr(args, "attention_block_size", None)
    if block_size is not None:
        overrides["attention_block_size"] = block_size
    return overrides
