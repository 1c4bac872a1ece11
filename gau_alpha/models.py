"""GAU-alpha and residual-attention models as bert4keras ``Transformer`` classes.

``GAU_alpha`` is RoFormerV2 (post-norm, no biases, parameter-free RMS norm, RoPE) with each
attention + feed-forward pair replaced by one Gated Attention Unit. It is a plain bert4keras
model class, so ``bert4keras.models.build_transformer_model(config, ckpt, model=GAU_alpha)``
works; :func:`build_transformer_model` adds model names, residual attention and strict
checkpoint loading on top.

Residual attention (RealFormer) is wired in the blocks themselves: every class here builds its
blocks in ``apply_main_layers(x, index)`` (``GAU_alpha``: one GAU block; ``ResidualBERT``,
``ResidualRoFormer``, ``ResidualRoFormerV2``: bert4keras's attention + feed-forward block, same
layers and names), and each block's attention layer takes the scores the previous block kept
in ``residual_scores`` and leaves its own there (:meth:`ResidualAttentionMixin.apply_attention`).
The modes are implemented once, in :func:`gau_alpha.layers.combine_residual_scores`.

To extend GAU-alpha, subclass it and override a bert4keras hook (``apply_embeddings``,
``apply_main_layers``, ``apply_final_layers``, ``variable_mapping``).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from gau_alpha import compat, spec

compat.apply()

import tensorflow as tf  # noqa: E402
from bert4keras import models as b4k_models
from bert4keras.layers import Add, Dropout, FeedForward, LayerNormalization
from bert4keras.layers import MultiHeadAttention as _Bert4kerasMultiHeadAttention

from gau_alpha.checkpoints import (
    CheckpointLike,
    check_checkpoint_fits,
    checkpoint_prefix,
    checkpoint_shapes,
    load_weights_strict,
)
from gau_alpha.errors import ConfigError
from gau_alpha.layers import RESIDUAL_MODES, GatedAttentionUnit, ResidualMultiHeadAttention
from gau_alpha.model_dir import CONFIG_KEY_RULES, read_config, validate_config
from gau_alpha.model_options import check_overrides, check_required

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
    """Post-norm blocks with explicit residual attention (RealFormer), and strict loading.

    The model classes below build each block in ``apply_main_layers(x, index)`` with
    :meth:`apply_attention`, which gives layer ``index``'s attention layer the scores of layer
    ``index - 1`` as an input and returns the layer's own scores; ``apply_main_layers`` keeps
    those in :attr:`residual_scores` for the next block. Without residual attention the
    graph is the plain bert4keras one.

    Extra constructor arguments:
        residual_attention_scores: thread attention scores from layer to layer.
        residual_attention_mode: ``cumulative`` (RealFormer, default), ``mean`` (RealFormer's
            running mean) or ``previous`` (bert4keras's own semantics); see
            :func:`gau_alpha.layers.combine_residual_scores`.
        allow_unused_weights: do not raise for checkpoint variables nothing uses (they are
            logged). Defaults to False for GAU-alpha, True for BERT-family checkpoints,
            which usually carry pre-training heads.
        allow_nonfinite: load checkpoint variables holding NaN or infinite values (logged
            as a warning) instead of raising.

    Attributes:
        residual_attention_mode: the mode, or None without residual attention.
        residual_scores: the scores the last built attention layer passes on ((B, N, N) for
            GAU, (B, h, N, N) for multi-head attention), or None.
    """

    default_allow_unused_weights = True
    #: RoPE: the attention layers get bert4keras's sinusoid table (``p_bias='rotary'``)
    rotary = False
    #: bert4keras ``LayerNormalization`` options of the block norms; None: RoFormerV2's
    #: parameter-free RMS norm
    layer_norm_options: Optional[Dict[str, Any]] = {}

    def __init__(
        self,
        *args,
        residual_attention_scores: bool = False,
        residual_attention_mode: str = "cumulative",
        allow_unused_weights: Optional[bool] = None,
        allow_nonfinite: bool = False,
        **kwargs,
    ):
        # bert4keras's own residual_attention_scores stays off: the blocks here do it
        super().__init__(*args, residual_attention_scores=False, **kwargs)
        if residual_attention_scores and residual_attention_mode not in RESIDUAL_MODES:
            raise ConfigError(
                "residual_attention_mode must be one of %s, got %r" % (", ".join(RESIDUAL_MODES), residual_attention_mode)
            )
        self.residual_attention_mode = residual_attention_mode if residual_attention_scores else None
        self.allow_unused_weights = (
            self.default_allow_unused_weights if allow_unused_weights is None else allow_unused_weights
        )
        self.allow_nonfinite = bool(allow_nonfinite)
        self.residual_scores = None

    def apply_attention(
        self, qkv: List[Any], index: int, previous_scores: Any, layer: type, **layer_kwargs
    ) -> Tuple[Any, Any]:
        """Self-attention of block ``index``, with residual scores as explicit input/output.

        Args:
            qkv: the attention layer's first inputs: ``[x]`` (GAU) or ``[x, x, x]``
                (multi-head), x (B, N, H). The block's mask (if any) and, with
                :attr:`rotary`, the sinusoid table follow, as bert4keras orders them.
            index: 0-based block index (the layer's ``layer_index``).
            previous_scores: the scores block ``index - 1`` passed on, or None.
            layer: the attention layer class (``GatedAttentionUnit``,
                ``ResidualMultiHeadAttention`` or bert4keras's ``MultiHeadAttention``).
            **layer_kwargs: the layer's constructor arguments (``name`` ...).
        Returns:
            ``(output (B, N, H), scores to pass on)``; the scores are None without
            residual attention.
        """
        inputs, arguments = list(qkv), {"a_bias": None}
        attention_mask = self.compute_attention_bias(index)
        if attention_mask is not None:
            arguments["a_bias"] = True
            inputs.append(attention_mask)
        if self.rotary:
            arguments["p_bias"] = "rotary"
            inputs.append(self.compute_position_bias(qkv[0]))
        if self.residual_attention_mode is None:
            return self.apply(inputs=inputs, layer=layer, arguments=arguments, **layer_kwargs), None
        if previous_scores is not None:
            arguments["r_scores"] = True
            inputs.append(previous_scores)
        output, scores = self.apply(
            inputs=inputs, layer=layer, arguments=arguments,
            residual_attention=self.residual_attention_mode, layer_index=index, **layer_kwargs,
        )
        return output, scores

    def apply_post_norm(self, x: Any, h: Any, name: str) -> Any:
        """``Norm(x + Dropout(h))`` as layers ``<name>-Dropout``, ``<name>-Add``, ``<name>-Norm``."""
        h = self.apply(inputs=h, layer=Dropout, rate=self.dropout_rate, name="%s-Dropout" % name)
        x = self.apply(inputs=[x, h], layer=Add, name="%s-Add" % name)
        name = "%s-Norm" % name
        if self.layer_norm_options is None:
            return self.apply(inputs=x, layer=LayerNormalization, zero_mean=False, scale=False, offset=False, name=name)
        condition, hidden_units, hidden_activation = self.layer_norm_conds
        return self.apply(
            inputs=self.simplify([x, condition]), layer=LayerNormalization, conditional=condition is not None,
            hidden_units=hidden_units, hidden_activation=hidden_activation, hidden_initializer=self.initializer,
            name=name, **self.layer_norm_options,
        )

    def load_weights_from_checkpoint(self, checkpoint: CheckpointLike, mapping=None):
        """Strict loading (see :func:`gau_alpha.checkpoints.load_weights_strict`)."""
        report = load_weights_strict(
            self, checkpoint, mapping, allow_unused=self.allow_unused_weights, allow_nonfinite=self.allow_nonfinite
        )
        if report["unused"]:
            logger.warning(
                "%d checkpoint variables were not used: %s", len(report["unused"]), ", ".join(report["unused"])
            )
        return report


class MultiHeadBlocks(ResidualAttentionMixin):
    """The post-norm block of BERT, RoFormer and RoFormerV2, with bert4keras's layers and names.

    ``Transformer-i-MultiHeadSelfAttention`` -> ``-Dropout`` -> ``-Add`` -> ``-Norm`` ->
    ``Transformer-i-FeedForward`` -> ``-Dropout`` -> ``-Add`` -> ``-Norm``, so bert4keras's
    ``variable_mapping`` and checkpoints apply unchanged. With residual attention the
    attention layer is :class:`~gau_alpha.layers.ResidualMultiHeadAttention` (same weights).
    """

    use_bias = True

    def apply_main_layers(self, inputs, index: int):
        """One block; input and output (B, N, H)."""
        x = inputs
        attention_name = "Transformer-%d-MultiHeadSelfAttention" % index
        feed_forward_name = "Transformer-%d-FeedForward" % index
        previous_scores = self.residual_scores if index > 0 else None
        h, self.residual_scores = self.apply_attention(
            [x, x, x], index, previous_scores,
            layer=_Bert4kerasMultiHeadAttention if self.residual_attention_mode is None else ResidualMultiHeadAttention,
            heads=self.num_attention_heads, head_size=self.attention_head_size, out_dim=self.hidden_size,
            key_size=self.attention_key_size, use_bias=self.use_bias, attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer, name=attention_name,
        )
        x = self.apply_post_norm(x, h, attention_name)
        h = self.apply(
            inputs=x, layer=FeedForward, units=self.intermediate_size, activation=self.hidden_act,
            use_bias=self.use_bias, kernel_initializer=self.initializer, name=feed_forward_name,
        )
        return self.apply_post_norm(x, h, feed_forward_name)


class GAU_alpha(ResidualAttentionMixin, b4k_models.RoFormerV2):
    """GAU-alpha (https://github.com/ZhuiyiTechnology/GAU-alpha) for bert4keras.

    Graph (names as in the reference): ``Embedding-Token`` + ``Embedding-Segment`` ->
    dropout -> ``Embedding-Norm`` (RMS, no parameters) -> L x [``Transformer-i-GatedAttentionUnit``
    -> dropout -> ``-Add`` -> ``-Norm``] -> optional tied MLM head. Inputs token ids and
    segment ids (B, N); output (B, N, hidden) or MLM probabilities (B, N, vocab).

    Extra arguments (beyond bert4keras's): ``normalization`` (default ``softmax_plus``),
    ``softmax_plus_min_length`` (default 16, as bert4keras; None to match the PyTorch port),
    ``attention_block_size`` (None: whole attention matrices; an integer: exact attention
    computed that many queries at a time, activation memory linear in the length, see
    :class:`~gau_alpha.layers.GatedAttentionUnit`), and those of :class:`ResidualAttentionMixin`.
    """

    default_allow_unused_weights = False
    rotary = True
    layer_norm_options = None  # RMS norm without parameters

    def __init__(
        self,
        *args,
        normalization: str = "softmax_plus",
        softmax_plus_min_length: Optional[float] = 16.0,
        attention_block_size: Optional[int] = None,
        **kwargs,
    ):
        if attention_block_size is not None and (
            isinstance(attention_block_size, bool) or not isinstance(attention_block_size, int) or attention_block_size < 1
        ):
            raise ConfigError("attention_block_size must be a positive integer or None, got %r" % (attention_block_size,))
        super().__init__(*args, **kwargs)
        self.normalization = normalization
        self.softmax_plus_min_length = softmax_plus_min_length
        self.attention_block_size = attention_block_size

    @property
    def initializer(self) -> GAUAlphaInitializer:
        return GAUAlphaInitializer(self.num_hidden_layers, order=3)

    def apply_main_layers(self, inputs, index: int):
        """One post-norm GAU block ``x = Norm(x + Dropout(GAU(x)))``; (B, N, H) in and out.

        With residual attention the GAU also takes the previous block's scores and its own
        are kept in :attr:`residual_scores` for the next block.
        """
        x = inputs
        name = "Transformer-%d-GatedAttentionUnit" % index
        previous_scores = self.residual_scores if index > 0 else None
        h, self.residual_scores = self.apply_attention(
            [x], index, previous_scores,
            layer=GatedAttentionUnit,
            units=self.intermediate_size,
            key_size=self.attention_key_size,
            activation=self.hidden_act,
            use_bias=False,
            normalization=self.normalization,
            softmax_plus_min_length=self.softmax_plus_min_length,
            attention_block_size=self.attention_block_size,
            attention_dropout=self.attention_dropout_rate,
            kernel_initializer=self.initializer,
            name=name,
        )
        return self.apply_post_norm(x, h, name)

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


class ResidualBERT(MultiHeadBlocks, b4k_models.BERT):
    """bert4keras ``BERT`` with residual attention options and strict loading."""

    layer_norm_options = {"epsilon": 1e-12}


class ResidualRoFormer(MultiHeadBlocks, b4k_models.RoFormer):
    """bert4keras ``RoFormer`` with residual attention options and strict loading."""

    rotary = True


class ResidualRoFormerV2(MultiHeadBlocks, b4k_models.RoFormerV2):
    """bert4keras ``RoFormerV2`` with residual attention options and strict loading."""

    rotary = True
    use_bias = False
    layer_norm_options = None  # RMS norm without parameters


MODEL_CLASSES: Dict[str, type] = {
    "gau_alpha": GAU_alpha,
    "gau-alpha": GAU_alpha,
    "bert": ResidualBERT,
    "roberta": ResidualBERT,
    "roformer": ResidualRoFormer,
    "roformer_v2": ResidualRoFormerV2,
}
#: the other model names ``bert4keras.models.build_transformer_model`` (0.11.5) knows -> its class
BERT4KERAS_MODEL_CLASSES: Dict[str, str] = {
    "albert": "ALBERT", "albert_unshared": "ALBERT_Unshared", "nezha": "NEZHA", "electra": "ELECTRA",
    "gpt": "GPT", "gpt2": "GPT2", "gpt2_ml": "GPT2_ML",
    "t5": "T5", "t5_encoder": "T5_Encoder", "t5_decoder": "T5_Decoder",
    "t5.1.0": "T5", "t5.1.0_encoder": "T5_Encoder", "t5.1.0_decoder": "T5_Decoder",
    "t5.1.1": "T5", "t5.1.1_encoder": "T5_Encoder", "t5.1.1_decoder": "T5_Decoder",
    "mt5.1.1": "T5", "mt5.1.1_encoder": "T5_Encoder", "mt5.1.1_decoder": "T5_Decoder",
}
BERT4KERAS_MODEL_NAMES = tuple(BERT4KERAS_MODEL_CLASSES)
APPLICATIONS = ("encoder", "lm", "unilm")


def resolve_model(model: Union[str, type]) -> Union[str, type]:
    """A model name (any case) or class -> the class, or the name bert4keras resolves.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), or something that
            is neither a name nor a bert4keras ``Transformer`` subclass.
    """
    if not isinstance(model, str):
        if isinstance(model, type) and issubclass(model, b4k_models.Transformer):
            return model
        raise ConfigError("model must be a model name or a bert4keras Transformer subclass, got %r" % (model,))
    name = model.lower()
    if name in MODEL_CLASSES:
        return MODEL_CLASSES[name]
    if name in BERT4KERAS_MODEL_NAMES:
        return name
    raise ConfigError(
        "unknown model %r; valid names: %s" % (model, ", ".join(sorted(MODEL_CLASSES) + list(BERT4KERAS_MODEL_NAMES)))
    )


def model_class_of(model: Union[str, type]) -> type:
    """The class :func:`resolve_model`'s result stands for (bert4keras's class for its names)."""
    resolved = resolve_model(model)
    if isinstance(resolved, str):
        return getattr(b4k_models, BERT4KERAS_MODEL_CLASSES[resolved])
    return resolved


def load_config(config_path: Union[str, os.PathLike], model_class: Union[str, type]) -> Dict[str, Any]:
    """The config file's values, checked before bert4keras reads anything.

    GAU-alpha configs get the full check of :func:`gau_alpha.model_dir.read_config`; other
    models' configs must be a readable JSON object whose known keys have the right types.

    Raises:
        ModelDirError: the file does not exist.
        ConfigError: the file is not a JSON object (or not a valid GAU-alpha config).
    """
    gau = isinstance(model_class, type) and issubclass(model_class, GAU_alpha)
    return read_config(config_path, gau_alpha_sizes=gau)


def _checks_spec_shapes(model_class: type) -> bool:
    """Whether the model's checkpoint is exactly the :mod:`gau_alpha.spec` backbone."""
    return issubclass(model_class, GAU_alpha) and model_class.variable_mapping is GAU_alpha.variable_mapping


def _checked_config(
    config_path: Optional[Union[str, os.PathLike]], model_class: type, overrides: Dict[str, Any]
) -> Tuple[Dict[str, Any], str]:
    """The config file's values with ``overrides``, every check done, and how to name them
    in messages (the file, plus the config keys the overrides change).

    Raises:
        ModelDirError, ConfigError: see :func:`build_transformer_model`.
    """
    file_config = {} if config_path is None else load_config(config_path, model_class)
    check_overrides(overrides, model_class, file_config)
    validate_config(overrides, "the overrides of %s" % (config_path or "the model config"), gau_alpha_sizes=False)
    config = dict(file_config, **overrides)
    source = str(config_path) if config_path is not None else "(the given options)"
    overridden = sorted(key for key in overrides if key in CONFIG_KEY_RULES or key in file_config)
    if overridden and config_path is not None:
        source += " with overrides %s" % ", ".join(overridden)
    validate_config(config, source, gau_alpha_sizes=issubclass(model_class, GAU_alpha))
    check_required(config, model_class, source)
    return config, source


def _check_checkpoint_at_the_door(
    checkpoint: CheckpointLike, model_class: type, config: Dict[str, Any], config_source: str
) -> None:
    """A GAU-alpha checkpoint's variables and shapes (its index only) against the config.

    Raises:
        CheckpointError: see :func:`gau_alpha.checkpoints.check_checkpoint_fits`.
    """
    allow_unused = config.get("allow_unused_weights")
    check_checkpoint_fits(
        checkpoint_shapes(checkpoint), spec.ModelDims.from_config(config, config_source),
        "(given as arrays)" if isinstance(checkpoint, Mapping) else str(checkpoint), config_source,
        allow_unused=model_class.default_allow_unused_weights if allow_unused is None else bool(allow_unused),
    )


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

    Same signature as ``bert4keras.models.build_transformer_model``, plus checks at the door,
    before any Keras layer is built: the config file (:func:`load_config`), the overrides
    (unknown names are refused with a suggestion, see :mod:`gau_alpha.model_options`; wrong
    types are named), the required keys, and for GAU-alpha the checkpoint's variables and
    shapes against the config (read from the index only,
    :func:`gau_alpha.checkpoints.check_checkpoint_fits`). Strict loading stays the second line
    of defence.

    Args:
        model: ``'gau_alpha'``, any bert4keras model name, or a ``Transformer`` subclass.
        application: ``'encoder'``, ``'lm'`` (causal mask) or ``'unilm'`` (seq2seq mask).
        residual_attention_scores: RealFormer residual attention (gau_alpha, bert, roberta,
            roformer, roformer_v2).
        residual_attention_mode: ``cumulative``, ``mean`` or ``previous``.
        **kwargs: overrides of config values and model options (``with_mlm``,
            ``allow_unused_weights``, ``allow_nonfinite``, ``normalization``,
            ``attention_block_size`` (GAU-alpha: exact attention in blocks of that many
            queries, memory linear in the length), ``dropout_rate`` ...); each must be an
            option of the model class or a key of the config file.

    Returns:
        A ``tf.keras.Model`` (inputs token ids and segment ids, (B, N) each), or the
        bert4keras ``Transformer`` if ``return_keras_model=False``.

    Raises:
        ConfigError: an unknown model, application or override, residual attention for a
            model without it, an invalid config file, or a missing or ill-typed key
            (naming the file and the key).
        ModelDirError: the config file does not exist.
        CheckpointError: the checkpoint cannot be read, does not fit the config (layer
            counts, missing, mis-shaped and unused variables), holds NaN or infinite values
            (unless ``allow_nonfinite=True``), or a ``checkpoint`` bookkeeping file points
            outside its directory.
    """
    if not isinstance(application, str) or application.lower() not in APPLICATIONS:
        raise ConfigError("application must be one of %s, got %r" % (", ".join(APPLICATIONS), application))
    application = application.lower()
    resolved = resolve_model(model)
    model_class = model_class_of(resolved)
    if residual_attention_scores:
        if not issubclass(model_class, ResidualAttentionMixin):
            raise ConfigError(
                "residual_attention_scores is supported for %s, not %r" % (", ".join(sorted(MODEL_CLASSES)), model)
            )
    config, source = _checked_config(config_path, model_class, kwargs)
    if residual_attention_scores:
        config.update(residual_attention_scores=True, residual_attention_mode=residual_attention_mode)
    if checkpoint_path is not None and not isinstance(checkpoint_path, Mapping):
        checkpoint_path = checkpoint_prefix(checkpoint_path)  # never follows a `checkpoint` file elsewhere
    if checkpoint_path is not None and _checks_spec_shapes(model_class):
        _check_checkpoint_at_the_door(checkpoint_path, model_class, config, source)
    transformer = b4k_models.build_transformer_model(
        None, None, model=resolved, application=application, return_keras_model=False, **config
    )
    if checkpoint_path is not None:
        transformer.load_weights_from_checkpoint(checkpoint_path)
    return transformer.model if return_keras_model else transformer
