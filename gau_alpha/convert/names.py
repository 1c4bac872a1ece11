"""The TF1 <-> torch name map of GAU-alpha, and the head-tensor naming convention.

Backbone tensors (the released checkpoint; the MLM head is tied to the token embeddings, so it
has no variable of its own) map one to one between the release's TF1 names and the state-dict
keys of the PyTorch port's ``GAUAlphaModel`` (``gau-alpha`` 0.0.3). Both, the shapes and the
transposes (``nn.Linear`` stores ``[out, in]``, the transpose of a Keras/TF1 ``Dense`` kernel
``[in, out]``) are rows of :data:`gau_alpha.spec.BACKBONE_TABLE`; :func:`backbone_name_map`
lists them for given model sizes and checks that they form a bijection. The port has no
embedding mapping, so a model whose ``embedding_size`` differs from ``hidden_size`` cannot be
converted.

Head tensors (fine-tuned task heads, anything outside the backbone) travel unchanged, same
array, same dtype, never transposed, under one convention: TF1 name ``head/<a>/<b>/...`` <->
torch key ``head.<a>.<b>....``, each segment matching ``[A-Za-z0-9_-]+``. In the ``keras``
format they are stored by their TF1 names in ``extra_tensors.safetensors``. Any other name is
an error.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from gau_alpha.errors import ConversionError
from gau_alpha.spec import TOKEN_EMBEDDINGS, ModelDims, TensorSpec, backbone_tensors, layer_count

#: One backbone tensor: TF1 name and shape, torch key and shape, transpose (a spec row).
NameMapping = TensorSpec

#: Prefix of the port's backbone inside its task models (``GAUAlphaForMaskedLM`` ...), as in
#: the checkpoints it publishes; accepted when reading, never written.
TORCH_BASE_PREFIX = "gau_alpha."
#: The port's MLM decoder, tied to the token embeddings; accepted when reading (it must equal
#: the embeddings), never written (the port re-ties it on load).
TORCH_TIED_DECODER = "cls.predictions.decoder.weight"

TF1_HEAD_PREFIX = "head/"
TORCH_HEAD_PREFIX = "head."
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]+$")


def backbone_name_map(dims: ModelDims) -> List[NameMapping]:
    """Every backbone tensor of a model with ``dims``, embeddings first, then layer by layer
    (:func:`gau_alpha.spec.backbone_tensors`).

    Raises:
        ConversionError: a tensor has no counterpart in the PyTorch port (an embedding
            mapping), or the map is not a bijection (a bug in the spec).
    """
    mapping = backbone_tensors(dims)
    portless = [item.tf1 for item in mapping if item.torch is None]
    if portless:
        raise ConversionError(
            "the PyTorch port has no counterpart of %s (embedding_size %r differs from hidden_size %r)"
            % (", ".join(portless), dims.embedding_size, dims.hidden_size)
        )
    check_bijection(mapping)
    return mapping


def check_bijection(mapping: Sequence[NameMapping]) -> None:
    """Raise unless TF1 names and torch keys are each unique, disjoint from the head
    convention, and the inverse map gives back every TF1 name."""
    problems = []
    for side in ("tf1", "torch"):
        seen: Dict[str, int] = {}
        for item in mapping:
            seen[getattr(item, side)] = seen.get(getattr(item, side), 0) + 1
        problems += ["%s name %s is used %d times" % (side, n, c) for n, c in seen.items() if c > 1]
    forward = {m.tf1: m.torch for m in mapping}
    backward = {m.torch: m.tf1 for m in mapping}
    problems += [
        "%s -> %s -> %s" % (t, p, backward.get(p)) for t, p in forward.items() if backward.get(p) != t
    ]
    problems += ["%s collides with the head convention" % m.tf1 for m in mapping if m.tf1.startswith(TF1_HEAD_PREFIX)]
    problems += [
        "%s collides with the head convention" % m.torch for m in mapping if m.torch.startswith(TORCH_HEAD_PREFIX)
    ]
    if problems:
        raise ConversionError("the TF1 <-> torch name map is not a bijection:\n  - " + "\n  - ".join(problems))


# --------------------------------------------------------------------------- heads
#: (prefix, separator, what) of a head name in the TF1 and the torch spelling
_TF1_HEAD = (TF1_HEAD_PREFIX, "/", "tensor name (head/<segment>/...")
_TORCH_HEAD = (TORCH_HEAD_PREFIX, ".", "tensor key (head.<segment>....")


def _head_segments(name: str, prefix: str, separator: str) -> Optional[List[str]]:
    if not name.startswith(prefix):
        return None
    segments = name[len(prefix):].split(separator)
    if not all(_SEGMENT.match(segment) for segment in segments):
        return None
    return segments


def _respell_head(name: str, source: tuple, target: tuple) -> str:
    segments = _head_segments(name, source[0], source[1])
    if segments is None:
        raise ConversionError("%r is not a head %s, segments [A-Za-z0-9_-]+)" % (name, source[2]))
    return target[0] + target[1].join(segments)


def is_head_tf1_name(name: str) -> bool:
    """``head/<a>/<b>...`` with every segment ``[A-Za-z0-9_-]+``."""
    return _head_segments(name, TF1_HEAD_PREFIX, "/") is not None


def head_tf1_to_torch(name: str) -> str:
    """``head/a/b`` -> ``head.a.b``.

    Raises:
        ConversionError: ``name`` does not follow the head convention.
    """
    return _respell_head(name, _TF1_HEAD, _TORCH_HEAD)


def head_torch_to_tf1(key: str) -> str:
    """``head.a.b`` -> ``head/a/b``.

    Raises:
        ConversionError: ``key`` does not follow the head convention.
    """
    return _respell_head(key, _TORCH_HEAD, _TF1_HEAD)


# ---------------------------------------------------------------------- validation
def _describe(name: str, value: np.ndarray) -> str:
    return "%s %s %s" % (name, tuple(value.shape), value.dtype)


def _headline(source: str, what: str, names: Iterable[str], side: str, dims: ModelDims) -> str:
    """``<source> does not hold <what>``, saying so first when the depth differs from the config's."""
    depth = layer_count(names, side)
    if depth != dims.num_hidden_layers:
        return "%s does not hold %s of its config: it has %d layers, the config says num_hidden_layers %d" % (
            source, what, depth, dims.num_hidden_layers)
    return "%s does not hold %s" % (source, what)


