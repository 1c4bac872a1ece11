"""GAU-alpha model: parity with the bert4keras reference, builders, strict checkpoint loading."""
import json
import os

import numpy as np
import pytest

import gau_alpha
from bert4keras.models import build_transformer_model as bert4keras_build
from gau_alpha.checkpoints import CheckpointError
from helpers import TINY_CONFIG, base_config, padded_batch, random_release_tensors, write_release_dir
from reference import ReferenceGAUAlpha

import tensorflow as tf

LENGTHS = [3, 15, 64, 512]


def _hidden_and_mlm(model):
    """A two-output view of an MLM model: (last hidden states, MLM probabilities)."""
    last = len([l for l in model.layers if l.name.endswith("GatedAttentionUnit-Norm")]) - 1
    hidden = model.get_layer("Transformer-%d-GatedAttentionUnit-Norm" % last).output
    return tf.keras.Model(model.inputs, [hidden, model.output])


def _assert_parity(release_dir, config, application="encoder", tolerance=1e-5):
    config_path = os.path.join(release_dir, "bert_config.json")
    ckpt = os.path.join(release_dir, "bert_model.ckpt")
    ours = gau_alpha.build_transformer_model(config_path, ckpt, with_mlm=True, application=application)
    reference = bert4keras_build(config_path, ckpt, model=ReferenceGAUAlpha, with_mlm=True, application=application)
    tokens, segments = padded_batch(LENGTHS, config["vocab_size"])
    ours_hidden, ours_mlm = _hidden_and_mlm(ours).predict([tokens, segments], batch_size=4, verbose=0)
    ref_hidden, ref_mlm = _hidden_and_mlm(reference).predict([tokens, segments], batch_size=4, verbose=0)
    assert ours_hidden.shape == (4, 512, config["hidden_size"])
    assert ours_mlm.shape == (4, 512, config["vocab_size"])
    assert np.isfinite(ours_hidden).all()
    assert np.abs(ours_hidden - ref_hidden).max() <= tolerance
    assert np.abs(ours_mlm - ref_mlm).max() <= tolerance
    # The comparison is meaningful: a different checkpoint gives different outputs.
    assert np.abs(ours_hidden).max() > 0.1


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
    return write_release_dir(tmp_path_factory.mktemp("tiny"), TINY_CONFIG)


def test_parity_tiny_config(tiny_release):
    _assert_parity(tiny_release, TINY_CONFIG)


@pytest.mark.parametrize("application", ["lm", "unilm"])
def test_parity_tiny_config_lm_and_unilm(tiny_release, application):
    _assert_parity(tiny_release, TINY_CONFIG, application=application)


@pytest.mark.slow
def test_parity_real_base_config(tmp_path):
    config = base_config()
    assert (config["num_hidden_layers"], config["hidden_size"]) == (24, 768)
    _assert_parity(write_release_dir(tmp_path, config), config)


def test_bert4keras_builder_accepts_the_class(tiny_release):
    """``bert4keras.models.build_transformer_model(config, ckpt, model=GAU_alpha)``."""
    config_path = os.path.join(tiny_release, "bert_config.json")
    ckpt = os.path.join(tiny_release, "bert_model.ckpt")
    via_bert4keras = bert4keras_build(config_path, ckpt, model=gau_alpha.GAU_alpha)
    via_ours = gau_alpha.build_transformer_model(config_path, ckpt, model="gau_alpha")
    tokens, segments = padded_batch([5, 20], TINY_CONFIG["vocab_size"])
    np.testing.assert_array_equal(
        via_bert4keras.predict([tokens, segments], verbose=0), via_ours.predict([tokens, segments], verbose=0)
    )
    expected = random_release_tensors(TINY_CONFIG)
    weight = via_bert4keras.get_layer("Transformer-1-GatedAttentionUnit").trainable_weights[0]
    np.testing.assert_array_equal(weight.numpy(), expected["GAU_alpha/encoder/layer_1/gau/i_dense/kernel"])


def test_layer_names_and_weight_order_match_the_release(tiny_release):
    transformer = gau_alpha.build_transformer_model(
        os.path.join(tiny_release, "bert_config.json"), return_keras_model=False
    )
    names = {layer.name for layer in transformer.model.layers}
    for expected in ["Embedding-Token", "Embedding-Segment", "Embedding-Token-Segment", "Embedding-Norm",
                     "Embedding-Rotary-Position", "Transformer-0-GatedAttentionUnit",
                     "Transformer-0-GatedAttentionUnit-Add", "Transformer-1-GatedAttentionUnit-Norm"]:
        assert expected in names
    gau = transformer.layers["Transformer-0-GatedAttentionUnit"]
    shapes = [tuple(w.shape) for w in gau.trainable_weights]
    h, e, s = TINY_CONFIG["hidden_size"], TINY_CONFIG["intermediate_size"], TINY_CONFIG["attention_key_size"]
    assert shapes == [(h, 2 * e + s), (s,), (s,), (e, h)]


