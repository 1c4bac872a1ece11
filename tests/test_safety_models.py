"""Validation at the door for model building, checkpoint loading and fill-mask (issue 9).

Command-line cases run real ``gau-alpha fill-mask`` processes and assert the exit code, the
one-line message, no traceback and an empty stdout; the cases refused before TensorFlow is
imported take a fraction of a second, those that import it a few seconds (they are grouped).
API cases call :func:`gau_alpha.build_transformer_model` and assert the error and its message,
and that a checkpoint that does not fit the config is refused before any Keras layer is built.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import gau_alpha
import gau_alpha.models
from gau_alpha.checkpoints import checkpoint_prefix
from gau_alpha.errors import CheckpointError, ConfigError
from gau_alpha.model_options import check_overrides
from gau_alpha.spec import ModelDims, backbone_tensors
from helpers import TINY_CONFIG, assert_one_line_error, tf1_name, random_release_tensors, run_cli, write_release_dir

#: the TF1 name prefix of the third GAU layer's variables
LAYER_2 = tf1_name("i_dense/kernel", 2).rsplit("/", 2)[0] + "/"

DEEP_CONFIG = dict(TINY_CONFIG, num_hidden_layers=4)
DIMS = ModelDims.from_config(TINY_CONFIG)
LAST_LAYER = backbone_tensors(DIMS)[-1]  # layer 1's o_dense kernel (a name from the spec)
GAMMA = next(t for t in backbone_tensors(DIMS) if t.keras_weight == "q_scaleoffset/gamma")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A tiny release-layout model directory (2 layers)."""
    return write_release_dir(tmp_path_factory.mktemp("release") / "tiny", TINY_CONFIG)


@pytest.fixture(scope="module")
def deep_checkpoint_dir(tmp_path_factory) -> Path:
    """A 4-layer checkpoint beside the 2-layer config."""
    directory = write_release_dir(tmp_path_factory.mktemp("deep") / "model", DEEP_CONFIG)
    (directory / "bert_config.json").write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    return directory


def _copy(release: Path, destination: Path) -> Path:
    return Path(shutil.copytree(release, destination))


def _fill_mask(model_dir, text="中[MASK]", *flags):
    return run_cli(["fill-mask", "--model-dir", model_dir, *flags, text])


def _refused(result, *fragments) -> str:
    assert result.stdout == "", result.stdout
    return assert_one_line_error(result, 2, *fragments)


# ------------------------------------------------------------------ fill-mask: before TensorFlow
@pytest.mark.parametrize("text, message", [
    ("没有掩码", "contains no [MASK] marker"),
    ("", "the text is empty"),
    ("   ", "the text is empty"),
])
def test_fill_mask_refuses_a_text_without_mask_or_empty(release, text, message):
    _refused(_fill_mask(release, text), "gau-alpha fill-mask: error:", message)


@pytest.mark.parametrize("top_k", ["0", "-1", "two"])
def test_fill_mask_refuses_a_top_k_below_one(release, top_k):
    result = _fill_mask(release, "中[MASK]", "--top-k", top_k)
    assert result.stdout == ""
    assert_one_line_error(result, 2, "gau-alpha fill-mask: error: argument --top-k: expected a positive "
                                     "integer, got %r (see gau-alpha fill-mask --help)" % top_k)


def test_fill_mask_never_falls_back_to_the_release_vocab(release, tmp_path):
    model_dir = _copy(release, tmp_path / "model")
    (model_dir / "vocab.txt").unlink()
    _refused(_fill_mask(model_dir), "model directory %s lacks vocab.txt" % model_dir)


@pytest.mark.parametrize("lines, hint", [(11999, True), (12001, False)])
def test_fill_mask_refuses_a_vocab_of_another_size(release, tmp_path, lines, hint):
    model_dir = _copy(release, tmp_path / "model")
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = vocab[:lines] + ["[extra%d]" % i for i in range(lines - len(vocab))]
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    line = _refused(_fill_mask(model_dir), "vocab.txt has %d tokens but" % lines, "says vocab_size 12000")
    assert ("--allow-larger-embedding" in line) is hint