def check_tf1_tensors(tensors: Mapping[str, np.ndarray], dims: ModelDims, source: str) -> None:
    """Check a TF1-named tensor dict against the backbone map: nothing missing, every shape
    right, every other name a head tensor.

    Raises:
        ConversionError: naming ``source`` and listing every missing variable, wrong shape
            (found and expected) and unknown variable.
    """
    mapping = backbone_name_map(dims)
    problems = []
    for item in mapping:
        if item.tf1 not in tensors:
            problems.append("missing variable %s (expected shape %s)" % (item.tf1, item.shape))
            continue
        found = tuple(np.shape(tensors[item.tf1]))
        if found != item.shape:
            problems.append("wrong shape for %s: found %s, expected %s" % (item.tf1, found, item.shape))
    known = {item.tf1 for item in mapping}
    unknown = sorted(n for n in tensors if n not in known and not is_head_tf1_name(n))
    problems += [
        "unknown variable %s: neither a GAU-alpha backbone variable nor a head tensor "
        "(head/<name>)" % _describe(n, np.asarray(tensors[n]))
        for n in unknown
    ]
    problems += [
        "variable %s is not a numeric array" % n
        for n, v in tensors.items()
        if np.asarray(v).dtype.kind not in "biuf"
    ]
    if problems:
        headline = _headline(source, "a GAU-alpha checkpoint", tensors, "tf1", dims)
        raise ConversionError("%s:\n  - %s" % (headline, "\n  - ".join(problems)))


