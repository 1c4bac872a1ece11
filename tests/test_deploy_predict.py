"""``gau-alpha predict`` and ``load_finetuned``: a fine-tuned run's ``best/`` used on new records.

The runs (``deploy_runs.py``) fine-tune the tiny GAU-alpha on the bundled samples; predicting
their test files must give their own submission files byte for byte (same tokenisation,
truncation, batches, prediction path and writer), and every bad input is one error line
naming the file (and line) with no output written.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deploy_runs import MAXLEN, finetuned_runs, tnews_model, tnews_onnx_export, tnews_test_records  # noqa: F401
from gau_alpha.clue import load_finetuned, load_split, submission_filename, validate_submission
from gau_alpha.clue.tasks import get_task
from gau_alpha.deploy.inputs import read_examples
from gau_alpha.deploy.predict import write_predictions
from gau_alpha.errors import DataError, ModelDirError
from gau_alpha.tokenization import load_tokenizer
from helpers import assert_one_line_error, run_cli


def _test_file(run) -> Path:
    return Path(run.output_dir).parent.parent / "data" / run.task / "test.json"


def test_predict_command_reproduces_the_runs_submission_byte_for_byte(finetuned_runs, tmp_path):
    run = finetuned_runs("tnews")
    best = Path(run.output_dir) / "best"
    assert sorted(p.name for p in best.iterdir()) == sorted(
        ["best.json", "bert_config.json", "finetuned.json", "model.npz", "model.weights.h5", "vocab.txt"])
    description = json.loads((best / "finetuned.json").read_text(encoding="utf-8"))
    assert description["task"] == "tnews" and description["maxlen"] == MAXLEN
    assert description["labels"] == get_task("tnews").labels and description["output"]["name"] == "logits"

    output = tmp_path / "predictions.json"
    result = run_cli(["predict", run.output_dir, "--input", _test_file(run), "--output", output, "--no-progress"])
    assert result.returncode == 0, result.stderr[-3000:]
    submission = run.submission.read_bytes()
    assert len(submission.splitlines()) == len(tnews_test_records()) == 202
    assert output.read_bytes() == submission

    # The summary counts the records cut to maxlen (counted here with the run's tokenizer).
    tokenizer = load_tokenizer(best / "vocab.txt", fast=True)
    longer = sum(len(tokenizer.encode(r["sentence"])[0]) > MAXLEN for r in tnews_test_records())
    assert longer >= 1 and "%d truncated to maxlen %d" % (longer, MAXLEN) in result.stderr, result.stderr


def test_load_finetuned_predicts_records_dicts_and_plain_text(finetuned_runs, tnews_model, tmp_path):
    run = finetuned_runs("tnews")
    model = tnews_model
    expected = [json.loads(line)["label"] for line in run.submission.read_text(encoding="utf-8").splitlines()]
    records = tnews_test_records()
    assert model.predict(records) == expected
    assert model.predict([r["sentence"] for r in records]) == expected  # plain strings, ids 0..
    examples = load_split("tnews", _test_file(run).parent, "test")
    assert model.predict(examples) == expected

    # Plain text lines through the reader; the best/ directory alone (copied away) is enough.
    text = tmp_path / "lines.txt"
    text.write_text("\n".join(r["sentence"] for r in records[:5]) + "\n\n", encoding="utf-8")
    examples = read_examples(model.task, str(text))
    assert [e.id for e in examples] == [0, 1, 2, 3, 4]
    copied = load_finetuned(shutil.copytree(Path(run.output_dir) / "best", tmp_path / "copy"))
    assert copied.predict(examples) == expected[:5]


def test_a_run_written_before_best_described_itself_stays_readable(finetuned_runs, tmp_path):
    run = finetuned_runs("tnews")
    old = shutil.copytree(run.output_dir, tmp_path / "old-run")
    for name in ("finetuned.json", "model.weights.h5", "bert_config.json", "vocab.txt"):
        (old / "best" / name).unlink()
    model = load_finetuned(old)
    assert model.weights.name == "model.npz"
    expected = [json.loads(line)["label"] for line in run.submission.read_text(encoding="utf-8").splitlines()]
    assert model.predict(tnews_test_records()) == expected


@pytest.mark.parametrize("task", ["cluener", "cmrc2018"])
def test_predictions_pass_the_submission_validator_and_equal_the_run(task, finetuned_runs, tmp_path):
    run = finetuned_runs(task)
    model = load_finetuned(run.output_dir)
    examples = read_examples(model.task, str(_test_file(run)))
    predictions = model.run(model.encode(examples))
    where, data = write_predictions(task, examples, predictions.predictions, str(tmp_path), "1.1")
    assert Path(where) == tmp_path / submission_filename(task)
    validate_submission(task, where, load_split(task, _test_file(run).parent, "test"))
    assert data == run.submission.read_bytes()
    if task == "cmrc2018":
        assert predictions.features > len(examples)  # contexts longer than maxlen: several windows each


def test_onnx_runtime_agrees_with_tf_where_tf_is_decided(finetuned_runs, tnews_model, tnews_onnx_export, tmp_path):
    run = finetuned_runs("tnews")
    _, export = tnews_onnx_export
    output = tmp_path / "onnx.json"
    result = run_cli(["predict", export, "--fp32", "--input", _test_file(run), "--output", output,
                      "--threads", "1", "--no-progress"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "onnxruntime (model.onnx)" in result.stderr
    model = tnews_model
    tf_run = model.run(model.encode(read_examples(model.task, str(_test_file(run)))))
    onnx_rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in onnx_rows] == [e.id for e in tf_run.examples]
    decided = 0
    for logits, row, label in zip(tf_run.summaries, onnx_rows, tf_run.predictions):
        top = np.sort(logits)[-2:]
        if top[1] - top[0] > 1e-4:  # the export matches within 1e-4: only near-ties may flip
            decided += 1
            assert row["label"] == label
    assert decided > 150


# ------------------------------------------------------------------------------ bad input
def _expect_no_output(result, output: Path, *fragments: str) -> None:
    assert_one_line_error(result, 2, *fragments)
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_malformed_input_line_is_one_error_naming_file_and_line(finetuned_runs, tmp_path):
    run = finetuned_runs("tnews")
    lines = _test_file(run).read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-5]  # line 3 cut short
    bad = tmp_path / "bad.json"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out" / "predictions.json"
    output.parent.mkdir()
    result = run_cli(["predict", run.output_dir, "--input", bad, "--output", output])
    _expect_no_output(result, output, "gau-alpha predict: error: %s, line 3: invalid JSON" % bad)

    missing_id = tmp_path / "no-id.json"
    missing_id.write_text('{"id": 0, "sentence": "a"}\n{"sentence": "b"}\n', encoding="utf-8")
    result = run_cli(["predict", run.output_dir, "--input", missing_id, "--output", output])
    _expect_no_output(result, output, "%s, line 2: missing field 'id'" % missing_id)


def test_run_directory_missing_files_is_one_error_naming_the_file(finetuned_runs, tmp_path):
    run = finetuned_runs("tnews")
    output = tmp_path / "out" / "predictions.json"
    output.parent.mkdir()
    result = run_cli(["predict", tmp_path / "nowhere", "--input", _test_file(run), "--output", output])
    _expect_no_output(result, output, "%s: no such directory" % (tmp_path / "nowhere"))

    broken = shutil.copytree(run.output_dir, tmp_path / "broken")
    (broken / "best" / "model.weights.h5").unlink()
    result = run_cli(["predict", broken, "--input", _test_file(run), "--output", output])
    _expect_no_output(result, output, "lacks model.weights.h5")

    (broken / "best" / "finetuned.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(Exception) as raised:
        load_finetuned(broken)
    assert "finetuned.json" in str(raised.value) and "not valid JSON" in str(raised.value)

    shutil.rmtree(broken / "best")
    with pytest.raises(ModelDirError, match="no best/ directory"):
        load_finetuned(broken)


def test_unknown_runtime_and_missing_input_are_one_line(finetuned_runs, tmp_path):
    run = finetuned_runs("tnews")
    output = tmp_path / "out" / "predictions.json"
    output.parent.mkdir()
    result = run_cli(["predict", run.output_dir, "--input", _test_file(run), "--output", output, "--runtime", "tflite"])
    _expect_no_output(result, output, "argument --runtime: invalid choice: 'tflite'")
    result = run_cli(["predict", run.output_dir, "--input", tmp_path / "absent.json", "--output", output])
    _expect_no_output(result, output, "%s: file not found" % (tmp_path / "absent.json"))


def test_plain_text_is_refused_for_tasks_with_structured_records(finetuned_runs, tmp_path):
    run = finetuned_runs("cmrc2018")
    model = load_finetuned(run.output_dir)
    text = tmp_path / "question.txt"
    text.write_text("北京是哪个国家的首都？\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: invalid JSON"):
        read_examples(model.task, str(text))
    with pytest.raises(DataError, match="cmrc2018 records are not plain text"):
        model.predict(["北京是哪个国家的首都？"])
