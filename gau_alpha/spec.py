"""The GAU-alpha checkpoint, written down once.

Every tensor of a GAU-alpha backbone has one row in :data:`BACKBONE_TABLE`: its TF1 variable
name in the released ``chinese_GAU-alpha-char_L-24_H-768`` checkpoint, its shape as a rule of
the config, the Keras layer and weight that hold it in :class:`gau_alpha.GAU_alpha`, the key
of the PyTorch port's state dict (``gau-alpha`` 0.0.3, ``GAUAlphaModel``) and whether that
array is the transpose of the TF1 one (``nn.Linear`` stores ``[out, in]``, a Keras/TF1
``Dense`` kernel ``[in, out]``).

Everything that needs a variable name derives it from here: the model's
``variable_mapping``, the converter's name map, the release manifest, the test and benchmark
oracles. Adding a variable is one new row.

Shapes: V ``vocab_size``, T ``type_vocab_size``, H ``hidden_size``, E ``intermediate_size``
(the expansion), S ``attention_key_size``, L ``num_hidden_layers``, D ``embedding_size``
(defaults to H). The MLM head is tied to the token embeddings, so it has no row. Pure Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from gau_alpha.errors import ConfigError

__all__ = [
    "ModelDims",
    "TensorRow",
    "TensorSpec",
    "BACKBONE_TABLE",
    "backbone_tensors",
    "variable_mapping",
    "tensor_shapes",
    "layer_count",
    "TOKEN_EMBEDDINGS",
]


@dataclass(frozen=True)
class ModelDims:
    """The sizes that fix the backbone's tensor names and shapes."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    attention_key_size: int
    num_hidden_layers: int
    type_vocab_size: int = 2
    embedding_size: Optional[int] = None

    @property
    def embedding_width(self) -> int:
        """D: the embedding size (``hidden_size`` unless the config sets another)."""
        return self.hidden_size if self.embedding_size is None else self.embedding_size

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str = "config") -> "ModelDims":
        """The sizes of a bert4keras GAU-alpha config (``bert_config.json`` values).

        ``type_vocab_size`` defaults to 2 and ``embedding_size`` to ``hidden_size``, as in
        bert4keras; the others are required positive integers.

        Raises:
            ConfigError: naming ``source`` and every missing or invalid key.
        """
        if not isinstance(config, Mapping):
            raise ConfigError("%s: a model config must be a JSON object, got %s" % (source, type(config).__name__))
        required = ("vocab_size", "hidden_size", "intermediate_size", "attention_key_size", "num_hidden_layers")
        optional = {"type_vocab_size": 2, "embedding_size": None}
        problems, values = [], {}
        for key in required + tuple(optional):
            value = config.get(key, optional.get(key))
            if value is None and key in optional:
                values[key] = None
                continue
            if value is None:
                problems.append("missing key %r" % key)
            elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                problems.append("%r must be a positive integer, got %r" % (key, value))
            else:
                values[key] = value
        if problems:
            raise ConfigError("%s: %s" % (source, "; ".join(problems)))
        return cls(**values)


ShapeRule = Callable[[ModelDims], Tuple[int, ...]]


@dataclass(frozen=True)
class TensorRow:
    """One row of the table: templates with ``{layer}`` for the 0-based layer index."""

    tf1: str
    keras_layer: str
    keras_weight: str
    torch: Optional[str]
    transpose: bool
    shape: ShapeRule
    per_layer: bool = False
    when: Callable[[ModelDims], bool] = lambda dims: True


@dataclass(frozen=True)
class TensorSpec:
    """One concrete backbone tensor of a model with given dims.

    Attributes:
        tf1: TF1 variable name in the release layout.
        keras_layer: name of the Keras layer holding it (before any model prefix).
        keras_weight: the weight's name inside that layer (``i_dense/kernel`` ...); the
            layer's weights are created in the order of the table.
        torch: key in the PyTorch port's ``GAUAlphaModel`` state dict, or None when the port
            has no such tensor.
        transpose: whether the torch array is the transpose of the TF1 one.
        shape: the TF1 (and Keras) shape.
    """

    tf1: str
    keras_layer: str
    keras_weight: str
    torch: Optional[str]
    transpose: bool
    shape: Tuple[int, ...]

    @property
    def torch_shape(self) -> Tuple[int, ...]:
        """Shape of the torch array."""
        return tuple(reversed(self.shape)) if self.transpose else self.shape


_GAU_TF1 = "GAU_alpha/encoder/layer_{layer}/gau/"
_GAU_TORCH = "encoder.layer.{layer}.gau."
_GAU_LAYER = "Transformer-{layer}-GatedAttentionUnit"


