"""The ``torch`` format: what the PyTorch port (PyPI ``gau-alpha`` 0.0.3) loads.

Files:

- ``model.safetensors``: the state dict of the port's ``GAUAlphaModel`` (keys and transposes in
  :mod:`gau_alpha.convert.names`), written with ``safetensors.numpy`` (no torch needed),
  metadata ``{"format": "pt"}`` as transformers requires. Head tensors as ``head.*``.
  ``GAUAlphaModel.from_pretrained(dir)`` and ``GAUAlphaForMaskedLM.from_pretrained(dir)``
  both load it with no missing or unexpected key: the MLM decoder
  ``cls.predictions.decoder.weight`` is tied to the token embeddings, and the port re-ties it.
- ``config.json``: every field the port's ``GAUAlphaConfig`` reads (see :func:`port_config`),
  plus ``bert_config``, the bert4keras config verbatim, so that converting back is lossless.
- ``vocab.txt``.

Reading also accepts the port's published layout (backbone keys under ``gau_alpha.``, the
tied decoder stored) and a legacy ``pytorch_model.bin``. The latter is a pickle: it is read
only with PyTorch installed, only with ``torch.load(..., weights_only=True)``, and only when
there is no ``model.safetensors``. Nothing else is ever unpickled.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from gau_alpha.atomic import PathLike, write_json
from gau_alpha.convert.bundle import CheckpointBundle, ConversionError, dims_from_config, read_json, read_vocab, write_vocab
from gau_alpha.convert.names import check_tf1_tensors, tf1_to_torch, torch_to_tf1
from gau_alpha.model_dir import VOCAB_FILE
from gau_alpha.spec import TOKEN_EMBEDDINGS

NAME = "torch"
DESCRIPTION = "PyTorch port (gau-alpha 0.0.3): model.safetensors + config.json + vocab.txt"
WEIGHTS_FILE = "model.safetensors"
LEGACY_WEIGHTS_FILE = "pytorch_model.bin"
CONFIG_FILE = "config.json"
SAFETENSORS_METADATA = {"format": "pt"}

#: bert4keras's RMS-norm epsilon: ``K.epsilon()`` (1e-7). The port reads ``layer_norm_eps``
#: (its default and its published config say 1e-12); writing bert4keras's value makes the
#: port compute what the Keras model computes.
BERT4KERAS_EPSILON = 1e-7
#: The port precomputes its RoPE table for ``max_position_embeddings`` positions and fails on
#: longer inputs; the Keras model has no such limit. 4096 keeps the table small (2 MB for
#: key size 128) while allowing 8x the pre-training length.
DEFAULT_MAX_POSITION_EMBEDDINGS = 4096
#: Fields copied under the same name from ``bert_config.json`` into ``config.json``.
SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "attention_key_size",
    "type_vocab_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)
#: Fields the port reads that bert4keras configs do not have: the port's class defaults and
#: its published config, except ``layer_norm_eps`` (see ``BERT4KERAS_EPSILON``).
PORT_FIXED_FIELDS: Dict[str, Any] = {
    "architectures": ["GAUAlphaForMaskedLM"],
    "model_type": "gau_alpha",
    "use_bias": False,
    "attention_scale": True,
    "normalization": "softmax_plus",
    "layer_norm_eps": BERT4KERAS_EPSILON,
    "pad_token_id": 0,
    "initializer_range": 0.02,
    "gradient_checkpointing": False,
    "classifier_dropout": 0.1,
    "summary_type": "first",
}
#: Where the bert4keras config travels inside ``config.json``.
EMBEDDED_CONFIG_KEY = "bert_config"


def detect(directory: PathLike) -> List[str]:
    """The files of ``directory`` that mark this format."""
    directory = Path(directory)
    return [name for name in (WEIGHTS_FILE, LEGACY_WEIGHTS_FILE) if (directory / name).is_file()]


def is_own_file(name: str) -> bool:
    """Whether a file called ``name`` belongs to a directory of this format."""
    return name in (WEIGHTS_FILE, LEGACY_WEIGHTS_FILE, CONFIG_FILE, VOCAB_FILE)


# ------------------------------------------------------------------------- configs
def port_config(
    bert_config: Mapping[str, Any], dtype: str, max_position_embeddings: int = DEFAULT_MAX_POSITION_EMBEDDINGS
) -> Dict[str, Any]:
    """``config.json`` for the port from a bert4keras config.

    Args:
        bert_config: the bert4keras config (checked with ``dims_from_config``).
        dtype: the numpy name of the weights' dtype (``float32``), written as ``torch_dtype``.
        max_position_embeddings: length of the port's RoPE table.
    """
    dims_from_config(bert_config, "bert_config")
    config = dict(PORT_FIXED_FIELDS)
    for key in SHARED_FIELDS:
        if key in bert_config:
            config[key] = bert_config[key]
    config.setdefault("type_vocab_size", 2)
    config["embedding_size"] = bert_config["hidden_size"]
    config["normalization"] = bert_config.get("normalization", "softmax_plus")
    config["max_position_embeddings"] = int(max_position_embeddings)
    config["torch_dtype"] = dtype
    config[EMBEDDED_CONFIG_KEY] = dict(bert_config)
    return config


def bert_config_from_port(config: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """The bert4keras config of a port ``config.json``: the embedded ``bert_config`` when
    present (checked against the port fields), else derived from the port fields.

    Raises:
        ConversionError: naming ``source`` and each field that GAU-alpha in bert4keras cannot
            express (biases, no attention scale, a different embedding size, another model
            type) or that disagrees with the embedded ``bert_config``.
    """
    problems = []
    if config.get("model_type", "gau_alpha") != "gau_alpha":
        problems.append("model_type is %r, not 'gau_alpha'" % config.get("model_type"))
    if config.get("use_bias", False):
        problems.append("use_bias is true: the bert4keras GAU-alpha has no biases")
    if not config.get("attention_scale", True):
        problems.append("attention_scale is false: the bert4keras GAU-alpha always scales by 1/sqrt(key size)")
    hidden = config.get("hidden_size")
    if config.get("embedding_size", hidden) not in (None, hidden):
        problems.append("embedding_size %r differs from hidden_size %r" % (config.get("embedding_size"), hidden))
    derived: Dict[str, Any] = {
        "hidden_act": config.get("hidden_act", "swish"),
        "hidden_size": hidden,
        "hidden_dropout_prob": config.get("hidden_dropout_prob", 0.1),
        "attention_probs_dropout_prob": config.get("attention_probs_dropout_prob", 0.1),
        "num_attention_heads": 1,
        "attention_key_size": config.get("attention_key_size"),
        "intermediate_size": config.get("intermediate_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "type_vocab_size": config.get("type_vocab_size", 2),
        "vocab_size": config.get("vocab_size"),
    }
    normalization = config.get("normalization", "softmax_plus")
    if normalization != "softmax_plus":
        derived["normalization"] = normalization
    embedded = config.get(EMBEDDED_CONFIG_KEY)
    if embedded is not None:
        if not isinstance(embedded, dict):
            problems.append("%s must be a JSON object" % EMBEDDED_CONFIG_KEY)
        else:
            for key in SHARED_FIELDS + ("normalization",):
                mine = embedded.get(key, {"type_vocab_size": 2, "normalization": "softmax_plus"}.get(key))
                theirs = config.get(key, PORT_FIXED_FIELDS.get(key))
                if key in config and mine != theirs:
                    problems.append("%s is %r but %s.%s is %r" % (key, theirs, EMBEDDED_CONFIG_KEY, key, mine))
    if problems:
        raise ConversionError(
            "%s cannot be expressed as a bert4keras GAU-alpha config:\n  - %s" % (source, "\n  - ".join(problems))
        )
    result = dict(embedded) if embedded is not None else derived
    dims_from_config(result, source)
    return result


def _notes(config: Mapping[str, Any], source: str) -> List[str]:
    eps = config.get("layer_norm_eps", 1e-12)
    if eps != BERT4KERAS_EPSILON:
        return [
            "%s: layer_norm_eps is %g; bert4keras normalises with %g, so the Keras model's outputs "
            "differ from the port's at about the 1e-4 level" % (source, eps, BERT4KERAS_EPSILON)
        ]
    return []


# ------------------------------------------------------------------------- weights
def _load_safetensors(path: Path) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as error:  # SafetensorError for truncated headers/data, dtype errors
        raise ConversionError("cannot read %s (truncated or damaged?): %s" % (path, error)) from error


def _load_pickle_with_torch(path: Path) -> Dict[str, np.ndarray]:
    """A legacy ``pytorch_model.bin``, through ``torch.load(weights_only=True)`` only."""
    try:
        import torch
    except ImportError as error:
        raise ConversionError(
            "%s is a pickled PyTorch checkpoint and reading it needs PyTorch, which is not "
            "installed. Install the optional extra (pip install 'gau-alpha-keras[torch]'), or "
            "save the weights as model.safetensors with the port first. It is never unpickled "
            "without torch.load(weights_only=True)." % path
        ) from error
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConversionError("cannot read %s with torch.load(weights_only=True): %s" % (path, error)) from error
    if not isinstance(state, Mapping):
        raise ConversionError("%s does not hold a state dict (got %s)" % (path, type(state).__name__))
    arrays = {}
    for key, value in state.items():
        try:
            arrays[key] = value.detach().cpu().numpy()
        except Exception as error:  # bfloat16 and other dtypes numpy lacks
            raise ConversionError(
                "%s: tensor %s cannot be turned into a numpy array: %s" % (path, key, error)
            ) from error
    return arrays


def read(path: PathLike) -> CheckpointBundle:
    """Read a ``torch`` directory (``model.safetensors``, else ``pytorch_model.bin``).

    Raises:
        ConversionError: naming the file, for missing or damaged files, a legacy pickle
            without PyTorch, a config bert4keras cannot express, and every missing,
            mis-shaped or unknown key.
    """
    directory = Path(path)
    port = read_json(directory / CONFIG_FILE)
    config = bert_config_from_port(port, str(directory / CONFIG_FILE))
    dims = dims_from_config(config, str(directory / CONFIG_FILE))
    vocab = read_vocab(directory / VOCAB_FILE, dims)
    notes = _notes(port, str(directory / CONFIG_FILE))
    weights = directory / WEIGHTS_FILE
    if weights.is_file():
        state = _load_safetensors(weights)
        if (directory / LEGACY_WEIGHTS_FILE).exists():
            notes.append("ignored %s: %s is read instead" % (directory / LEGACY_WEIGHTS_FILE, WEIGHTS_FILE))
    elif (directory / LEGACY_WEIGHTS_FILE).is_file():
        weights = directory / LEGACY_WEIGHTS_FILE
        state = _load_pickle_with_torch(weights)
    else:
        raise ConversionError("%s holds neither %s nor %s" % (directory, WEIGHTS_FILE, LEGACY_WEIGHTS_FILE))
    tensors = torch_to_tf1(state, dims, str(weights))
    check_tf1_tensors(tensors, dims, str(weights))
    return CheckpointBundle(config=config, tensors=tensors, vocab=vocab, format=NAME, path=str(directory), notes=notes)


def write(
    bundle: CheckpointBundle,
    directory: PathLike,
    max_position_embeddings: Optional[int] = None,
) -> List[Path]:
    """Write ``bundle`` into the existing, empty ``directory``; returns the files written."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    dims = bundle.dims
    check_tf1_tensors(bundle.tensors, dims, "the checkpoint to write")
    state = tf1_to_torch(bundle.tensors, dims)
    weights = directory / WEIGHTS_FILE
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(weights), metadata=SAFETENSORS_METADATA)
    dtype = str(np.asarray(bundle.tensors[TOKEN_EMBEDDINGS]).dtype)
    config = port_config(bundle.config, dtype, max_position_embeddings or DEFAULT_MAX_POSITION_EMBEDDINGS)
    return [weights, write_json(directory / CONFIG_FILE, config), write_vocab(directory, bundle.vocab)]
