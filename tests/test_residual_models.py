"""Residual attention wired through whole models: layer l receives layer l-1's scores."""
import json

import numpy as np
import pytest
import tensorflow as tf

import gau_alpha
from bert4keras.layers import Lambda
from bert4keras.models import BERT, LM_Mask, UniLM_Mask
from bert4keras.models import build_transformer_model as bert4keras_build
from helpers import TINY_CONFIG, padded_batch
from numpy_reference import gau_projections, mha_projections, residual_logits

MHA_CONFIG = {
    "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 48,
    "hidden_act": "gelu", "vocab_size": 300, "max_position_embeddings": 64, "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
}
GAU_CONFIG = dict(TINY_CONFIG, num_hidden_layers=3, vocab_size=300)
LENGTHS = [14, 9, 20]


def _config_file(tmp_path, config):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def _attention_layers(model):
    return [l for l in model.layers if l.name.endswith(("GatedAttentionUnit", "MultiHeadSelfAttention"))]


def _inputs_and_scores(model, tokens, segments):
    layers = _attention_layers(model)
    probe = tf.keras.Model(model.inputs, [t for l in layers for t in (l.input[0], l.output[1])])
    values = probe.predict([tokens, segments], verbose=0)
    return layers, values[0::2], values[1::2]


@pytest.mark.parametrize("mode", ["cumulative", "previous"])
def test_gau_alpha_threads_scores_between_layers(tmp_path, mode):
    tf.keras.utils.set_random_seed(1)
    model = gau_alpha.build_transformer_model(
        _config_file(tmp_path, GAU_CONFIG), residual_attention_scores=True, residual_attention_mode=mode,
        application="unilm",
    )
    tokens, segments = padded_batch(LENGTHS, GAU_CONFIG["vocab_size"], seed=1)
    layers, inputs, scores = _inputs_and_scores(model, tokens, segments)
    assert len(layers) == 3
    raw = []
    for layer, x in zip(layers, inputs):
        w_i, g_q, g_k, _ = layer.get_weights()
        raw.append(np.stack([
            gau_projections(x[b].astype(np.float64), w_i, g_q, g_k, GAU_CONFIG["intermediate_size"],
                            GAU_CONFIG["attention_key_size"])[2]
            for b in range(len(LENGTHS))
        ]))
    _, passed = residual_logits(raw, mode)
    for index in range(3):
        np.testing.assert_allclose(scores[index], passed[index], rtol=1e-4, atol=1e-4)
    if mode == "cumulative":  # P_2 really carries the earlier layers' scores
        assert np.abs(scores[2] - raw[2]).max() > 1e-2


@pytest.mark.parametrize("model_name, use_rope", [("bert", False), ("roformer", True), ("roformer_v2", True)])
@pytest.mark.parametrize("application", ["encoder", "lm"])
def test_multi_head_models_thread_cumulative_scores(tmp_path, model_name, use_rope, application):
    tf.keras.utils.set_random_seed(2)
    model = gau_alpha.build_transformer_model(
        _config_file(tmp_path, MHA_CONFIG), model=model_name, residual_attention_scores=True,
        residual_attention_mode="cumulative", application=application,
    )
    tokens, segments = padded_batch(LENGTHS, MHA_CONFIG["vocab_size"], seed=2)
    layers, inputs, scores = _inputs_and_scores(model, tokens, segments)
    assert [type(l).__name__ for l in layers] == ["ResidualMultiHeadAttention"] * 3
    raw = []
    for layer, x in zip(layers, inputs):
        weights = layer.get_weights()
        if len(weights) == 4:  # roformer_v2: no biases
            wq, wk = weights[0], weights[1]
            bq = bk = 0.0
        else:
            wq, bq, wk, bk = weights[:4]
        raw.append(np.stack([
            mha_projections(x[b].astype(np.float64), wq, bq, wk, bk, 2, 16, use_rope=use_rope)
            for b in range(len(LENGTHS))
        ]))
    _, passed = residual_logits(raw, "cumulative")
    for index in range(3):
        np.testing.assert_allclose(scores[index], passed[index], rtol=1e-4, atol=1e-5)