def _mapped(dims: ModelDims) -> bool:
    return dims.embedding_width != dims.hidden_size


#: The table, in the order of the model's ``variable_mapping`` (and of each layer's weights).
BACKBONE_TABLE: Tuple[TensorRow, ...] = (
    TensorRow("bert/embeddings/word_embeddings", "Embedding-Token", "embeddings",
              "embeddings.word_embeddings.weight", False, lambda d: (d.vocab_size, d.embedding_width)),
    TensorRow("bert/embeddings/token_type_embeddings", "Embedding-Segment", "embeddings",
              "embeddings.token_type_embeddings.weight", False,
              lambda d: (d.type_vocab_size, d.embedding_width), when=lambda d: d.type_vocab_size > 0),
    TensorRow("bert/encoder/embedding_hidden_mapping_in/kernel", "Embedding-Mapping", "kernel", None, False,
              lambda d: (d.embedding_width, d.hidden_size), when=_mapped),
    TensorRow("bert/encoder/output_mapping/kernel", "Output-Mapping", "kernel", None, False,
              lambda d: (d.hidden_size, d.embedding_width), when=_mapped),
    TensorRow(_GAU_TF1 + "i_dense/kernel", _GAU_LAYER, "i_dense/kernel", _GAU_TORCH + "i_dense.weight", True,
              lambda d: (d.hidden_size, 2 * d.intermediate_size + d.attention_key_size), per_layer=True),
    TensorRow(_GAU_TF1 + "q_scaleoffset/gamma", _GAU_LAYER, "q_scaleoffset/gamma",
              _GAU_TORCH + "q_scaleoffset.weight", False, lambda d: (d.attention_key_size,), per_layer=True),
    TensorRow(_GAU_TF1 + "k_scaleoffset/gamma", _GAU_LAYER, "k_scaleoffset/gamma",
              _GAU_TORCH + "k_scaleoffset.weight", False, lambda d: (d.attention_key_size,), per_layer=True),
    TensorRow(_GAU_TF1 + "o_dense/kernel", _GAU_LAYER, "o_dense/kernel", _GAU_TORCH + "o_dense.weight", True,
              lambda d: (d.intermediate_size, d.hidden_size), per_layer=True),
)

#: TF1 name of the token embeddings (the tied MLM head's kernel).
TOKEN_EMBEDDINGS: str = BACKBONE_TABLE[0].tf1


def _concrete(row: TensorRow, dims: ModelDims, layer: Optional[int]) -> TensorSpec:
    def fill(template: Optional[str]) -> Optional[str]:
        return None if template is None or layer is None else template.format(layer=layer)

    if layer is None:
        return TensorSpec(row.tf1, row.keras_layer, row.keras_weight, row.torch, row.transpose, row.shape(dims))
    return TensorSpec(fill(row.tf1), fill(row.keras_layer), row.keras_weight, fill(row.torch), row.transpose,
                      row.shape(dims))


def backbone_tensors(dims: ModelDims) -> List[TensorSpec]:
    """Every backbone tensor of a model with ``dims``: embeddings first, then layer by layer,
    each layer's tensors in the order of its Keras weights."""
    rows = [row for row in BACKBONE_TABLE if row.when(dims)]
    tensors = [_concrete(row, dims, None) for row in rows if not row.per_layer]
    for layer in range(dims.num_hidden_layers):
        tensors += [_concrete(row, dims, layer) for row in rows if row.per_layer]
    return tensors


def variable_mapping(dims: ModelDims) -> Dict[str, List[str]]:
    """bert4keras ``variable_mapping``: Keras layer name -> TF1 names, in the layer's weight order."""
    mapping: Dict[str, List[str]] = {}
    for tensor in backbone_tensors(dims):
        mapping.setdefault(tensor.keras_layer, []).append(tensor.tf1)
    return mapping


def tensor_shapes(dims: ModelDims) -> Dict[str, Tuple[int, ...]]:
    """TF1 name -> shape of every backbone tensor."""
    return {tensor.tf1: tensor.shape for tensor in backbone_tensors(dims)}


def layer_count(names: Iterable[str], side: str = "tf1") -> int:
    """How many GAU layers (0, 1, ... in a row) have at least one per-layer tensor among
    ``names``, spelled as the table's ``side`` (``"tf1"`` or ``"torch"``) templates."""
    names = set(names)
    templates = [getattr(row, side) for row in BACKBONE_TABLE if row.per_layer and getattr(row, side)]
    depth = 0
    while any(template.format(layer=depth) in names for template in templates):
        depth += 1
    return depth
