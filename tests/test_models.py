"""GAU-alpha model: parity with the bert4keras reference, builders, strict checkpoint loading."""
import json
import os
import re

import numpy as np
import pytest

import gau_alpha
from bert4keras.models import build_transformer_model as bert4keras_build
from gau_alpha.checkpoints import CheckpointError
from gau_alpha.errors import ConfigError, ModelDirError
from gau_alpha.spec import TOKEN_EMBEDDINGS, ModelDims, backbone_tensors
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
    np.testing.assert_array_equal(weight.numpy(), expected[_tensor("Transformer-1-GatedAttentionUnit", "i_dense/kernel").tf1])


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


def test_unknown_model_name_is_a_config_error_listing_the_names(tiny_release):
    with pytest.raises(ConfigError) as info:
        gau_alpha.build_transformer_model(os.path.join(tiny_release, "bert_config.json"), model="nonsense")
    message = str(info.value)
    assert "\n" not in message and "'nonsense'" in message
    for name in ("gau_alpha", "bert", "roberta", "roformer", "roformer_v2", "albert", "nezha"):
        assert name in message


@pytest.mark.parametrize("model", ["gau_alpha", "bert"])
def test_config_file_problems_are_reported_before_bert4keras_reads_it(tmp_path, model):
    missing = tmp_path / "missing.json"
    with pytest.raises(ModelDirError, match="missing.json does not exist"):
        gau_alpha.build_transformer_model(str(missing), model=model)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json is not valid JSON"):
        gau_alpha.build_transformer_model(str(broken), model=model)
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="list.json: a model config must be a JSON object"):
        gau_alpha.build_transformer_model(str(not_object), model=model)


def test_gau_alpha_config_is_checked_by_read_config(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({k: v for k, v in TINY_CONFIG.items() if k != "attention_key_size"}))
    with pytest.raises(ConfigError, match="missing key 'attention_key_size'"):
        gau_alpha.build_transformer_model(str(path))


# ------------------------------------------------------------------ strict loading
def _tensor(layer, weight):
    """The spec of TINY_CONFIG's tensor held by ``layer``'s ``weight`` (names come from gau_alpha.spec)."""
    tensors = {(t.keras_layer, t.keras_weight): t for t in backbone_tensors(ModelDims.from_config(TINY_CONFIG))}
    return tensors[(layer, weight)]


def _write(tmp_path, tensors):
    gau_alpha.write_tf1_checkpoint(tmp_path / "bert_model.ckpt", tensors)
    (tmp_path / "bert_config.json").write_text(json.dumps(TINY_CONFIG))
    return str(tmp_path / "bert_config.json"), str(tmp_path / "bert_model.ckpt")


def test_missing_variable_is_reported_by_name(tmp_path):
    tensors = random_release_tensors(TINY_CONFIG)
    o_dense = _tensor("Transformer-1-GatedAttentionUnit", "o_dense/kernel")
    del tensors[o_dense.tf1]
    config_path, ckpt = _write(tmp_path, tensors)
    e, h = TINY_CONFIG["intermediate_size"], TINY_CONFIG["hidden_size"]
    with pytest.raises(CheckpointError, match=r"missing variable %s .*shape \(%d, %d\)" % (re.escape(o_dense.tf1), e, h)):
        gau_alpha.build_transformer_model(config_path, ckpt)


def test_wrong_shape_is_reported_with_both_shapes(tmp_path):
    tensors = random_release_tensors(TINY_CONFIG)
    tensors[_tensor("Transformer-0-GatedAttentionUnit", "q_scaleoffset/gamma").tf1] = np.ones(8, np.float32)
    config_path, ckpt = _write(tmp_path, tensors)
    key_size = TINY_CONFIG["attention_key_size"]
    with pytest.raises(CheckpointError, match=r"q_scaleoffset/gamma: checkpoint \(8,\), model \(%d,\)" % key_size):
        gau_alpha.build_transformer_model(config_path, ckpt)


def test_unused_variable_is_an_error_unless_allowed(tmp_path):
    tensors = random_release_tensors(TINY_CONFIG)
    tensors["cls/predictions/output_bias"] = np.zeros(12000, np.float32)
    config_path, ckpt = _write(tmp_path, tensors)
    with pytest.raises(CheckpointError, match=r"unused checkpoint variable cls/predictions/output_bias, shape \(12000,\)"):
        gau_alpha.build_transformer_model(config_path, ckpt)
    model = gau_alpha.build_transformer_model(config_path, ckpt, allow_unused_weights=True)
    np.testing.assert_array_equal(
        model.get_layer("Embedding-Token").embeddings.numpy(), tensors[TOKEN_EMBEDDINGS]
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
    segment = _tensor("Embedding-Segment", "embeddings").tf1
    i_dense = _tensor("Transformer-1-GatedAttentionUnit", "i_dense/kernel")
    del tensors[segment]
    tensors[i_dense.tf1] = np.zeros((64, 10), np.float32)
    tensors["global_step"] = np.array(7, np.int64)
    config_path, ckpt = _write(tmp_path, tensors)
    with pytest.raises(CheckpointError) as info:
        gau_alpha.build_transformer_model(config_path, ckpt)
    message = str(info.value)
    assert "missing variable %s" % segment in message
    assert "shape mismatch for variable %s: checkpoint (64, 10), model %s" % (i_dense.tf1, i_dense.shape) in message
    assert "unused checkpoint variable global_step" in message