@pytest.mark.parametrize("change, fragments", [
    (lambda c: c.pop("num_hidden_layers"), ["bert_config.json", "missing key 'num_hidden_layers'"]),
    (lambda c: c.update(hidden_act=3), ["bert_config.json", "'hidden_act' must be", "got 3"]),
    (lambda c: c.update(hidden_dropout_prob="0.1"), ["bert_config.json", "'hidden_dropout_prob' must be a number"]),
    (lambda c: c.update(num_attention_heads=0), ["bert_config.json", "'num_attention_heads' must be a positive"]),
    (None, ["bert_config.json is not valid JSON"]),
])
def test_fill_mask_refuses_a_bad_config_naming_file_and_key(release, tmp_path, change, fragments):
    model_dir = _copy(release, tmp_path / "model")
    if change is None:
        (model_dir / "bert_config.json").write_text("{\"hidden_size\": 128,", encoding="utf-8")
    else:
        config = dict(TINY_CONFIG)
        change(config)
        (model_dir / "bert_config.json").write_text(json.dumps(config), encoding="utf-8")
    _refused(_fill_mask(model_dir), *fragments)


def test_fill_mask_refuses_a_text_longer_than_the_config_allows(release, tmp_path):
    model_dir = _copy(release, tmp_path / "model")
    (model_dir / "bert_config.json").write_text(json.dumps(dict(TINY_CONFIG, max_position_embeddings=16)))
    _refused(_fill_mask(model_dir, "今天天气很好我们去公园散步吧[MASK]。"),
             "the text is 18 tokens long", "at most 16", "max_position_embeddings in %s" % (model_dir / "bert_config.json"))


# ------------------------------------------------------------------ fill-mask: checkpoints
def test_fill_mask_refuses_a_checkpoint_of_another_depth(deep_checkpoint_dir):
    _refused(_fill_mask(deep_checkpoint_dir),
             "checkpoint %s has 4 GAU layers, config %s says 2"
             % (deep_checkpoint_dir / "bert_model.ckpt", deep_checkpoint_dir / "bert_config.json"),
             "8 unused variable(s): unused checkpoint variable " + LAYER_2, "; ... and 5 more")


