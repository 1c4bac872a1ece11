"""Tests of gau_alpha.convert: the name map, lossless round trips, the PyTorch port, bad input.

Random checkpoints in the release layout come from ``tests/helpers.py``. The PyTorch port runs
in its own virtual environment (``bash scripts/install_port.sh`` makes ``.venv-port``) through
``tests/port_runner.py``; those tests are skipped, saying so, when it is absent.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf

import helpers
from helpers import tf1_name
from gau_alpha import build_transformer_model, cli, read_tf1_checkpoint, write_tf1_checkpoint
from gau_alpha.atomic import owner_pid
from gau_alpha.convert import (
    ConversionError,
    ConversionRunError,
    backbone_name_map,
    check_bijection,
    convert,
    detect_format,
    dims_from_config,
    read_checkpoint,
)
from gau_alpha.convert import cli as convert_cli
from gau_alpha.convert import names, torch_format
from gau_alpha.errors import CheckpointError
from gau_alpha.spec import ModelDims

REPO = Path(__file__).resolve().parent.parent
PORT_PYTHON = REPO / ".venv-port" / "bin" / "python"
PORT_RUNNER = Path(__file__).resolve().parent / "port_runner.py"
TINY = helpers.TINY_CONFIG  # 2 layers, H 128, E 256, S 32, the real 12000-token vocab
TINY_DIMS = ModelDims.from_config(TINY)
H, E, S = TINY_DIMS.hidden_size, TINY_DIMS.intermediate_size, TINY_DIMS.attention_key_size

needs_port = pytest.mark.skipif(
    not PORT_PYTHON.exists(),
    reason="the PyTorch port's venv %s is absent; create it with: bash scripts/install_port.sh" % PORT_PYTHON,
)


# --------------------------------------------------------------------------- helpers
def assert_identical(expected: Dict[str, np.ndarray], actual: Dict[str, np.ndarray]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        got = actual[name]
        assert got.dtype == value.dtype, name
        assert got.shape == value.shape, name
        assert got.tobytes() == value.tobytes(), name


def leftovers(parent: Path) -> List[str]:
    """Temporary directories a conversion may have left in ``parent`` (gau_alpha.atomic's names)."""
    return sorted(p.name for p in parent.iterdir() if owner_pid(p) is not None)


def release_dir(path: Path, config=TINY, extra: Dict[str, np.ndarray] = None, seed: int = 0) -> Path:
    helpers.write_release_dir(path, config, seed=seed)
    if extra:
        tensors = read_tf1_checkpoint(path)
        tensors.update(extra)
        for leftover in path.glob("bert_model.ckpt.*"):
            leftover.unlink()
        write_tf1_checkpoint(path / "bert_model.ckpt", tensors)
    return path


def run_port(model_dir: Path, tokens: np.ndarray, segments: np.ndarray, work: Path) -> Dict:
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "tokens.npy", tokens)
    np.save(work / "segments.npy", segments)
    out = work / "port-out"
    done = subprocess.run(
        [str(PORT_PYTHON), "-I", str(PORT_RUNNER), str(model_dir),
         str(work / "tokens.npy"), str(work / "segments.npy"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "loading.json").read_text())
    result["hidden"] = np.load(out / "last_hidden_state.npy")
    result["logits"] = np.load(out / "mlm_logits.npy")
    return result


# -------------------------------------------------------------------------- name map
def test_name_map_matches_the_keras_model_and_the_port_layout():
    mapping = backbone_name_map(TINY_DIMS)
    check_bijection(mapping)
    transformer = build_transformer_model(config_path=None, return_keras_model=False, **TINY)
    keras_names = [n for names_ in transformer.variable_mapping().values() for n in names_]
    assert sorted(m.tf1 for m in mapping) == sorted(keras_names)
    gau = transformer.model.get_layer("Transformer-1-GatedAttentionUnit")
    assert tuple(gau.i_dense.kernel.shape) == (H, 2 * E + S)
    by_tf1 = {m.tf1: m for m in mapping}
    # The port's keys as its modules spell them (GAUAlphaModel: embeddings.*, encoder.layer.N.gau.*);
    # nn.Linear holds [out, in].
    layer = by_tf1[tf1_name("i_dense/kernel", 1)]
    assert (layer.torch, layer.transpose, layer.torch_shape) == ("encoder.layer.1.gau.i_dense.weight", True, (2 * E + S, H))
    out = by_tf1[tf1_name("o_dense/kernel", 0)]
    assert (out.torch, out.torch_shape) == ("encoder.layer.0.gau.o_dense.weight", (H, E))
    gamma = by_tf1[tf1_name("k_scaleoffset/gamma", 1)]
    assert (gamma.torch, gamma.transpose) == ("encoder.layer.1.gau.k_scaleoffset.weight", False)
    assert by_tf1[tf1_name("Embedding-Token")].torch == "embeddings.word_embeddings.weight"
    assert by_tf1[tf1_name("Embedding-Segment")].torch_shape == (2, H)
    assert len(mapping) == 2 + 4 * 2
    assert len(backbone_name_map(ModelDims.from_config(helpers.base_config()))) == 98  # the release's count


def test_bijection_check_rejects_a_duplicate():
    mapping = backbone_name_map(TINY_DIMS)
    bad = mapping + [dataclasses.replace(mapping[0], tf1="extra/kernel", shape=(1,))]
    with pytest.raises(ConversionError, match="embeddings.word_embeddings.weight is used 2 times"):
        check_bijection(bad)


def test_factorised_embeddings_cannot_be_converted():
    """The port has no embedding mapping: a config with embedding_size != hidden_size is refused."""
    config = dict(TINY, embedding_size=H // 2)
    with pytest.raises(ConversionError, match="factorised embeddings are not supported"):
        dims_from_config(config, "bert_config.json")
    with pytest.raises(ConversionError, match="no counterpart"):
        backbone_name_map(ModelDims.from_config(config))
    with pytest.raises(ConversionError, match="hidden_size"):
        dims_from_config(dict(TINY, hidden_size=0), "bert_config.json")


def test_head_names_map_both_ways_and_reject_other_spellings():
    assert names.head_tf1_to_torch("head/classifier/kernel") == "head.classifier.kernel"
    assert names.head_torch_to_tf1("head.classifier.kernel") == "head/classifier/kernel"
    for bad in ("classifier/kernel", "head/", "head/a.b", "head/a//b"):
        with pytest.raises(ConversionError):
            names.head_tf1_to_torch(bad)
    with pytest.raises(ConversionError):
        names.head_torch_to_tf1("head.a/b")


def test_tf1_torch_transposes_are_exact_and_inverse():
    tensors = helpers.random_release_tensors(TINY, seed=3)
    state = names.tf1_to_torch(tensors, TINY_DIMS)
    kernel = tensors[tf1_name("i_dense/kernel", 0)]
    assert np.array_equal(state["encoder.layer.0.gau.i_dense.weight"], kernel.T)
    assert_identical(tensors, names.torch_to_tf1(state, TINY_DIMS, "state"))
    # The port's published layout: backbone under gau_alpha., plus the tied MLM decoder.
    published = {"gau_alpha." + k: v for k, v in state.items()}
    published["cls.predictions.decoder.weight"] = state["embeddings.word_embeddings.weight"].copy()
    assert_identical(tensors, names.torch_to_tf1(published, TINY_DIMS, "published"))


# ----------------------------------------------------------------------- round trips
def test_round_trip_tf1_keras_torch_tf1_is_bit_identical(tmp_path, capsys):
    extra = {
        "head/classifier/kernel": np.random.default_rng(1).standard_normal((H, 3)).astype(np.float32),
        "head/classifier/bias": np.arange(3, dtype=np.float16),
    }
    src = release_dir(tmp_path / "src", extra=extra)
    source = read_tf1_checkpoint(src)
    assert detect_format(src) == "tf1"

    assert cli.main(["convert", str(src), str(tmp_path / "keras"), "--to", "keras"]) == 0
    summary = capsys.readouterr().out
    assert "tensors:    12 (10 backbone, 2 head)" in summary
    assert "parameters: %s" % format(sum(v.size for v in source.values()), ",") in summary
    assert sorted(os.listdir(tmp_path / "keras")) == [
        "bert_config.json", "extra_tensors.safetensors", "model.weights.h5", "vocab.txt"
    ]
    assert detect_format(tmp_path / "keras") == "keras"

    report = convert(tmp_path / "keras", tmp_path / "torch", to="torch")
    assert (report.source_format, report.destination_format) == ("keras", "torch")
    assert sorted(os.listdir(tmp_path / "torch")) == ["config.json", "model.safetensors", "vocab.txt"]
    from safetensors.numpy import load_file

    state = load_file(str(tmp_path / "torch" / "model.safetensors"))
    assert np.array_equal(state["head.classifier.bias"], extra["head/classifier/bias"])
    assert state["head.classifier.bias"].dtype == np.float16
    assert np.array_equal(
        state["encoder.layer.1.gau.o_dense.weight"], source[tf1_name("o_dense/kernel", 1)].T
    )

    convert(tmp_path / "torch", tmp_path / "back", to="tf1")
    assert_identical(source, read_tf1_checkpoint(tmp_path / "back"))
    assert json.loads((tmp_path / "back" / "bert_config.json").read_text()) == TINY
    assert (tmp_path / "back" / "vocab.txt").read_bytes() == (src / "vocab.txt").read_bytes()
    assert leftovers(tmp_path) == []


def test_torch_config_has_every_field_the_port_reads(tmp_path):
    src = release_dir(tmp_path / "src")
    convert(src, tmp_path / "torch", to="torch", max_position_embeddings=1024)
    config = json.loads((tmp_path / "torch" / "config.json").read_text())
    # GAUAlphaConfig.__init__ of gau-alpha 0.0.3 reads these (plus transformers' own fields).
    port_fields = {
        "vocab_size": 12000, "hidden_size": H, "intermediate_size": E, "num_hidden_layers": 2,
        "max_position_embeddings": 1024, "type_vocab_size": 2, "initializer_range": 0.02,
        "attention_key_size": S, "layer_norm_eps": tf.keras.backend.epsilon(), "pad_token_id": 0,
        "gradient_checkpointing": False, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "hidden_act": "swish", "classifier_dropout": 0.1, "use_bias": False, "normalization": "softmax_plus",
        "attention_scale": True, "embedding_size": H, "architectures": ["GAUAlphaForMaskedLM"],
        "model_type": "gau_alpha", "torch_dtype": "float32",
    }
    assert {k: config.get(k) for k in port_fields} == port_fields
    assert config["bert_config"] == TINY


@pytest.mark.slow
def test_round_trip_of_the_base_config_is_bit_identical(tmp_path):
    """The real 24-layer shapes (~390 MB of float32), one pass tf1 -> keras -> torch -> tf1."""
    config = helpers.base_config()
    src = release_dir(tmp_path / "src", config=config)
    source = read_tf1_checkpoint(src)
    assert sum(v.size for v in source.values()) == 96517632  # the release's parameter count
    convert(src, tmp_path / "keras", to="keras")
    convert(tmp_path / "keras", tmp_path / "torch", to="torch")
    convert(tmp_path / "torch", tmp_path / "back", to="tf1")
    assert_identical(source, read_tf1_checkpoint(tmp_path / "back"))
    if PORT_PYTHON.exists():  # the port on real shapes, while the files are here
        tokens, segments = helpers.padded_batch([16, 40, 27], config["vocab_size"], seed=5)
        port = run_port(tmp_path / "torch", tokens, segments, tmp_path / "port")
        model = build_transformer_model(src / "bert_config.json", src)
        ours = model.predict([tokens, segments], verbose=0)
        valid = tokens != 0
        diff = np.abs(ours - port["hidden"])[valid].max()
        print("base config: max abs diff vs the port (valid positions): %.3g" % diff)
        assert diff <= 1e-4


# ------------------------------------------------------------------------ the port
@needs_port
@pytest.mark.port
def test_port_loads_our_torch_output_and_matches_keras(tmp_path):
    head = {"head/classifier/kernel": np.ones((H, 3), np.float32)}
    src = release_dir(tmp_path / "src", extra=head, seed=7)
    convert(src, tmp_path / "torch", to="torch")
    tokens, segments = helpers.padded_batch([16, 37, 24, 50], TINY["vocab_size"], seed=2)
    port = run_port(tmp_path / "torch", tokens, segments, tmp_path / "port")
    for cls in ("model", "mlm"):  # only the head tensor is left over, nothing is missing
        assert port[cls]["missing_keys"] == [] and port[cls]["mismatched_keys"] == [], port[cls]
        assert port[cls]["unexpected_keys"] == ["head.classifier.kernel"], port[cls]
    assert port["decoder_tied"]
    assert port["layer_norm_eps"] == tf.keras.backend.epsilon()

    backbone = {k: v for k, v in read_tf1_checkpoint(src).items() if not k.startswith("head/")}
    model = build_transformer_model(src / "bert_config.json", backbone)
    ours = model.predict([tokens, segments], verbose=0)
    diff = np.abs(ours - port["hidden"])
    valid = tokens != 0
    print("max abs diff vs the port (valid positions): %.3g, all positions: %.3g" % (diff[valid].max(), diff.max()))
    assert diff[valid].max() <= 1e-4

    mlm = build_transformer_model(src / "bert_config.json", backbone, with_mlm="linear")
    logits = mlm.predict([tokens, segments], verbose=0)
    scale = max(1.0, float(np.abs(logits).max()))
    assert np.abs(logits - port["logits"])[valid].max() <= 1e-4 * scale


@needs_port
@pytest.mark.port
def test_short_sequences_differ_only_by_the_softmax_plus_clamp(tmp_path):
    """bert4keras clamps softmax_plus's key count at 16, the port does not: below 16 tokens
    the default model differs from the port, ``softmax_plus_min_length=None`` matches it.
    A one-token row differs from both: the port 0.0.3 scales its -1e4 mask by log(1) = 0
    and so attends to the padding as well."""
    src = release_dir(tmp_path / "src", seed=8)
    convert(src, tmp_path / "torch", to="torch")
    lengths = [1, 3, 9, 15, 20]
    tokens, segments = helpers.padded_batch(lengths, TINY["vocab_size"], seed=4)
    port = run_port(tmp_path / "torch", tokens, segments, tmp_path / "port")["hidden"]
    valid = tokens != 0

    def row_diffs(model):
        ours = model.predict([tokens, segments], verbose=0)
        assert np.isfinite(ours).all()
        diff = np.abs(ours - port)
        return [float(diff[row][valid[row]].max()) for row in range(len(lengths))]

    unclamped = row_diffs(build_transformer_model(src / "bert_config.json", src, softmax_plus_min_length=None))
    assert max(unclamped[1:]) <= 1e-4
    assert unclamped[0] > 1e-3  # the port's masked-score scaling at n = 1
    clamped = row_diffs(build_transformer_model(src / "bert_config.json", src))
    assert min(clamped[1:4]) > 1e-3  # 3, 9 and 15 tokens: the clamp changes the attention
    assert clamped[4] <= 1e-4  # 20 tokens: no clamp in effect


# ------------------------------------------------------------------------ bad input
def assert_nothing_written(dst: Path) -> None:
    assert not dst.exists()
    assert leftovers(dst.parent) == []


def test_truncated_data_file_is_named(tmp_path):
    src = release_dir(tmp_path / "src")
    data = src / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="bert_model.ckpt.data-00000-of-00001"):
        convert(src, tmp_path / "out", to="torch")
    assert_nothing_written(tmp_path / "out")


def test_missing_index_is_named(tmp_path):
    src = release_dir(tmp_path / "src")
    (src / "bert_model.ckpt.index").unlink()
    with pytest.raises(ConversionError, match=r"no index file \(bert_model.ckpt.index is missing\)"):
        convert(src, tmp_path / "out", to="keras")
    assert_nothing_written(tmp_path / "out")


def test_wrong_shapes_are_listed(tmp_path):
    src = release_dir(tmp_path / "src")
    tensors = read_tf1_checkpoint(src)
    tensors[tf1_name("i_dense/kernel", 1)] = np.zeros((H, 100), np.float32)
    tensors[tf1_name("Embedding-Segment")] = np.zeros((3, H), np.float32)
    write_tf1_checkpoint(src / "bert_model.ckpt", tensors)
    with pytest.raises(ConversionError) as caught:
        convert(src, tmp_path / "out", to="torch")
    message = str(caught.value)
    kernel = tf1_name("i_dense/kernel", 1)
    assert "wrong shape for %s: found (%d, 100), expected (%d, %d)" % (kernel, H, H, 2 * E + S) in message
    segments = tf1_name("Embedding-Segment")
    assert "wrong shape for %s: found (3, %d), expected (2, %d)" % (segments, H, H) in message
    assert_nothing_written(tmp_path / "out")


def test_a_checkpoint_of_another_depth_says_so_first():
    """The command line shows only the first line of a long list: it names the depths."""
    tensors = helpers.random_release_tensors(dict(TINY, num_hidden_layers=3))
    with pytest.raises(ConversionError) as caught:
        names.check_tf1_tensors(tensors, TINY_DIMS, "ckpt")
    first, *rest = str(caught.value).splitlines()
    assert first == "ckpt does not hold a GAU-alpha checkpoint of its config: it has 3 layers, the config " \
                    "says num_hidden_layers 2:"
    assert len(rest) == 4 and all("unknown variable " + tf1_name("i_dense/kernel", 2).rsplit("/", 2)[0] + "/" in line
                                   for line in rest)
    state = names.tf1_to_torch(helpers.random_release_tensors(TINY), TINY_DIMS)
    deeper = ModelDims.from_config(dict(TINY, num_hidden_layers=4))
    with pytest.raises(ConversionError, match="it has 2 layers, the config says num_hidden_layers 4"):
        names.torch_to_tf1(state, deeper, "state")


def test_unknown_variables_are_listed(tmp_path):
    extra = {
        "cls/predictions/output_bias": np.zeros(12000, np.float32),
        "head/ok": np.zeros(2, np.float32),
        "head/bad.name": np.zeros(2, np.float32),
    }
    src = release_dir(tmp_path / "src", extra=extra)
    with pytest.raises(ConversionError) as caught:
        convert(src, tmp_path / "out", to="keras")
    message = str(caught.value)
    assert "unknown variable cls/predictions/output_bias (12000,) float32" in message
    assert "unknown variable head/bad.name" in message
    assert "head/ok" not in message
    assert_nothing_written(tmp_path / "out")


def test_unknown_and_untied_torch_keys_are_listed(tmp_path):
    src = release_dir(tmp_path / "src")
    convert(src, tmp_path / "torch", to="torch")
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "torch" / "model.safetensors"
    state = load_file(str(path))
    state["classifier.weight"] = np.zeros((3, H), np.float32)
    state["cls.predictions.decoder.weight"] = state["embeddings.word_embeddings.weight"] + 1
    save_file(state, str(path), metadata={"format": "pt"})
    with pytest.raises(ConversionError) as caught:
        read_checkpoint(tmp_path / "torch")
    message = str(caught.value)
    assert "unknown key classifier.weight (3, %d) float32" % H in message
    assert "cls.predictions.decoder.weight is not tied" in message


def test_truncated_safetensors_and_h5_are_named(tmp_path):
    src = release_dir(tmp_path / "src")
    convert(src, tmp_path / "torch", to="torch")
    convert(src, tmp_path / "keras", to="keras")
    for fmt, name in (("torch", "model.safetensors"), ("keras", "model.weights.h5")):
        path = tmp_path / fmt / name
        path.write_bytes(path.read_bytes()[:1000])
        with pytest.raises(ConversionError, match=name):
            convert(tmp_path / fmt, tmp_path / ("out-" + fmt), to="tf1")
        assert_nothing_written(tmp_path / ("out-" + fmt))


def test_keras_weights_of_another_config_are_refused(tmp_path):
    src = release_dir(tmp_path / "src")
    convert(src, tmp_path / "keras", to="keras")
    config = dict(TINY, num_hidden_layers=1)
    (tmp_path / "keras" / "bert_config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="holds 10 arrays but the model built from bert_config.json has 6"):
        read_checkpoint(tmp_path / "keras")


class _Boom:
    """Unpickling this creates a marker file: it must never happen."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_only_directory_without_torch_is_refused_unread(tmp_path, monkeypatch):
    src = release_dir(tmp_path / "src")
    convert(src, tmp_path / "torch", to="torch")
    (tmp_path / "torch" / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    with open(tmp_path / "torch" / "pytorch_model.bin", "wb") as handle:
        pickle.dump(_Boom(str(marker)), handle)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert detect_format(tmp_path / "torch") == "torch"
    with pytest.raises(ConversionError) as caught:
        convert(tmp_path / "torch", tmp_path / "out", to="tf1")
    message = str(caught.value)
    assert "pytorch_model.bin" in message and "needs PyTorch" in message and "gau-alpha-keras[torch]" in message
    assert not marker.exists()
    assert_nothing_written(tmp_path / "out")


def test_legacy_bin_is_loaded_with_weights_only(tmp_path, monkeypatch):
    """With torch present, only ``torch.load(..., weights_only=True)`` touches the pickle."""
    src = release_dir(tmp_path / "src")
    convert(src, tmp_path / "torch", to="torch")
    from safetensors.numpy import load_file

    state = load_file(str(tmp_path / "torch" / "model.safetensors"))
    (tmp_path / "torch" / "model.safetensors").unlink()
    (tmp_path / "torch" / "pytorch_model.bin").write_bytes(b"not read by this fake torch")
    calls = []

    class FakeTensor:
        def __init__(self, value):
            self.value = value

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.value

    def load(path, **kwargs):
        calls.append((path, kwargs))
        return {("gau_alpha." + k): FakeTensor(v) for k, v in state.items()}

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=load))
    bundle = read_checkpoint(tmp_path / "torch")
    assert calls == [(str(tmp_path / "torch" / "pytorch_model.bin"), {"map_location": "cpu", "weights_only": True})]
    assert_identical(read_tf1_checkpoint(src), bundle.tensors)


def test_existing_destination_is_refused_unless_overwrite(tmp_path, capsys):
    src = release_dir(tmp_path / "src")
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "old.txt").write_text("keep me")
    assert cli.main(["convert", str(src), str(dst), "--to", "torch"]) == 2  # bad input
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(os.listdir(dst)) == ["old.txt"]
    # --overwrite replaces only a checkpoint directory: unrelated files are kept.
    assert cli.main(["convert", str(src), str(dst), "--to", "torch", "--overwrite"]) == 2
    assert "holds no checkpoint of one known format" in capsys.readouterr().err
    assert sorted(os.listdir(dst)) == ["old.txt"]
    (dst / "old.txt").unlink()  # an empty directory may be replaced
    assert cli.main(["convert", str(src), str(dst), "--to", "torch", "--overwrite"]) == 0
    assert sorted(os.listdir(dst)) == ["config.json", "model.safetensors", "vocab.txt"]
    assert cli.main(["convert", str(src), str(dst), "--to", "tf1", "--overwrite"]) == 0  # so may a conversion
    assert sorted(os.listdir(dst)) == [
        "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index", "checkpoint", "vocab.txt"
    ]
    assert leftovers(tmp_path) == []


def test_failed_verification_leaves_nothing_and_keeps_the_old_destination(tmp_path, monkeypatch, capsys):
    src = release_dir(tmp_path / "src")
    convert(src, tmp_path / "old", to="torch")
    old = {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}
    real_write = torch_format.write

    def corrupting_write(bundle, directory, **options):
        bundle = type(bundle)(**{**bundle.__dict__, "tensors": dict(bundle.tensors)})
        name = tf1_name("q_scaleoffset/gamma", 0)
        bundle.tensors[name] = bundle.tensors[name] + np.float32(1e-3)
        return real_write(bundle, directory, **options)

    monkeypatch.setattr(torch_format, "write", corrupting_write)
    with pytest.raises(ConversionRunError, match="layer_0/gau/q_scaleoffset/gamma: values differ"):
        convert(src, tmp_path / "out", to="torch")
    assert_nothing_written(tmp_path / "out")
    with pytest.raises(ConversionRunError):
        convert(src, tmp_path / "old", to="torch", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()} == old
    assert leftovers(tmp_path) == []
    # A failed run, not bad input: exit status 1, one line.
    assert cli.main(["convert", str(src), str(tmp_path / "out"), "--to", "torch"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verification of" in err[0] and "values differ" in err[0]


def test_source_without_a_checkpoint_or_with_two_formats(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="holds no checkpoint"):
        detect_format(tmp_path / "empty")
    src = release_dir(tmp_path / "src")
    (src / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConversionError, match="ambiguous"):
        detect_format(src)
    with pytest.raises(ConversionError, match="does not exist"):
        detect_format(tmp_path / "missing")


def test_vocab_must_match_the_config(tmp_path):
    src = release_dir(tmp_path / "src")
    (src / "vocab.txt").write_text("[PAD]\n[UNK]\n", encoding="utf-8")
    with pytest.raises(ConversionError, match="vocab.txt has 2 lines but the config's vocab_size is 12000"):
        convert(src, tmp_path / "out", to="keras")
    assert_nothing_written(tmp_path / "out")


def test_bert4keras_epsilon_is_what_the_torch_config_says():
    transformer = build_transformer_model(config_path=None, return_keras_model=False, **TINY)
    norm = transformer.model.get_layer("Embedding-Norm")
    assert norm.epsilon == torch_format.BERT4KERAS_EPSILON == tf.keras.backend.epsilon()


def test_cli_usage_errors(capsys):
    assert convert_cli.main(["a", "b", "--to", "tf1", "--max-position-embeddings", "10"]) == 2
    assert "--to torch only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_cli.main(["a", "b", "--to", "onnx"])
