"""Where Keras 3 GAU-alpha weights come from, and strict loading into a backbone.

``from_preset(path)`` of every class in :mod:`gau_alpha.keras3` accepts three kinds of directory:

============  ==========================================================  =======================
format        files                                                       read by
============  ==========================================================  =======================
``release``   ``bert_config.json``, ``vocab.txt``, ``bert_model.ckpt.*``   :mod:`.tf1_reader`
              (the released TF1 checkpoint; :mod:`gau_alpha.model_dir`)   (numpy, no TensorFlow)
``torch``     ``model.safetensors`` (or ``pytorch_model.bin``),            :mod:`gau_alpha.convert.
              ``config.json`` (``model_type`` gau_alpha), ``vocab.txt``    torch_format`
``keras_hub`` ``config.json`` with ``registered_name``, ``model.weights.h5``, keras-hub's own loader
              ``tokenizer.json``, ``assets/`` (``save_to_preset``)
============  ==========================================================  =======================

Loading is strict: every backbone tensor of :func:`gau_alpha.spec.backbone_tensors` must be in
the checkpoint with its shape, and the checkpoint may hold nothing else (head tensors
``head/...`` excepted, which the converter writes for fine-tuned heads); one
:class:`~gau_alpha.errors.CheckpointError` lists every missing, mis-shaped and unused variable by
name before anything is assigned. Keras variables are found by their path
``<spec keras_layer>/<spec keras_weight>``, so the names come from the spec alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from gau_alpha import spec
from gau_alpha.errors import CheckpointError, ConfigError, ModelDirError

__all__ = [
    "RELEASE",
    "TORCH",
    "KERAS_HUB",
    "preset_format",
    "backbone_kwargs",
    "read_checkpoint",
    "assign_tf1_tensors",
    "load_backbone",
    "vocabulary_path",
]

RELEASE, TORCH, KERAS_HUB = "release", "torch", "keras_hub"
HEAD_PREFIX = "head/"


def preset_format(preset: Any) -> str:
    """``release``, ``torch`` or ``keras_hub`` for a local directory; anything that is not a
    local directory (a keras-hub handle such as ``kaggle://...``) is ``keras_hub``.

    Raises:
        ModelDirError: a local directory that is none of the three (naming its files).
    """
    path = Path(str(preset))
    if not path.is_dir():
        if "://" in str(preset):
            return KERAS_HUB
        raise ModelDirError("preset %s does not exist or is not a directory" % preset)
    names = {p.name for p in path.iterdir()}
    if "bert_config.json" in names and any(n.endswith(".index") for n in names):
        return RELEASE
    if names & {"model.safetensors", "pytorch_model.bin"} and "config.json" in names:
        return TORCH
    if "config.json" in names:
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError("%s: not valid JSON: %s" % (path / "config.json", error)) from None
        if isinstance(config, dict) and "registered_name" in config:
            return KERAS_HUB
    raise ModelDirError(
        "%s is not a GAU-alpha model directory: expected a release (bert_config.json + bert_model.ckpt.*), "
        "the torch layout (model.safetensors + config.json) or a keras-hub preset (config.json from "
        "save_to_preset); it holds %s" % (path, ", ".join(sorted(names)) or "nothing"))


def backbone_kwargs(bert_config: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """``GAUAlphaBackbone`` arguments from a bert4keras ``bert_config.json``.

    Raises:
        ConfigError: a size is missing or invalid, or ``embedding_size`` differs from
            ``hidden_size`` (an embedding mapping, which the Keras 3 backbone does not build).
    """
    dims = spec.ModelDims.from_config(bert_config, source)
    if dims.embedding_width != dims.hidden_size:
        raise ConfigError("%s: embedding_size %d differs from hidden_size %d; the Keras 3 GAU-alpha has no "
                          "embedding mapping" % (source, dims.embedding_width, dims.hidden_size))
    kwargs = dict(
        vocabulary_size=dims.vocab_size,
        num_layers=dims.num_hidden_layers,
        hidden_dim=dims.hidden_size,
        intermediate_dim=dims.intermediate_size,
        key_size=dims.attention_key_size,
        num_segments=dims.type_vocab_size,
        dropout=float(bert_config.get("hidden_dropout_prob", 0.1) or 0.0),
        attention_dropout=float(bert_config.get("attention_probs_dropout_prob", 0.1) or 0.0),
        activation=bert_config.get("hidden_act", "swish"),
        normalization=bert_config.get("normalization", "softmax_plus"),
    )
    if "softmax_plus_min_length" in bert_config:
        kwargs["softmax_plus_min_length"] = bert_config["softmax_plus_min_length"]
    return kwargs


def read_checkpoint(preset: Any) -> Tuple[Dict[str, Any], Dict[str, np.ndarray], Path]:
    """``(bert_config, {TF1 name: array}, vocab.txt path)`` of a release or torch directory.

    The release's checkpoint is read with :mod:`gau_alpha.keras3.tf1_reader` (numpy only);
    the torch layout with :mod:`gau_alpha.convert.torch_format` (safetensors; TF1 names).
    """
    path = Path(str(preset))
    kind = preset_format(path)
    if kind == RELEASE:
        from gau_alpha.keras3.tf1_reader import read_tf1_tensors
        from gau_alpha.model_dir import open_model_dir

        files = open_model_dir(path)
        return files.load_config(), read_tf1_tensors(files.checkpoint), files.vocab
    if kind == TORCH:
        from gau_alpha.convert import torch_format

        bundle = torch_format.read(path)
        vocab = path / "vocab.txt"
        if not vocab.is_file():
            raise ModelDirError("%s lacks vocab.txt" % path)
        return dict(bundle.config), dict(bundle.tensors), vocab
    raise ModelDirError("%s is a keras-hub preset; load it with from_preset" % path)


def _variables_by_path(model: Any) -> Dict[str, Any]:
    return {variable.path: variable for variable in model.weights}


def assign_tf1_tensors(backbone: Any, tensors: Mapping[str, np.ndarray], source: str,
                       allow_head_tensors: bool = True) -> List[str]:
    """Assign a checkpoint (TF1 names, :mod:`gau_alpha.spec`) to ``backbone``, strictly.

    Returns:
        the head tensors (``head/...``) that were present and not assigned.
    Raises:
        CheckpointError: listing every missing, mis-shaped and unused variable, before
            anything is assigned.
    """
    expected = spec.backbone_tensors(backbone.dims)
    variables = _variables_by_path(backbone)
    problems, plan = [], []
    for tensor in expected:
        path = "%s/%s" % (tensor.keras_layer, tensor.keras_weight)
        variable = variables.get(path)
        if variable is None:
            problems.append("the Keras model has no variable %s (for %s)" % (path, tensor.tf1))
            continue
        if tensor.tf1 not in tensors:
            problems.append("missing variable %s (for %s, shape %s)" % (tensor.tf1, path, tensor.shape))
            continue
        value = np.asarray(tensors[tensor.tf1])
        if tuple(value.shape) != tuple(variable.shape):
            problems.append("shape mismatch for variable %s: checkpoint %s, model %s"
                            % (tensor.tf1, tuple(value.shape), tuple(variable.shape)))
            continue
        plan.append((variable, value))
    known = {tensor.tf1 for tensor in expected}
    heads = sorted(n for n in tensors if n not in known and allow_head_tensors and n.startswith(HEAD_PREFIX))
    problems += ["unused checkpoint variable %s, shape %s" % (name, tuple(np.shape(tensors[name])))
                 for name in sorted(tensors) if name not in known and name not in heads]
    if problems:
        raise CheckpointError("%s does not fit the Keras 3 GAU-alpha (%d problem%s):\n  - %s"
                              % (source, len(problems), "" if len(problems) == 1 else "s", "\n  - ".join(problems)))
    for variable, value in plan:
        variable.assign(value.astype(variable.dtype))
    return heads


def load_backbone(preset: Any, load_weights: bool = True, backbone_cls: Optional[type] = None, **kwargs):
    """A ``GAUAlphaBackbone`` built from a release or torch directory's config (``kwargs``
    override it, e.g. ``dtype``), with its weights loaded strictly unless ``load_weights``
    is false."""
    if backbone_cls is None:
        from gau_alpha.keras3.backbone import GAUAlphaBackbone as backbone_cls
    path = Path(str(preset))
    if load_weights:
        config, tensors, _ = read_checkpoint(path)
    else:
        config, tensors = _config_only(path), {}
    arguments = backbone_kwargs(config, str(path))
    arguments.update(kwargs)
    backbone = backbone_cls(**arguments)
    if load_weights:
        assign_tf1_tensors(backbone, tensors, str(path))
    return backbone


def _config_only(path: Path) -> Dict[str, Any]:
    if preset_format(path) == RELEASE:
        from gau_alpha.model_dir import read_config

        return read_config(path / "bert_config.json")
    from gau_alpha.convert.torch_format import bert_config_from_port

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return bert_config_from_port(config, str(path / "config.json"))


def vocabulary_path(preset: Any) -> Path:
    """The ``vocab.txt`` of a release or torch directory."""
    path = Path(str(preset)) / "vocab.txt"
    if not path.is_file():
        raise ModelDirError("%s lacks vocab.txt" % path.parent)
    return path


def load_task(task_cls: type, preset: Any, load_weights: bool = True, **kwargs):
    """A task model (``GAUAlphaTextClassifier``, ``GAUAlphaMaskedLM`` ...) from a release or
    torch directory: its backbone loaded strictly, and (unless ``preprocessor`` is given) a
    preprocessor with the directory's vocab. Preprocessor options among ``kwargs``
    (``sequence_length``, ``truncate`` ...) go to the preprocessor, ``dtype`` to the backbone,
    the rest to the task."""
    import inspect

    from gau_alpha.keras3.backbone import GAUAlphaBackbone
    from gau_alpha.keras3.tokenizer import GAUAlphaTokenizer

    backbone_options = {key: kwargs.pop(key) for key in ("dtype",) if key in kwargs}
    backbone = GAUAlphaBackbone.from_preset(preset, load_weights=load_weights, **backbone_options)
    preprocessor_cls = getattr(task_cls, "preprocessor_cls", None)
    preprocessor_options = {}
    if preprocessor_cls is not None:
        names = set(inspect.signature(preprocessor_cls.__init__).parameters) - {"self", "tokenizer", "kwargs"}
        preprocessor_options = {key: kwargs.pop(key) for key in list(kwargs) if key in names}
    if "preprocessor" not in kwargs and preprocessor_cls is not None:
        kwargs["preprocessor"] = preprocessor_cls(tokenizer=GAUAlphaTokenizer.from_preset(preset),
                                                  **preprocessor_options)
    return task_cls(backbone=backbone, **kwargs)
