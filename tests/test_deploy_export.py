"""``gau-alpha export``: SavedModel and ONNX (+ int8) exports of a fine-tuned run, reloaded by
TensorFlow and onnxruntime and compared with the Keras model on padded batches of mixed lengths."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deploy_runs import finetuned_runs, tnews_model, tnews_onnx_export  # noqa: F401
from gau_alpha.clue import load_finetuned
from gau_alpha.clue.features import collate_inputs, make_batches
from gau_alpha.deploy.export import compare_outputs, export_finetuned
from gau_alpha.errors import ConfigError, RunError
from helpers import assert_one_line_error, padded_batch, run_cli

LENGTHS = (3, 17, 64, 9)


def _keras(model, token_ids, segment_ids):
    return model.keras_model()([token_ids, segment_ids], training=False).numpy()


def _check_common_files(out: Path, model) -> dict:
    assert json.loads((out / "labels.json").read_text(encoding="utf-8")) == model.labels
    assert (out / "vocab.txt").read_bytes() == model.vocab.read_bytes()
    info = json.loads((out / "export.json").read_text(encoding="utf-8"))
    assert info["task"] == model.task.name and info["maxlen"] == model.params.maxlen
    assert [i["name"] for i in info["inputs"]] == ["token_ids", "segment_ids"]
    assert all(i["dtype"] == "int32" and i["shape"] == ["batch", "length"] for i in info["inputs"])
    assert info["check"]["max_abs_diff"] <= 1e-4 and info["check"]["examples"] == 200
    assert info["check"]["batches"] > 1
    return info


def test_savedmodel_reloads_with_its_signature_and_matches_keras(tnews_model, tmp_path):
    import tensorflow as tf

    out = tmp_path / "savedmodel"
    report = export_finetuned(tnews_model, out, "savedmodel", say=lambda *a: None)
    assert report.max_abs_diff <= 1e-4
    _check_common_files(out, tnews_model)
    serving = tf.saved_model.load(str(out)).signatures["serving_default"]
    inputs = serving.structured_input_signature[1]
    assert sorted(inputs) == ["segment_ids", "token_ids"]
    assert all(spec.dtype == tf.int32 and spec.shape.as_list() == [None, None] for spec in inputs.values())
    assert list(serving.structured_outputs) == ["logits"]
    token_ids, segment_ids = padded_batch(LENGTHS, 12000, seed=1)
    got = serving(token_ids=tf.constant(token_ids), segment_ids=tf.constant(segment_ids))["logits"].numpy()
    expected = _keras(tnews_model, token_ids, segment_ids)
    assert got.shape == (len(LENGTHS), len(tnews_model.labels))
    assert np.abs(got - expected).max() <= 1e-4


def test_onnx_export_reloads_in_onnxruntime_and_matches_keras(tnews_model, tnews_onnx_export):
    import onnxruntime as ort

    report, out = tnews_onnx_export
    info = _check_common_files(out, tnews_model)
    assert info["model"] == "model.int8.onnx" and report.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("token_ids", "tensor(int32)"),
                                                              ("segment_ids", "tensor(int32)")]
    assert all(not isinstance(dim, int) for i in session.get_inputs() for dim in i.shape)  # dynamic axes
    assert [o.name for o in session.get_outputs()] == ["logits"]
    token_ids, segment_ids = padded_batch(LENGTHS, 12000, seed=2)
    got = session.run(["logits"], {"token_ids": token_ids, "segment_ids": segment_ids})[0]
    assert np.abs(got - _keras(tnews_model, token_ids, segment_ids)).max() <= 1e-4


def test_int8_export_loads_and_agrees_with_fp32_on_the_sample_labels(tnews_model, tnews_onnx_export):
    import onnxruntime as ort

    report, out = tnews_onnx_export
    fp32, int8 = (ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
                  for name in ("model.onnx", "model.int8.onnx"))
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    from gau_alpha.clue import load_split

    dev = load_split("tnews", tnews_model.description["data_dir"], "dev")
    features = tnews_model.encode(dev).features
    same = total = 0
    for indices in make_batches([f.length for f in features], 32):
        inputs = collate_inputs([features[i] for i in indices])
        feeds = {"token_ids": inputs["token_ids"], "segment_ids": inputs["segment_ids"]}
        a, b = (s.run(["logits"], feeds)[0] for s in (fp32, int8))
        same += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += len(indices)
    assert total == len(dev) == 200
    assert same / total >= 0.95
    assert report.int8_agreement == pytest.approx(same / total)


def test_onnx_export_of_the_global_pointer_head_keeps_its_masked_spans(finetuned_runs, tmp_path):
    import onnxruntime as ort

    model = load_finetuned(finetuned_runs("cluener").output_dir)
    out = tmp_path / "cluener-onnx"
    report = export_finetuned(model, out, "onnx", check_limit=64, say=lambda *a: None)
    assert report.max_abs_diff <= 1e-4 and report.check_examples == 64
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["entity_logits"]
    token_ids, segment_ids = padded_batch(LENGTHS, 12000, seed=3)
    segment_ids[:] = 0
    got = session.run(None, {"token_ids": token_ids, "segment_ids": segment_ids})[0]
    expected = _keras(model, token_ids, segment_ids)
    assert got.shape == (len(LENGTHS), 10, max(LENGTHS), max(LENGTHS))
    assert np.isneginf(expected).any() and np.isfinite(expected).any()
    assert compare_outputs(expected, got) <= 1e-4  # the same -inf entries, finite ones within 1e-4


# ------------------------------------------------------------------------------ bad input
def test_a_failed_check_writes_nothing_and_an_earlier_export_needs_overwrite(tnews_model, tmp_path):
    out = tmp_path / "export"
    with pytest.raises(RunError, match="differs from the Keras model") as raised:
        export_finetuned(tnews_model, out, "savedmodel", tolerance=-1.0, say=lambda *a: None)
    assert raised.value.exit_code == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []

    (out / "notes").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is not an export of gau-alpha"):
        export_finetuned(tnews_model, out, "savedmodel", say=lambda *a: None)
    with pytest.raises(ConfigError, match="would replace the model it exports"):
        export_finetuned(tnews_model, tnews_model.directory, "savedmodel", say=lambda *a: None)
    with pytest.raises(ConfigError, match="--quantize int8 needs --format onnx"):
        export_finetuned(tnews_model, tmp_path / "other", "savedmodel", quantize="int8", say=lambda *a: None)


def test_command_line_errors_are_one_line(finetuned_runs, tmp_path):
    run = finetuned_runs("tnews")
    result = run_cli(["export", run.output_dir, tmp_path / "out", "--format", "tflite"])
    assert_one_line_error(result, 2, "argument --format: invalid choice: 'tflite'")
    result = run_cli(["export", tmp_path / "no-run", tmp_path / "out", "--format", "onnx"])
    assert_one_line_error(result, 2, "gau-alpha export: error: %s: no such directory" % (tmp_path / "no-run"))
    assert not (tmp_path / "out").exists()