def tf1_to_torch(tensors: Mapping[str, np.ndarray], dims: ModelDims) -> Dict[str, np.ndarray]:
    """TF1-named tensors (already checked) -> torch state dict (backbone keys without the
    ``gau_alpha.`` prefix, heads as ``head.*``). Transposes are exact copies."""
    out: Dict[str, np.ndarray] = {}
    backbone = set()
    for item in backbone_name_map(dims):
        value = np.asarray(tensors[item.tf1])
        out[item.torch] = np.ascontiguousarray(value.T) if item.transpose else value
        backbone.add(item.tf1)
    for name, value in tensors.items():
        if name not in backbone:
            out[head_tf1_to_torch(name)] = np.asarray(value)
    return out


def torch_to_tf1(state: Mapping[str, np.ndarray], dims: ModelDims, source: str) -> Dict[str, np.ndarray]:
    """A torch state dict -> TF1-named tensors.

    Accepts the port's own layouts: backbone keys with or without the ``gau_alpha.`` prefix
    (not both), and the tied MLM decoder ``cls.predictions.decoder.weight`` when it equals
    the token embeddings exactly (it is then dropped).

    Raises:
        ConversionError: naming ``source`` and listing every missing key, wrong shape,
            untied decoder and unknown key.
    """
    mapping = backbone_name_map(dims)
    by_torch = {item.torch: item for item in mapping}
    problems: List[str] = []
    prefixed = [k for k in state if k.startswith(TORCH_BASE_PREFIX)]
    plain = [k for k in state if k in by_torch]
    if prefixed and plain:
        problems.append(
            "backbone keys appear both with and without the %r prefix (e.g. %s and %s)"
            % (TORCH_BASE_PREFIX, prefixed[0], plain[0])
        )
    strip = bool(prefixed) and not plain
    out: Dict[str, np.ndarray] = {}
    unknown: List[str] = []
    wrong_shape = set()
    decoder = None
    for key, value in state.items():
        value = np.asarray(value)
        bare = key[len(TORCH_BASE_PREFIX):] if strip and key.startswith(TORCH_BASE_PREFIX) else key
        if bare in by_torch:
            item = by_torch[bare]
            if tuple(value.shape) != item.torch_shape:
                problems.append(
                    "wrong shape for %s: found %s, expected %s" % (key, tuple(value.shape), item.torch_shape)
                )
                wrong_shape.add(item.tf1)
                continue
            out[item.tf1] = np.ascontiguousarray(value.T) if item.transpose else value
        elif key == TORCH_TIED_DECODER:
            decoder = value
        elif _head_segments(key, TORCH_HEAD_PREFIX, ".") is not None:
            out[head_torch_to_tf1(key)] = value
        else:
            unknown.append(key)
    for item in mapping:
        if item.tf1 not in out and item.tf1 not in wrong_shape:
            problems.append(
                "missing key %s%s (expected shape %s)"
                % (TORCH_BASE_PREFIX if strip else "", item.torch, item.torch_shape)
            )
    if decoder is not None:
        embeddings = out.get(TOKEN_EMBEDDINGS)
        if embeddings is None or not same_array(decoder, embeddings):
            problems.append(
                "%s is not tied to the token embeddings (it differs from them); GAU-alpha's MLM "
                "head has no variable of its own, so an untied decoder cannot be converted" % TORCH_TIED_DECODER
            )
    problems += [
        "unknown key %s: neither a GAU-alpha backbone key nor a head tensor (head.<name>)"
        % _describe(k, np.asarray(state[k]))
        for k in sorted(unknown)
    ]
    if problems:
        keys = [k[len(TORCH_BASE_PREFIX):] if strip and k.startswith(TORCH_BASE_PREFIX) else k for k in state]
        headline = _headline(source, "a GAU-alpha state dict", keys, "torch", dims)
        raise ConversionError("%s:\n  - %s" % (headline, "\n  - ".join(problems)))
    return out


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical: same dtype, same shape, same bytes (NaNs and -0.0 included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
