"""``gau-alpha pretrain`` as users run it, on the bundled slice of the real corpus with a tiny
GAU-alpha: the MLM loss falls, a run killed with ``kill -9`` resumes to exactly the weights of
an uninterrupted one, the output directory is a release-layout model that loads strictly,
and bad input fails with one line and leaves nothing behind.

(Fine-tuning the output with ``gau-alpha clue --model-dir`` and the 2-worker runs are in
``tests/test_multiworker_pretrain.py``.)
"""
from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

import helpers
import interruptions
from gau_alpha.clue.state import load_arrays

STEPS, SAVE_EVERY = 30, 10
COMMON = ["--steps", STEPS, "--save-every", SAVE_EVERY, "--log-every", 5, "--maxlen", 32, "--batch-size", 8,
          "--learning-rate", 0.01, "--lr-schedule", "0:1", "--window", 64, "--seed", 11, "--no-progress"]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "bert_config.json"
    path.write_text(json.dumps(helpers.TINY_CONFIG), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config) -> Path:
    """An uninterrupted 30-step run (the bundled corpus and validation slice)."""
    output = tmp_path_factory.mktemp("runs") / "uninterrupted"
    result = helpers.run_cli(["pretrain", "--output-dir", output, "--config", tiny_config, *COMMON])
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def _history(output: Path):
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    return metrics, [(r["step"], r["loss"], r["mlm_accuracy"]) for r in metrics["history"]]


def test_mlm_loss_falls_within_thirty_steps(trained):
    metrics, history = _history(trained)
    assert [step for step, _, _ in history] == list(range(5, STEPS + 1, 5))
    assert history[-1][1] < history[0][1] - 1.0, history
    valid = metrics["valid"]
    assert [row["step"] for row in valid] == [0, 10, 20, 30]
    assert valid[0]["loss"] > 9.0  # the untrained model: about ln(12000) = 9.39
    assert valid[-1]["loss"] < valid[0]["loss"] - 1.0, valid
    assert metrics["exact_resume"] is True and metrics["finished"] is True
    assert (trained / "pretrain_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kill_9_then_resume_gives_the_uninterrupted_weights(trained, tiny_config, tmp_path):
    output = tmp_path / "killed"
    args = ["pretrain", "--output-dir", output, "--config", tiny_config, *COMMON]
    process = interruptions.start_cli(args)
    latest = output / "checkpoints" / "latest.json"

    def first_checkpoint_written():
        try:
            return json.loads(latest.read_text(encoding="utf-8"))["step"] >= SAVE_EVERY
        except (OSError, ValueError):
            return False

    assert interruptions.wait_until(first_checkpoint_written, process, timeout=300)
    code, _, err = interruptions.interrupt(process, signal.SIGKILL)
    assert code == -signal.SIGKILL, err[-2000:]
    killed_at = json.loads(latest.read_text(encoding="utf-8"))["step"]
    assert killed_at < STEPS
    assert not (output / "bert_model.ckpt.index").exists()

    again = helpers.run_cli(args)  # without --resume: refused, nothing changed
    helpers.assert_one_line_error(again, 2, str(output), "--resume")
    resumed = helpers.run_cli(args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr

    final = "checkpoints/step-%09d" % STEPS
    for name in ("model.npz", "optimizer.npz"):
        names, expected = load_arrays(trained / final / name)
        got_names, got = load_arrays(output / final / name)
        assert got_names == names
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
    assert _history(output)[1] == _history(trained)[1]
    assert [r["loss"] for r in _history(output)[0]["valid"]] == [r["loss"] for r in _history(trained)[0]["valid"]]


def test_output_is_a_release_layout_model_that_loads_strictly(trained):
    import gau_alpha
    from gau_alpha.model_dir import open_model_dir

    files = open_model_dir(trained)
    assert files.vocab.read_bytes() == gau_alpha.RELEASE_VOCAB.read_bytes()
    model = gau_alpha.build_transformer_model(files.config, files.checkpoint, with_mlm=True)  # strict
    names, arrays = load_arrays(trained / "checkpoints" / ("step-%09d" % STEPS) / "model.npz")
    assert [w.name for w in model.weights] == names  # the same graph, weights in the same order
    for weight, saved in zip(model.weights, arrays):
        np.testing.assert_array_equal(weight.numpy(), saved)


def test_an_earlier_run_resumes_only_with_the_same_settings(trained, tiny_config):
    result = helpers.run_cli(["pretrain", "--output-dir", trained, "--config", tiny_config, "--resume",
                              *COMMON[:-3], "--seed", 12, "--no-progress"])
    helpers.assert_one_line_error(result, 2, "cannot --resume", "seed")


# ---------------------------------------------------------------------------- bad input
def _bad_corpus(tmp_path, content: bytes) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", ["empty corpus", "non-UTF-8 line", "config and vocab disagree",
                                  "init-from with other shapes"])
def test_bad_input_fails_with_one_line_and_writes_nothing(case, tmp_path, tiny_config):
    output = tmp_path / "out"
    args = ["pretrain", "--output-dir", output, "--steps", 2, "--maxlen", 32, "--batch-size", 2, "--no-progress"]
    if case == "empty corpus":
        corpus = _bad_corpus(tmp_path, b"\n   \n")
        result = helpers.run_cli(args + ["--corpus", corpus, "--config", tiny_config])
        fragments = (str(corpus), "no documents")
    elif case == "non-UTF-8 line":
        corpus = _bad_corpus(tmp_path, '{"text": "今天天气不错"}\n{"text": "好"}\n'.encode("utf-8") + b'{"text": "\xff"}\n')
        result = helpers.run_cli(args + ["--corpus", corpus, "--config", tiny_config])
        fragments = (str(corpus), "line 3", "not UTF-8")
    elif case == "config and vocab disagree":
        config = tmp_path / "bert_config.json"
        config.write_text(json.dumps(dict(helpers.TINY_CONFIG, vocab_size=21128)), encoding="utf-8")
        result = helpers.run_cli(args + ["--config", config])
        fragments = (str(config), "vocab_size 21128", "12000 tokens")
    else:
        release = helpers.write_release_dir(tmp_path / "release", helpers.TINY_CONFIG)
        config = tmp_path / "wider.json"
        config.write_text(json.dumps(dict(helpers.TINY_CONFIG, hidden_size=64)), encoding="utf-8")
        result = helpers.run_cli(args + ["--init-from", release, "--config", config])
        fragments = ("shape mismatch for variable", helpers.tf1_name("Embedding-Token"), "(12000, 128)", "(12000, 64)")
    helpers.assert_one_line_error(result, 2, *fragments)
    assert not output.exists()
