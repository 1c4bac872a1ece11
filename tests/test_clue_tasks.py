"""CLUE fine-tuning: every task end to end on the bundled samples, exact resuming,
decoders on real records, batching helpers and command-line errors.

The model is the project's tiny GAU-alpha (``TINY_CONFIG``: 2 layers, hidden size 128)
with random weights written in the release layout, so runs load it exactly like the
real checkpoint.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import gau_alpha  # noqa: F401  (tf-keras + bert4keras set-up)
from gau_alpha import cli
from gau_alpha.clue import (
    label_list,
    load_split,
    read_submission,
    submission_filename,
    validate_submission,
)
from gau_alpha.clue.assignment import assign_candidates, min_cost_assignment
from gau_alpha.clue.features import Feature, collate_inputs, make_batches, pad_arrays, truncate_longest
from gau_alpha.clue.pipeline import RunOptions, run_clue
from gau_alpha.clue.runner import SAMPLE_EPOCHS, SCRATCH_EPOCHS, SCRATCH_LEARNING_RATE, options_from_args
from gau_alpha.clue.tasks import TASKS, TaskParams, get_spec, get_task
from gau_alpha.clue.tasks.choice import C3_CHOICES
from gau_alpha.clue.tasks.classification import WSC_MARKERS, mark_wsc_spans
from gau_alpha.clue.tasks.span import char_span_to_tokens, locate_answer
from gau_alpha.model_dir import create_random_model_dir
from gau_alpha.resources import CLUE_SAMPLES_DIR, RELEASE_VOCAB
from gau_alpha.tokenization import load_tokenizer
from helpers import TINY_CONFIG

JSON_LINES_TASKS = ("iflytek", "tnews", "afqmc", "cmnli", "ocnli", "wsc", "csl", "c3", "cluener")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return create_random_model_dir(tmp_path_factory.mktemp("model") / "tiny", TINY_CONFIG, seed=7).directory


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(RELEASE_VOCAB, fast=True)


def smoke_options(task: str, model_dir: Path, output_dir: Path, **changes) -> RunOptions:
    options = dict(
        task=task,
        data_dir=CLUE_SAMPLES_DIR / task,
        output_dir=output_dir,
        epochs=1,
        batch_size=4,
        maxlen=64,
        learning_rate=5e-4,
        grad_accum_steps=get_spec(task).defaults.grad_accum_steps,
        doc_stride=32,
        max_answer_len=30,
        seed=3,
        model_dir=model_dir,
        max_steps_per_epoch=2,
        eval_batch_size=64,
        progress=False,
    )
    options.update(changes)
    return RunOptions(**options)


# ------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("task", list(TASKS))
def test_task_trains_evaluates_and_writes_official_submission(task, tiny_model_dir, tmp_path):
    result = run_clue(smoke_options(task, tiny_model_dir, tmp_path / task))
    test = load_split(task, CLUE_SAMPLES_DIR, "test")

    # The submission: official file name, every test example in test-file order,
    # every label valid for its example (checked field by field by the validator).
    assert result.submission == tmp_path / task / "submission" / submission_filename(task)
    predictions = validate_submission(task, result.submission, test)
    assert len(predictions) == len(test)
    parsed = read_submission(task, result.submission)
    if task in JSON_LINES_TASKS:
        assert [row["id"] for row in parsed] == [example.id for example in test]
        assert all(set(row) == {"id", "label"} for row in parsed)
    if task in ("iflytek", "tnews", "afqmc", "cmnli", "ocnli", "wsc", "csl"):
        assert {row["label"] for row in parsed} <= set(label_list(task))
    if task == "c3":
        assert all(0 <= row["label"] < len(ex.choices) for row, ex in zip(parsed, test))
    if task == "chid":
        assert list(parsed) == [tag for example in test for tag in example.blanks]
        for example, chosen in zip(test, predictions):  # distinct candidates within a file line
            assert len(set(chosen)) == len(chosen)
    if task == "cmrc2018":
        assert list(parsed) == [example.id for example in test]
        for example in test:
            assert parsed[example.id] in example.context
    if task == "cluener":
        for row, example in zip(parsed, test):
            for entities in row["label"].values():
                for text, spans in entities.items():
                    assert all(example.text[s : e + 1] == text for s, e in spans)

    # Metrics: one epoch logged to JSON and CSV, the main metric in percent, a PNG curve.
    metrics = json.loads((tmp_path / task / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == task and metrics["main_metric"] == result.main_metric
    assert len(metrics["history"]) == 1 and 1 <= metrics["history"][0]["steps"] <= 2  # --max-steps-per-epoch 2
    assert 0.0 <= metrics["history"][0]["dev"][result.main_metric] <= 100.0
    assert np.isfinite(metrics["history"][0]["train_loss"])
    assert metrics["best"]["epoch"] == 1
    csv_lines = (tmp_path / task / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0].startswith("epoch,train_loss") and len(csv_lines) == 2
    assert (tmp_path / task / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / task / "checkpoints" / "epoch-0001" / "optimizer.npz").is_file()
    assert (tmp_path / task / "best" / "model.npz").is_file()


# ------------------------------------------------------------------------ resuming
class Interrupt(Exception):
    pass


def _stop_after_first_epoch(epochs_done, row):
    if epochs_done == 1:
        raise Interrupt


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tiny_model_dir, tmp_path):
    # Bit-exact across strategies holds for the dynamic-shape path; XLA compiles the mirrored
    # step differently (measured: 173 of 1.5M weights differ by <= 7.5e-9), so this runs --no-xla.
    # Same-strategy resume under XLA is exact (test_safety_clue's kill -9 tests).
    settings = dict(epochs=2, max_steps_per_epoch=3, batch_size=8, seed=11, xla=False)
    full = run_clue(smoke_options("tnews", tiny_model_dir, tmp_path / "full", **settings))
    with pytest.raises(Interrupt):
        run_clue(smoke_options("tnews", tiny_model_dir, tmp_path / "cut", **settings), _stop_after_first_epoch)
    assert json.loads((tmp_path / "cut" / "checkpoints" / "latest.json").read_text())["epoch"] == 1
    # Resumed in a different strategy (mirrored: one CPU replica here).
    resumed = run_clue(smoke_options("tnews", tiny_model_dir, tmp_path / "cut", resume=True,
                                     strategy="mirrored", **settings))

    def without_time(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert without_time(resumed.history) == without_time(full.history)
    assert resumed.best_score == full.best_score and resumed.best_epoch == full.best_epoch
    for name in ("model.npz", "optimizer.npz"):
        a = np.load(tmp_path / "full" / "checkpoints" / "epoch-0002" / name)
        b = np.load(tmp_path / "cut" / "checkpoints" / "epoch-0002" / name)
        keys = [k for k in a.files if k != "names"]
        assert keys == [k for k in b.files if k != "names"] and len(keys) > 10
        for key in keys:
            np.testing.assert_array_equal(a[key], b[key], err_msg="%s %s" % (name, key))
    assert full.submission.read_text(encoding="utf-8") == resumed.submission.read_text(encoding="utf-8")


def test_resume_refuses_changed_settings(tiny_model_dir, tmp_path):
    from gau_alpha.clue.pipeline import RunError

    run_clue(smoke_options("iflytek", tiny_model_dir, tmp_path, max_steps_per_epoch=1))
    with pytest.raises(RunError, match="maxlen: 64 -> 48"):
        run_clue(smoke_options("iflytek", tiny_model_dir, tmp_path, max_steps_per_epoch=1, maxlen=48, resume=True))


# ------------------------------------------------------------------------ decoders on real records
def test_cmrc2018_decoding_recovers_gold_answers_from_gold_positions(tokenizer):
    task = get_task("cmrc2018")
    dev = load_split("cmrc2018", CLUE_SAMPLES_DIR, "dev")
    params = TaskParams(maxlen=128, doc_stride=48, max_answer_len=100)
    features = task.encode(dev, tokenizer, params, labelled=True)
    assert len(features) > 2 * len(dev)  # contexts are longer than one window
    summaries = []
    for feature in features:
        logits = np.zeros((feature.length, 2), dtype=np.float32)
        start, end = feature.label
        if (start, end) != (0, 0):
            logits[start, 0] = logits[end, 1] = 10.0
        summaries.append(task.summarize(feature, logits))
    predictions = task.decode(dev, features, summaries, params)

    located = exact = 0
    for example, prediction in zip(dev, predictions):
        span = locate_answer(example)
        if span is None:
            continue
        located += 1
        gold = example.context[span[0] : span[1]]
        assert gold in prediction  # the gold tokens' characters always cover the answer
        exact += prediction == gold
    assert located >= 0.9 * len(dev)
    assert exact == located  # every sample answer starts and ends on token boundaries
    assert task.score(dev, predictions) == {"em": 100.0, "f1": 100.0, "average": 100.0}


def test_cmrc2018_answer_span_maps_to_tokens_covering_it(tokenizer):
    example = load_split("cmrc2018", CLUE_SAMPLES_DIR, "dev")[0]
    ids, _, spans = tokenizer.encode_with_offsets(example.context)
    offsets = np.asarray(spans[1:-1])
    start, end = locate_answer(example)
    first, last = char_span_to_tokens(offsets, start, end)
    assert offsets[first][0] <= start and offsets[last][1] >= end
    assert example.context[offsets[first][0] : offsets[last][1]] == example.answers[0]


def test_cluener_decoding_recovers_gold_entities_from_gold_span_labels(tokenizer):
    task = get_task("cluener")
    dev = load_split("cluener", CLUE_SAMPLES_DIR, "dev")
    params = TaskParams(maxlen=256)
    features = task.encode(dev, tokenizer, params, labelled=True)
    summaries = []
    for feature in features:
        labels = task.collate_labels([feature], collate_inputs([feature]))[0]
        summaries.append(task.summarize(feature, np.where(labels > 0, 5.0, -5.0)))
    predictions = task.decode(dev, features, summaries, params)
    representable = [len(f.label) == len(e.spans()) for f, e in zip(features, dev)]
    assert sum(representable) >= 0.95 * len(dev)
    for example, prediction, ok in zip(dev, predictions, representable):
        if ok:
            assert prediction == example.label, example.id
    assert task.score([e for e, ok in zip(dev, representable) if ok],
                      [p for p, ok in zip(predictions, representable) if ok])["f1"] == 100.0


def test_chid_joint_assignment_on_a_matrix_worked_out_by_hand():
    scores = np.array(
        [
            [9.0, 8.0, 1.0, 0.0],
            [8.0, 1.0, 0.0, 0.0],
            [1.0, 7.0, 6.0, 0.0],
        ]
    )
    # Row-wise argmax picks candidate 0 twice (blanks 0 and 1). The best distinct
    # choice is (1, 0, 2) with total 8 + 8 + 6 = 22; e.g. (0, 1, 2) gives 16 and
    # (0, 2, 1) gives 16.
    assert scores.argmax(axis=1).tolist() == [0, 0, 1]
    assert assign_candidates(scores) == [1, 0, 2]
    # More blanks (4) than candidates (3): no distinct assignment; each blank takes its argmax.
    assert assign_candidates(scores.T) == [0, 0, 2, 0]


def test_min_cost_assignment_matches_brute_force():
    rng = np.random.default_rng(0)
    for rows, cols in [(1, 1), (2, 3), (3, 3), (4, 6), (5, 5)]:
        for _ in range(5):
            cost = rng.integers(0, 20, size=(rows, cols)).astype(float)
            best = min(
                sum(cost[r, c] for r, c in enumerate(perm)) for perm in itertools.permutations(range(cols), rows)
            )
            chosen = min_cost_assignment(cost)
            assert len(set(chosen)) == rows
            assert sum(cost[r, c] for r, c in enumerate(chosen)) == best


def test_chid_decoding_assigns_candidates_jointly_across_the_passages_of_a_line(tokenizer):
    task = get_task("chid")
    dev = load_split("chid", CLUE_SAMPLES_DIR, "dev")
    params = TaskParams(maxlen=64)
    features = task.encode(dev, tokenizer, params, labelled=True)
    assert len(features) == sum(len(e.blanks) for e in dev)
    marker = tokenizer.token_to_id("[unused1]")
    for feature in features:
        rows = feature.inputs["token_ids"]
        assert rows.shape[0] == len(dev[0].candidates) and rows.shape[1] <= 64
        assert all((row == marker).sum() == 1 for row in rows)  # exactly one blank marked per sequence
    # Scores that favour the gold candidate, except that every blank also likes
    # the gold candidate of the line's first blank: only a joint assignment
    # (each candidate used once per line) recovers all gold answers.
    first_gold = dev[0].label[0]
    summaries = []
    for feature in features:
        scores = np.zeros(len(dev[0].candidates), dtype=np.float32)
        scores[first_gold] = 5.0
        scores[feature.label] = 4.0 if feature.label != first_gold else 6.0
        summaries.append(scores)
    predictions = task.decode(dev, features, summaries, params)
    assert predictions == [list(e.label) for e in dev]
    assert task.score(dev, predictions) == {"accuracy": 100.0}


def test_wsc_markers_are_vocab_tokens_and_wrap_the_spans(tokenizer):
    assert tokenizer.token_to_id("_") == tokenizer.unk_id  # the recipe's marker is not in this vocab
    example = load_split("wsc", CLUE_SAMPLES_DIR, "train")[0]
    marked = mark_wsc_spans(example)
    (open1, close1), (open2, close2) = WSC_MARKERS
    assert open1 + example.span1_text + close1 in marked
    assert open2 + example.span2_text + close2 in marked
    assert marked.replace(open1, "").replace(close1, "").replace(open2, "").replace(close2, "") == example.text
    tokens = tokenizer.tokenize(marked)
    for marker in (open1, close1, open2, close2):
        assert tokens.count(marker) == 1 and tokenizer.token_to_id(marker) != tokenizer.unk_id


def test_wsc_overlapping_spans_are_reported_with_the_example_id():
    import dataclasses

    example = load_split("wsc", CLUE_SAMPLES_DIR, "train")[0]
    bad = dataclasses.replace(example, span2_index=example.span1_index)
    with pytest.raises(ValueError, match="wsc example %r: span1 .* overlap" % example.id):
        mark_wsc_spans(bad)


def test_c3_features_hold_one_sequence_per_choice(tokenizer):
    task = get_task("c3")
    dev = load_split("c3", CLUE_SAMPLES_DIR, "dev")[:40]
    features = task.encode(dev, tokenizer, TaskParams(maxlen=96), labelled=True)
    for example, feature in zip(dev, features):
        ids, mask = feature.inputs["token_ids"], feature.inputs["choice_mask"]
        assert ids.shape[0] == C3_CHOICES and ids.shape[1] <= 96
        assert mask.tolist() == [1.0] * len(example.choices) + [0.0] * (C3_CHOICES - len(example.choices))
        assert feature.label == example.label_index
        for row, choice in zip(ids, example.choices):
            choice_ids = tokenizer.encode(choice)[0][1:-1]
            content = row[row > 0].tolist()
            if len(content) < 96:  # not truncated: the sequence ends with "choice [SEP]"
                assert content[-len(choice_ids) - 1 : -1] == choice_ids


# ------------------------------------------------------------------------ batching helpers
def test_truncate_longest_matches_bert4keras_popping_rule():
    def popping(lengths, budget):
        lengths = list(lengths)
        while sum(lengths) > budget:
            lengths[int(np.argmax(lengths))] -= 1
        return lengths

    rng = np.random.default_rng(1)
    for _ in range(300):
        lengths = rng.integers(0, 30, size=rng.integers(1, 4)).tolist()
        budget = int(rng.integers(0, 60))
        assert truncate_longest(lengths, budget) == popping(lengths, budget)


def test_make_batches_buckets_by_length_and_is_reproducible():
    lengths = np.random.default_rng(2).integers(3, 100, size=103)
    train = make_batches(lengths, 8, np.random.default_rng([5, 0]))
    assert sorted(i for batch in train for i in batch) == list(range(103))
    assert train == make_batches(lengths, 8, np.random.default_rng([5, 0]))
    assert train != make_batches(lengths, 8, np.random.default_rng([5, 1]))
    assert all(len(batch) <= 8 for batch in train)
    evaluation = make_batches(lengths, 10)
    flat = [lengths[i] for batch in evaluation for i in batch]
    assert flat == sorted(flat)


def test_collate_pads_each_batch_to_its_own_longest_feature():
    features = [
        Feature({"token_ids": np.array([101, 5, 102]), "span_mask": np.array([1, 0, 1])}, 0, 0),
        Feature({"token_ids": np.array([101, 102]), "span_mask": np.array([1, 1])}, 1, 1),
    ]
    batch = collate_inputs(features)
    assert batch["token_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["token_ids"].dtype == np.int32 and batch["span_mask"].dtype == np.float32
    assert batch["span_mask"].tolist() == [[1, 0, 1], [1, 1, 0]]
    assert batch["segment_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert pad_arrays([np.ones((2, 3)), np.ones((1, 4))]).shape == (2, 2, 4)


# ------------------------------------------------------------------------ command line
def test_default_settings_scratch_sample_and_recipe():
    import argparse

    from gau_alpha.clue.runner import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = options_from_args(parser.parse_args([]))
    assert options.task == "tnews" and options.data_dir == CLUE_SAMPLES_DIR / "tnews"
    # a random model trained from scratch: more epochs, a from-scratch learning rate
    assert options.model_dir is None
    assert (options.epochs, options.learning_rate) == (SCRATCH_EPOCHS, SCRATCH_LEARNING_RATE)
    assert (options.batch_size, options.maxlen) == (32, 128)
    assert options.output_dir == Path("runs") / "tnews"
    model_dir = str(CLUE_SAMPLES_DIR)  # any existing directory passes the argument check
    sample = options_from_args(parser.parse_args(["--model-dir", model_dir]))
    assert (sample.epochs, sample.learning_rate) == (SAMPLE_EPOCHS, 5e-4)
    real = options_from_args(parser.parse_args(["c3", "--data-dir", str(CLUE_SAMPLES_DIR), "--model-dir", model_dir]))
    assert (real.epochs, real.batch_size, real.maxlen, real.grad_accum_steps) == (10, 4, 512, 4)
    assert real.learning_rate == 5e-4


def test_cli_rejects_unknown_task(capsys):
    assert cli.main(["clue", "nosuchtask"]) == 2
    error = capsys.readouterr().err
    assert "unknown CLUE task 'nosuchtask'" in error and "tnews" in error


def test_cli_rejects_missing_data_dir(tmp_path, capsys):
    missing = tmp_path / "no-such-dir"
    assert cli.main(["clue", "afqmc", "--data-dir", str(missing)]) == 2
    assert "--data-dir %s does not exist" % missing in capsys.readouterr().err


def test_cli_rejects_data_dir_without_task_files(tmp_path, capsys):
    assert cli.main(["clue", "afqmc", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "train.json" in error and "file not found" in error


def test_cli_rejects_resume_without_checkpoint_and_missing_model_dir(tmp_path, capsys):
    assert cli.main(["clue", "--resume", "--output-dir", str(tmp_path / "run")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert cli.main(["clue", "--model-dir", str(tmp_path / "nothing")]) == 2
    assert "--model-dir %s does not exist" % (tmp_path / "nothing") in capsys.readouterr().err


def test_cli_reports_an_incomplete_model_dir_in_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "bert_config.json").write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    assert cli.main(["clue", "--model-dir", str(model), "--output-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    (line,) = [text for text in error.splitlines() if text.startswith("gau-alpha clue: error:")]
    assert "model directory %s lacks vocab.txt" % model in line


def test_runner_main_reports_bad_input_without_the_cli(capsys):
    from gau_alpha.clue.runner import main

    assert main(["nosuchtask"]) == 2
    assert "gau-alpha clue: error: unknown CLUE task 'nosuchtask'" in capsys.readouterr().err


def test_every_spec_is_complete_and_names_its_family():
    from gau_alpha.clue.tasks import Task

    assert list(TASKS) == ["iflytek", "tnews", "afqmc", "cmnli", "ocnli", "wsc", "csl",
                           "cmrc2018", "c3", "chid", "cluener"]
    for name, spec in TASKS.items():
        task = get_task(name)
        assert isinstance(task, spec.family) and issubclass(spec.family, Task)
        assert task.spec is spec and task.name == name and task.defaults is spec.defaults
        assert spec.published_dev_score is not None and spec.defaults.learning_rate == 5e-4
        assert set(spec.files.splits) >= {"train", "dev", "test"}
    assert get_spec("CLUEWSC2020") is TASKS["wsc"]
    assert TASKS["cmrc2018"].files.splits == ("train", "dev", "test", "trial")