def test_save_weights_as_checkpoint_round_trips_every_tensor(tiny_release, tmp_path):
    transformer = gau_alpha.build_transformer_model(
        os.path.join(tiny_release, "bert_config.json"), os.path.join(tiny_release, "bert_model.ckpt"),
        return_keras_model=False,
    )
    transformer.save_weights_as_checkpoint(str(tmp_path / "bert_model.ckpt"))
    written = gau_alpha.read_tf1_checkpoint(tmp_path / "bert_model.ckpt")
    original = gau_alpha.read_tf1_checkpoint(os.path.join(tiny_release, "bert_model.ckpt"))
    assert sorted(written) == sorted(original)
    for name in original:
        np.testing.assert_array_equal(written[name], original[name], err_msg=name)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("bert_model.ckpt")


def test_builder_rejects_bad_arguments(tiny_release):
    config_path = os.path.join(tiny_release, "bert_config.json")
    with pytest.raises(ValueError, match="application"):
        gau_alpha.build_transformer_model(config_path, application="seq2seq")
    with pytest.raises(ValueError, match="residual_attention_scores is supported"):
        gau_alpha.build_transformer_model(config_path, model="albert", residual_attention_scores=True)
    with pytest.raises(FileNotFoundError, match="no_such_config.json"):
        gau_alpha.build_transformer_model(os.path.join(tiny_release, "no_such_config.json"))


# ------------------------------------------------------------------ strict loading
def _write(tmp_path, tensors):
    gau_alpha.write_tf1_checkpoint(tmp_path / "bert_model.ckpt", tensors)
    (tmp_path / "bert_config.json").write_text(json.dumps(TINY_CONFIG))
    return str(tmp_path / "bert_config.json"), str(tmp_path / "bert_model.ckpt")


def test_missing_variable_is_reported_by_name(tmp_path):
    tensors = random_release_tensors(TINY_CONFIG)
    del tensors["GAU_alpha/encoder/layer_1/gau/o_dense/kernel"]
    config_path, ckpt = _write(tmp_path, tensors)
    with pytest.raises(CheckpointError, match=r"missing variable GAU_alpha/encoder/layer_1/gau/o_dense/kernel .*shape \(128, 64\)"):
        gau_alpha.build_transformer_model(config_path, ckpt)


def test_wrong_shape_is_reported_with_both_shapes(tmp_path):
    tensors = random_release_tensors(TINY_CONFIG)
    tensors["GAU_alpha/encoder/layer_0/gau/q_scaleoffset/gamma"] = np.ones(8, np.float32)
    config_path, ckpt = _write(tmp_path, tensors)
    with pytest.raises(CheckpointError, match=r"q_scaleoffset/gamma: checkpoint \(8,\), model \(16,\)"):
        gau_alpha.build_transformer_model(config_path, ckpt)


def test_unused_variable_is_an_error_unless_allowed(tmp_path):
    tensors = random_release_tensors(TINY_CONFIG)
    tensors["cls/predictions/output_bias"] = np.zeros(12000, np.float32)
    config_path, ckpt = _write(tmp_path, tensors)
    with pytest.raises(CheckpointError, match=r"unused checkpoint variable cls/predictions/output_bias, shape \(12000,\)"):
        gau_alpha.build_transformer_model(config_path, ckpt)
    model = gau_alpha.build_transformer_model(config_path, ckpt, allow_unused_weights=True)
    np.testing.assert_array_equal(
        model.get_layer("Embedding-Token").embeddings.numpy(), tensors["bert/embeddings/word_embeddings"]
    )


def test_truncated_data_file_names_the_file(tmp_path):
    config_path, ckpt = _write(tmp_path, random_release_tensors(TINY_CONFIG))
    data = tmp_path / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="bert_model.ckpt.data-00000-of-00001"):
        gau_alpha.build_transformer_model(config_path, ckpt)


def test_missing_index_names_the_file(tmp_path):
    config_path, ckpt = _write(tmp_path, random_release_tensors(TINY_CONFIG))
    os.remove(ckpt + ".index")
    with pytest.raises(CheckpointError, match=r"bert_model.ckpt.index does not exist"):
        gau_alpha.build_transformer_model(config_path, ckpt)


def test_all_problems_are_listed_together(tmp_path):
    tensors = random_release_tensors(TINY_CONFIG)
    del tensors["bert/embeddings/token_type_embeddings"]
    tensors["GAU_alpha/encoder/layer_1/gau/i_dense/kernel"] = np.zeros((64, 10), np.float32)
    tensors["global_step"] = np.array(7, np.int64)
    config_path, ckpt = _write(tmp_path, tensors)
    with pytest.raises(CheckpointError) as info:
        gau_alpha.build_transformer_model(config_path, ckpt)
    message = str(info.value)
    assert "missing variable bert/embeddings/token_type_embeddings" in message
    assert "shape mismatch for variable GAU_alpha/encoder/layer_1/gau/i_dense/kernel: checkpoint (64, 10), model (64, 272)" in message
    assert "unused checkpoint variable global_step" in message