def test_fill_mask_nonfinite_refused_then_allowed_with_a_larger_embedding(release, tmp_path):
    """NaN in one tensor: refused naming it; with --allow-nonfinite (and a vocab one line
    short, --allow-larger-embedding) the command runs and warns."""
    model_dir = _copy(release, tmp_path / "model")
    tensors = random_release_tensors(TINY_CONFIG)
    tensors[GAMMA.tf1][:3] = np.nan
    for path in model_dir.glob("bert_model.ckpt.*"):
        path.unlink()
    gau_alpha.write_tf1_checkpoint(model_dir / "bert_model.ckpt", tensors)
    _refused(_fill_mask(model_dir), "holds NaN or infinite values in 1 tensor(s)",
             "%s (3 of %d values)" % (GAMMA.tf1, DIMS.attention_key_size), "--allow-nonfinite")

    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()[:-1]
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    result = _fill_mask(model_dir, "中[MASK]", "--allow-nonfinite", "--allow-larger-embedding", "--top-k", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("[MASK] 1: ") and len(result.stdout.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert "%s (3 of %d values)" % (GAMMA.tf1, DIMS.attention_key_size) in result.stderr
    assert "loading them anyway" in result.stderr


# ------------------------------------------------------------------ the builder's overrides
def test_a_misspelt_override_is_refused_with_a_suggestion(release):
    with pytest.raises(ConfigError, match=r"^unknown option 'hiden_size'; did you mean 'hidden_size'\?$"):
        gau_alpha.build_transformer_model(str(release / "bert_config.json"), str(release), hiden_size=64)
    with pytest.raises(ConfigError, match="unknown option 'dropout'; did you mean 'dropout_rate'"):
        gau_alpha.build_transformer_model(None, **TINY_CONFIG, dropout=0.0)
    with pytest.raises(ConfigError, match="unknown option 'zzz_qqq': not an option of ResidualBERT"):
        gau_alpha.build_transformer_model(str(release / "bert_config.json"), model="bert", zzz_qqq=1)
    with pytest.raises(ConfigError, match="option 'with_mlm' is not accepted by GPT"):
        gau_alpha.build_transformer_model(str(release / "bert_config.json"), model="gpt", with_mlm=True)


def test_every_override_the_project_uses_is_known():
    """The overrides passed in tests, benchmarks, CLUE and the converter stay valid."""
    models = gau_alpha.models
    used = ["with_mlm", "dropout_rate", "attention_dropout_rate", "softmax_plus_min_length", "normalization",
            "allow_unused_weights", "allow_nonfinite", "residual_attention_scores", "residual_attention_mode",
            "keep_tokens", "compound_tokens", "sequence_length", "name", "prefix", *TINY_CONFIG,
            "max_position_embeddings", "initializer_range", "max_position", "segment_vocab_size"]
    check_overrides(used, models.GAU_alpha)
    for bert_class in (models.ResidualBERT, models.ResidualRoFormer, models.ResidualRoFormerV2):
        check_overrides(["with_mlm", "allow_unused_weights", "residual_attention_mode", *TINY_CONFIG], bert_class)
    check_overrides(["version"], models.model_class_of("t5.1.1"))  # bert4keras's insert_arguments
    check_overrides(["my_key"], models.GAU_alpha, config_keys=["my_key"])  # a key of the config file


def test_overrides_and_configs_of_the_wrong_type_are_named(release, tmp_path):
    config_path = str(release / "bert_config.json")
    with pytest.raises(ConfigError, match=r"overrides of .*bert_config.json: 'dropout_rate' must be a number in \[0, 1\), got 'x'"):
        gau_alpha.build_transformer_model(config_path, dropout_rate="x")
    with pytest.raises(ConfigError, match=r"'num_hidden_layers' must be a positive integer, got 2.5"):
        gau_alpha.build_transformer_model(config_path, num_hidden_layers=2.5)
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({k: v for k, v in TINY_CONFIG.items() if k != "num_attention_heads"}))
    with pytest.raises(ConfigError, match=r"bert_config.json: missing key 'num_attention_heads'"):
        gau_alpha.build_transformer_model(str(path))
    bert = tmp_path / "bert.json"
    bert.write_text(json.dumps({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                "intermediate_size": 48, "vocab_size": 300, "attention_probs_dropout_prob": None}))
    with pytest.raises(ConfigError, match=r"bert.json: missing key 'hidden_act'$"):
        gau_alpha.build_transformer_model(str(bert), model="bert")
    bert.write_text(json.dumps({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                "intermediate_size": 48, "vocab_size": 300, "hidden_act": ["gelu", 5]}))
    with pytest.raises(ConfigError, match=r"bert.json: 'hidden_act' must be an activation name"):
        gau_alpha.build_transformer_model(str(bert), model="bert")


def test_unknown_model_or_application_is_one_line():
    for model in ("nonsense", 42):
        with pytest.raises(ConfigError) as info:
            gau_alpha.build_transformer_model(None, model=model, **TINY_CONFIG)
        assert "\n" not in str(info.value) and repr(model) in str(info.value)
    with pytest.raises(ConfigError, match="application must be one of encoder, lm, unilm, got None"):
        gau_alpha.build_transformer_model(None, application=None, **TINY_CONFIG)


# ------------------------------------------------------------------ checkpoints at the door
@pytest.fixture
def no_keras_build(monkeypatch):
    """Fail the test if the builder gets as far as building the Keras model."""
    def refuse(*args, **kwargs):
        raise AssertionError("the Keras model was built before the checkpoint was checked")

    monkeypatch.setattr(gau_alpha.models.b4k_models, "build_transformer_model", refuse)


def test_a_checkpoint_of_another_depth_fails_before_the_model_is_built(deep_checkpoint_dir, no_keras_build):
    config = deep_checkpoint_dir / "bert_config.json"
    with pytest.raises(CheckpointError) as info:
        gau_alpha.build_transformer_model(str(config), str(deep_checkpoint_dir))
    headline, *items = str(info.value).splitlines()
    assert headline == "checkpoint %s has 4 GAU layers, config %s says 2 (num_hidden_layers); 8 unused variable(s):" % (
        deep_checkpoint_dir / "bert_model.ckpt", config)
    assert items[-1] == "  - ... and 5 more"  # the first differences, then the count of the rest
    assert len(items) == 4 and all(i.startswith("  - unused checkpoint variable " + LAYER_2) for i in items[:3])
    # the other way round: a 2-layer checkpoint, a 4-layer config
    with pytest.raises(CheckpointError, match=r"^checkpoint \(given as arrays\) has 2 GAU layers, config "
                                              r"\(the given options\) says 4 .*; 8 missing variable\(s\)"):
        gau_alpha.build_transformer_model(None, random_release_tensors(TINY_CONFIG), **DEEP_CONFIG)


def test_shape_differences_are_listed_first_with_counts(release, no_keras_build):
    with pytest.raises(CheckpointError) as info:
        gau_alpha.build_transformer_model(str(release / "bert_config.json"), str(release), hidden_size=64)
    message = str(info.value)
    assert message.startswith("checkpoint %s does not fit config %s with overrides hidden_size; 6 of the wrong shape variable(s):"
                              % (release / "bert_model.ckpt", release / "bert_config.json"))
    assert "shape mismatch for variable %s: checkpoint (12000, 128), model (12000, 64)" % tf1_name("Embedding-Token") in message


def test_checkpoint_names_refuse_a_bookkeeping_file_pointing_elsewhere(release, tmp_path):
    elsewhere = _copy(release, tmp_path / "elsewhere")
    source = tmp_path / "src"
    source.mkdir()
    for path in release.glob("bert_model.ckpt.*"):
        shutil.copy(path, source / path.name.replace("bert_model.ckpt", "model.ckpt-100"))
    bookkeeping = source / "checkpoint"
    for target in (str(elsewhere / "bert_model.ckpt"), "../elsewhere/bert_model.ckpt"):
        bookkeeping.write_text('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (target, target))
        with pytest.raises(CheckpointError, match="checkpoint bookkeeping file %s points to %s, outside"
                           % (re.escape(str(bookkeeping)), re.escape(target))):
            gau_alpha.build_transformer_model(str(release / "bert_config.json"), str(source))
    # inside the directory, relative or absolute: followed
    for target in ("model.ckpt-100", str(source / "model.ckpt-100")):
        bookkeeping.write_text('model_checkpoint_path: "%s"\n' % target)
        assert checkpoint_prefix(source) == str(source / "model.ckpt-100")
    bookkeeping.write_text('model_checkpoint_path: "model.ckpt-7"\n')
    with pytest.raises(CheckpointError, match=r"points to model.ckpt-7, but .*model.ckpt-7.index does not exist"):
        checkpoint_prefix(source)
    # the release's own bert_model.ckpt wins over the bookkeeping file, as before
    release_copy = _copy(release, tmp_path / "release_copy")
    (release_copy / "checkpoint").write_text('model_checkpoint_path: "%s"\n' % (elsewhere / "bert_model.ckpt"))
    assert checkpoint_prefix(release_copy) == str(release_copy / "bert_model.ckpt")


def test_nonfinite_tensors_are_refused_unless_allowed(release, caplog):
    tensors = random_release_tensors(TINY_CONFIG)
    tensors[LAST_LAYER.tf1][0, 0] = np.inf
    tensors[GAMMA.tf1][1] = np.nan
    config_path = str(release / "bert_config.json")
    with pytest.raises(CheckpointError, match=r"NaN or infinite values in 2 tensor\(s\): %s \(1 of %d values\), %s \(1 of %d"
                       % (re.escape(GAMMA.tf1), DIMS.attention_key_size, re.escape(LAST_LAYER.tf1),
                          int(np.prod(LAST_LAYER.shape)))):
        gau_alpha.build_transformer_model(config_path, tensors)
    with caplog.at_level(logging.WARNING, logger="gau_alpha.checkpoints"):
        model = gau_alpha.build_transformer_model(config_path, tensors, allow_nonfinite=True)
    assert "loading them anyway" in caplog.text and LAST_LAYER.tf1 in caplog.text
    weight = model.get_layer(LAST_LAYER.keras_layer).trainable_weights[-1].numpy()
    assert np.isinf(weight[0, 0])


def test_write_tf1_checkpoint_uses_pid_tagged_temporaries_and_sweeps_stale_ones(tmp_path):
    import subprocess

    from gau_alpha.atomic import owner_pid

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / (".bert_model.ckpt.pid%d.abc.partial" % dead.pid)
    stale.mkdir()
    (stale / "ckpt.index").write_bytes(b"half")
    written = gau_alpha.write_tf1_checkpoint(tmp_path / "bert_model.ckpt", random_release_tensors(TINY_CONFIG))
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in written)
    assert all(owner_pid(p.name) is None for p in tmp_path.iterdir())
    assert checkpoint_prefix(tmp_path) == str(tmp_path / "bert_model.ckpt")
