"""GAU-alpha and residual-attention models as bert4keras ``Transformer`` classes.

``GAU_alpha`` is RoFormerV2 (post-norm, no biases, parameter-free RMS norm, RoPE) with each
attention + feed-forward pair replaced by one Gated Attention Unit. It is a plain bert4keras
model class, so ``bert4keras.models.build_transformer_model(config, ckpt, model=GAU_alpha)``
works; :func:`build_transformer_model` adds model names, residual attention and strict
checkpoint loading on top.

To extend GAU-alpha, subclass it and override a bert4keras hook (``apply_embeddings``,
``apply_main_layers``, ``apply_final_layers``, ``variable_mapping``).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Union

from gau_alpha import compat, spec

compat.apply()

import tensorflow as tf  # noqa: E402
from bert4keras import models as b4k_models
from bert4keras.layers import Add, Dropout, LayerNormalization
from bert4keras.layers import MultiHeadAttention as _Bert4kerasMultiHeadAttention

from gau_alpha.checkpoints import CheckpointLike, load_weights_strict
from gau_alpha.layers import RESIDUAL_MODES, GatedAttentionUnit, ResidualMultiHeadAttention

logger = logging.getLogger(__name__)


@tf.keras.utils.register_keras_serializable(package="gau_alpha")
class GAUAlphaInitializer(tf.keras.initializers.Initializer):
    """RoFormerV2/GAU-alpha initialiser: truncated normal with
    ``stddev = 1.13684723 / sqrt(fan) * gain * num_layers ** (-1 / order)``,
    ``fan = shape[1]`` if ``shape[0] > 10000 or shape[0] < 10`` else ``shape[0]``.
    ``order`` is 2 for RoFormerV2 and 3 for GAU-alpha. Serialisable, unlike a bound method.
    """

    def __init__(self, num_layers: int, order: float = 3, gain: float = 1.0):
        self.num_layers = int(num_layers)
        self.order = order
        self.gain = gain

    def __call__(self, shape, dtype=None, **kwargs):
        shape = tuple(int(s) for s in shape)
        fan = shape[1] if (shape[0] > 10000 or shape[0] < 10) and len(shape) > 1 else shape[0]
        stddev = 1.13684723 / fan**0.5 * self.gain * self.num_layers ** (-1.0 / self.order)
        return tf.random.truncated_normal(shape, stddev=stddev, dtype=dtype or tf.keras.backend.floatx())

    def get_config(self) -> Dict[str, Any]:
        return {"num_layers": self.num_layers, "order": self.order, "gain": self.gain}


class ResidualAttentionMixin:
    """Residual attention (RealFormer) and strict checkpoint loading for a bert4keras model.

    Extra constructor arguments:
        residual_attention_scores: thread attention scores from layer to layer.
        residual_attention_mode: ``cumulative`` (RealFormer, default), ``mean`` (RealFormer's
            running mean) or ``previous`` (bert4keras's own semantics).
        allow_unused_weights: do not raise for checkpoint variables nothing uses (they are
            logged). Defaults to False for GAU-alpha, True for BERT-family checkpoints,
            which usually carry pre-training heads.
    """

    default_allow_unused_weights = True

    def __init__(
        self,
        *args,
        residual_attention_scores: bool = False,
        residual_attention_mode: str = "cumulative",
        allow_unused_weights: Optional[bool] = None,
        **kwargs,
    ):
        super().__init__(*args, residual_attention_scores=False, **kwargs)
        if residual_attention_scores and residual_attention_mode not in RESIDUAL_MODES:
            raise ValueError(
                "residual_attention_mode must be one of %s, got %r" % (RESIDUAL_MODES, residual_attention_mode)
            )
        self.residual_attention_mode = residual_attention_mode if residual_attention_scores else None
        self.allow_unused_weights = (
            self.default_allow_unused_weights if allow_unused_weights is None else allow_unused_weights
        )
        self._previous_scores = None
        self._attention_layer_count = 0

    def apply(self, inputs=None, layer=None, arguments=None, **kwargs):
        attention = layer is _Bert4kerasMultiHeadAttention or (
            isinstance(layer, type) and issubclass(layer, GatedAttentionUnit)
        )
        if inputs is None or self.residual_attention_mode is None or not attention:
            return super().apply(inputs=inputs, layer=layer, arguments=arguments, **kwargs)
        if layer is _Bert4kerasMultiHeadAttention:
            layer = ResidualMultiHeadAttention
        kwargs.update(residual_attention=self.residual_attention_mode, layer_index=self._attention_layer_count)
        arguments = dict(arguments or {})
        inputs = list(inputs)
        if self._previous_scores is not None:
            inputs.append(self._previous_scores)
            arguments["r_scores"] = True
        outputs, scores = super().apply(inputs=inputs, layer=layer, arguments=arguments, **kwargs)
        self._previous_scores = scores
        self._attention_layer_count += 1
        return outputs

    def load_weights_from_checkpoint(self, checkpoint: CheckpointLike, mapping=None):
        """Strict loading (see :func:`gau_alpha.checkpoints.load_weights_strict`)."""
        report = load_weights_strict(self, checkpoint, mapping, allow_unused=self.allow_unused_weights)
        if report["unused"]:
            logger.warning(
                "%d checkpoint variables were not used: %s", len(report["unused"]), ", ".join(report["unused"])
            )
        return report


class GAU_alpha(ResidualAttentionMixin, b4k_models.RoFormerV2):
    """GAU-alpha (https://github.com/ZhuiyiTechnology/GAU-alpha) for bert4keras.

    Graph (names as in the reference): ``Embedding-Token`` + ``Embedding-Segment`` ->
    dropout -> ``Embedding-Norm`` (RMS, no parameters) -> L x [``Transformer-i-GatedAttentionUnit``
    -> dropout -> ``-Add`` -> ``-Norm``] -> optional tied MLM head. Inputs token ids and
    segment ids (B, N); output (B, N, hidden) or MLM probabilities (B, N, vocab).

    Extra arguments (beyond bert4keras's): ``normalization`` (default ``softmax_plus``),
    ``softmax_plus_min_length`` (default 16, as bert4keras; None to match the PyTorch port),
    and those of :class:`ResidualAttentionMixin`.
    """

    default_allow_unused_weights = False

    def __init__(
        self,
        *args,
        normalization: str = "softmax_plus",
        softmax_plus_min_length: Optional[float] = 16.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.normalization = normalization
        self.softmax_plus_min_length = softmax_plus_min_length

    @property
    def initializer(self) -> GAUAlphaInitializer:
        return GAUAlphaInitializer(self.num_hidden_layers, order=3)

    def apply_main_layers(self, inputs, index: int):
        """One post-norm GAU block: ``x = Norm(x + Dropout(GAU(x)))``."""
        x = inputs
        name = "Transformer-%d-GatedAttentionUnit" % index
        attention_mask = self.compute_attention_bias(index)
        position_bias = self.compute_position_bias(x)
        layer_inputs, arguments = [x], {"a_bias": None, "p_bias": "rotary"}
        if attention_mask is not None:
            arguments["a_bias"] = True
            layer_inputs.append(attention_mask)
        layer_inputs.append(position_bias)
        h = self.apply(
            inputs=layer_inputs,
            layer=GatedAttentionUnit,
            arguments=arguments,
            units=self.intermediate_size,
            key_size=self.attention_key_size,
            activation=self.hidden_act,
            use_bias=False,
            normalization=self.normalization,
            softmax_plus_min_length=self.softmax_plus_min_length,
            attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer,
            name=name,
        )
        h = self.apply(inputs=h, layer=Dropout, rate=self.dropout_rate, name="%s-Dropout" % name)
        x = self.apply(inputs=[x, h], layer=Add, name="%s-Add" % name)
        return self.apply(
            inputs=x, layer=LayerNormalization, zero_mean=False, scale=False, offset=False, name="%s-Norm" % name
        )

    def variable_mapping(self) -> Dict[str, List[str]]:
        """Keras layer name -> TF1 variable names of the released checkpoint (see :mod:`gau_alpha.spec`)."""
        return spec.variable_mapping(self.dims)

    @property
    def dims(self) -> spec.ModelDims:
        """The sizes that fix the checkpoint's tensors."""
        return spec.ModelDims(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            attention_key_size=self.attention_key_size, num_hidden_layers=self.num_hidden_layers,
            type_vocab_size=self.segment_vocab_size, embedding_size=self.embedding_size,
        )


class ResidualBERT(ResidualAttentionMixin, b4k_models.BERT):
    """bert4keras ``BERT`` with residual attention options and strict loading."""


class ResidualRoFormer(ResidualAttentionMixin, b4k_models.RoFormer):
    """bert4keras ``RoFormer`` with residual attention options and strict loading."""


class ResidualRoFormerV2(ResidualAttentionMixin, b4k_models.RoFormerV2):
    """bert4keras ``RoFormerV2`` with residual attention options and strict loading."""


MODEL_CLASSES: Dict[str, type] = {
    "gau_alpha": GAU_alpha,
    "gau-alpha": GAU_alpha,
    "bert": ResidualBERT,
    "roberta": ResidualBERT,
    "roformer": ResidualRoFormer,
    "roformer_v2": ResidualRoFormerV2,
}
APPLICATIONS = ("encoder", "lm", "unilm")


def build_transformer_model(
    config_path: Optional[Union[str, os.PathLike]] = None,
    checkpoint_path: Optional[CheckpointLike] = None,
    model: Union[str, type] = "gau_alpha",
    application: str = "encoder",
    return_keras_model: bool = True,
    residual_attention_scores: bool = False,
    residual_attention_mode: str = "cumulative",
    **kwargs,
):
    """Build a model from a bert4keras-style config, optionally loading a checkpoint.

    Same signature as ``bert4keras.models.build_transformer_model``, plus:

    Args:
        model: ``'gau_alpha'``, any bert4keras model name, or a ``Transformer`` subclass.
        application: ``'encoder'``, ``'lm'`` (causal mask) or ``'unilm'`` (seq2seq mask).
        residual_attention_scores: RealFormer residual attention (gau_alpha, bert, roberta,
            roformer, roformer_v2).
        residual_attention_mode: ``cumulative``, ``mean`` or ``previous``.
        **kwargs: overrides of config values and model options (``with_mlm``,
            ``allow_unused_weights``, ``normalization``, ``dropout_rate`` ...).

    Returns:
        A ``tf.keras.Model`` (inputs token ids and segment ids, (B, N) each), or the
        bert4keras ``Transformer`` if ``return_keras_model=False``.
    """
    if config_path is not None and not os.path.isfile(config_path):
        raise FileNotFoundError("model config file %s does not exist" % config_path)
    if config_path is not None:
        try:
            with open(config_path, encoding="utf-8") as handle:
                json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError("model config file %s is not valid JSON: %s" % (config_path, error)) from error
    application = application.lower()
    if application not in APPLICATIONS:
        raise ValueError("application must be one of %s, got %r" % (APPLICATIONS, application))
    model_class: Union[str, type] = model
    if isinstance(model, str):
        model_class = MODEL_CLASSES.get(model.lower(), model.lower())
    if residual_attention_scores:
        if not (isinstance(model_class, type) and issubclass(model_class, ResidualAttentionMixin)):
            raise ValueError(
                "residual_attention_scores is supported for %s, not %r" % (", ".join(sorted(MODEL_CLASSES)), model)
            )
        kwargs.update(residual_attention_scores=True, residual_attention_mode=residual_attention_mode)
    transformer = b4k_models.build_transformer_model(
        config_path, None, model=model_class, application=application, return_keras_model=False, **kwargs
    )
    if checkpoint_path is not None:
        transformer.load_weights_from_checkpoint(checkpoint_path)
    return transformer.model if return_keras_model else transformer