def test_modes_give_different_models(tmp_path):
    config_path = _config_file(tmp_path, GAU_CONFIG)
    tokens, segments = padded_batch(LENGTHS, GAU_CONFIG["vocab_size"], seed=3)
    weights = gau_alpha.build_transformer_model(config_path).get_weights()
    outputs = {}
    for mode in (None, "cumulative", "mean", "previous"):
        kwargs = {"residual_attention_scores": True, "residual_attention_mode": mode} if mode else {}
        model = gau_alpha.build_transformer_model(config_path, **kwargs)
        model.set_weights(weights)  # same weights: only the residual mode differs
        outputs[mode] = model.predict([tokens, segments], verbose=0)
    names = list(outputs)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert np.abs(outputs[names[i]] - outputs[names[j]]).max() > 1e-4, (names[i], names[j])
    with pytest.raises(ValueError, match="residual_attention_mode"):
        gau_alpha.build_transformer_model(config_path, residual_attention_scores=True, residual_attention_mode="sum")


# ------------------------------------------- 'previous' = bert4keras's own residual attention
class AdditiveMask:
    """bert4keras's residual_attention_scores adds the previous scores to the attention
    bias with an ``Add`` layer, which fails for the boolean lm/unilm masks; this oracle
    gives it the mask as the additive bias it needs."""

    def compute_attention_bias(self, inputs=None):
        if getattr(self, "additive_mask", None) is None:
            allowed = super().compute_attention_bias(inputs)
            self.additive_mask = None if allowed is None else self.apply(
                inputs=allowed, layer=Lambda, function=_mask_to_bias, name="Attention-Mask-Bias"
            )
        return self.additive_mask


def _mask_to_bias(allowed):
    """(N, N) or (B, N, N) boolean mask -> additive bias broadcastable to (B, h, N, N)."""
    bias = (1.0 - tf.cast(allowed, tf.float32)) * -1e12
    return bias[None, None] if bias.shape.rank == 2 else bias[:, None]


REFERENCE_BERT = {
    "encoder": BERT,
    "lm": type("ReferenceLMBERT", (AdditiveMask, LM_Mask, BERT), {}),
    "unilm": type("ReferenceUniLMBERT", (AdditiveMask, UniLM_Mask, BERT), {}),
}


@pytest.mark.parametrize("application", ["encoder", "lm", "unilm"])
def test_previous_mode_equals_bert4keras_residual_attention_with_masks(tmp_path, application):
    """Our 'previous' mode with lm/unilm masks (boolean, handled in the layer) gives
    bert4keras's own residual_attention_scores=True outputs."""
    config = dict(MHA_CONFIG, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_path = _config_file(tmp_path, config)
    # the application's mask lives in the reference class (bert4keras would wrap it again)
    reference = bert4keras_build(config_path, model=REFERENCE_BERT[application], with_mlm="linear",
                                 residual_attention_scores=True, return_keras_model=False)
    for index in range(config["num_hidden_layers"]):  # scores large enough to matter
        attention = reference.model.get_layer("Transformer-%d-MultiHeadSelfAttention" % index)
        for dense in (attention.q_dense, attention.k_dense):
            dense.kernel.assign(dense.kernel * 15.0)
    reference.save_weights_as_checkpoint(str(tmp_path / "bert_model.ckpt"))
    ours = gau_alpha.build_transformer_model(config_path, str(tmp_path / "bert_model.ckpt"), model="bert",
                                             application=application, residual_attention_scores=True, with_mlm="linear",
                                             residual_attention_mode="previous", allow_unused_weights=False)
    plain = gau_alpha.build_transformer_model(config_path, str(tmp_path / "bert_model.ckpt"), model="bert",
                                              application=application, with_mlm="linear")
    tokens, segments = padded_batch([10, 16, 5], config["vocab_size"], seed=2)
    want = reference.model.predict([tokens, segments], verbose=0)
    got = ours.predict([tokens, segments], verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    without_residual = np.abs(plain.predict([tokens, segments], verbose=0) - want).max()
    assert without_residual > max(100 * np.abs(got - want).max(), 1e-3)  # the residual matters
