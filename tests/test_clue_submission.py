"""Tests of the CLUE submission writers on the real test samples."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List

import pytest

from gau_alpha.clue import (
    ClueSubmissionError,
    label_list,
    load_split,
    read_submission,
    submission_filename,
    validate_submission,
    write_atomically,
    write_submission,
)
from gau_alpha.resources import CLUE_SAMPLES_DIR as D

CLASSIFICATION = ("iflytek", "tnews", "afqmc", "cmnli", "ocnli", "wsc", "csl")


def test_submission_filenames() -> None:
    # CLUEbenchmark/CLUE submission rules (2021-09-04): <task><version>_predict.json for
    # the tasks whose test set changed in 1.1; ocnli is submitted as ocnli_50k_predict.json.
    expected_11 = {
        "iflytek": "iflytek_predict.json",
        "tnews": "tnews11_predict.json",
        "afqmc": "afqmc_predict.json",
        "cmnli": "cmnli_predict.json",
        "ocnli": "ocnli_50k_predict.json",
        "wsc": "cluewsc11_predict.json",
        "csl": "csl_predict.json",
        "cmrc2018": "cmrc2018_predict.json",
        "c3": "c311_predict.json",
        "chid": "chid11_predict.json",
        "cluener": "cluener_predict.json",
    }
    for task, name in expected_11.items():
        assert submission_filename(task) == name
    changed_10 = {
        "tnews": "tnews10_predict.json",
        "wsc": "cluewsc10_predict.json",
        "c3": "c310_predict.json",
        "chid": "chid10_predict.json",
    }
    for task, name in expected_11.items():
        assert submission_filename(task, "1.0") == changed_10.get(task, name)
    assert submission_filename("cluewsc2020") == "cluewsc11_predict.json"


def raw_test_ids(task: str) -> List[Any]:
    """The ``id`` fields of a JSON-lines test file, read without the loader."""
    path = D / task / "test.json"
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("task", CLASSIFICATION)
def test_classification_submission_roundtrip(task: str, tmp_path: Path) -> None:
    examples = load_split(task, D, "test")
    labels = label_list(task)
    predictions = [labels[i % len(labels)] for i in range(len(examples))]
    path = write_submission(task, examples, predictions, tmp_path)
    assert path == tmp_path / submission_filename(task)
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [row["id"] for row in rows] == raw_test_ids(task)
    assert [row["label"] for row in rows] == predictions
    assert all(set(row) == {"id", "label"} and isinstance(row["label"], str) for row in rows)
    assert validate_submission(task, path, examples) == predictions
    assert os.listdir(tmp_path) == [path.name]


def test_afqmc_file_content_exactly(tmp_path: Path) -> None:
    examples = load_split("afqmc", D, "test")  # 200 rows, ids 0..199
    path = write_submission("afqmc", examples, ["1"] * len(examples), tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{"id": 0, "label": "1"}\n{"id": 1, "label": "1"}\n')
    assert text.endswith('{"id": 199, "label": "1"}\n')


def test_wsc_submission_uses_test_id(tmp_path: Path) -> None:
    examples = load_split("wsc", D, "test")
    path = write_submission("wsc", examples, ["true"], tmp_path)
    assert path.name == "cluewsc11_predict.json"
    assert path.read_text(encoding="utf-8") == '{"id": 1, "label": "true"}\n'


def test_c3_submission(tmp_path: Path) -> None:
    examples = load_split("c3", D, "test")
    # 鱼 "如果汤里再加一点儿盐就更好了" -> 盐放少了, choice 3
    path = write_submission("c3", examples, [3], tmp_path)
    assert path.name == "c311_predict.json"
    assert path.read_text(encoding="utf-8") == '{"id": 508, "label": 3}\n'
    assert validate_submission("c3", path, examples) == [3]
    with pytest.raises(ClueSubmissionError, match="choice index 0..3, got 4"):
        write_submission("c3", examples, [4], tmp_path / "other")


def test_cmrc2018_submission(tmp_path: Path) -> None:
    examples = load_split("cmrc2018", D, "test")
    answers = ["提康德罗加级", "第二艘", "1862年", "南卡罗来纳州", "檀香山"]
    path = write_submission("cmrc2018", examples, answers, tmp_path)
    assert path.name == "cmrc2018_predict.json"
    obj = json.loads(path.read_text(encoding="utf-8"))
    assert obj == {f"TEST_0_QUERY_{i}": a for i, a in enumerate(answers)}
    assert list(obj) == [f"TEST_0_QUERY_{i}" for i in range(5)]
    assert "提康德罗加级" in path.read_text(encoding="utf-8")  # written as UTF-8, not \u escapes
    assert validate_submission("cmrc2018", path, examples) == answers


def test_chid_submission(tmp_path: Path) -> None:
    examples = load_split("chid", D, "test")
    assert [len(e.blanks) for e in examples] == [1, 4, 1, 3]
    predictions = [[1], [3, 4, 8, 0], [7], [5, 9, 2]]
    path = write_submission("chid", examples, predictions, tmp_path)
    assert path.name == "chid11_predict.json"
    obj = json.loads(path.read_text(encoding="utf-8"))
    assert list(obj) == [f"#idiom{n}#" for n in range(600168, 600177)]
    assert list(obj.values()) == [1, 3, 4, 8, 0, 7, 5, 9, 2]
    assert validate_submission("chid", path, examples) == predictions
    with pytest.raises(ClueSubmissionError, match=r"one candidate index per blank \(4\)"):
        write_submission("chid", examples, [[1], [3], [7], [5, 9, 2]], tmp_path / "other")


def test_cluener_submission(tmp_path: Path) -> None:
    examples = load_split("cluener", D, "test")
    assert examples[0].text == "四川敦煌学”。近年来，丹棱县等地一些不知名的石窟迎来了海内外的游客，他们随身携带着胡文和的著作。"
    # positions counted by hand: 丹棱县 = chars 11..13, 胡文和 = chars 41..43 (inclusive ends)
    first = {"address": {"丹棱县": [[11, 13]]}, "name": {"胡文和": [[41, 43]]}}
    predictions = [first] + [{} for _ in examples[1:]]
    path = write_submission("cluener", examples, predictions, tmp_path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"id": 0, "label": first}
    assert [row["id"] for row in rows] == raw_test_ids("cluener")
    assert validate_submission("cluener", path, examples) == predictions
    bad = [{"address": {"丹棱县": [[11, 14]]}}] + predictions[1:]
    with pytest.raises(ClueSubmissionError, match=r"prediction 0 \(id 0\): address '丹棱县': span \[11, 14\]"):
        write_submission("cluener", examples, bad, tmp_path / "other")


# ------------------------------------------------------------ rejected predictions


def test_wrong_label_count_or_type(tmp_path: Path) -> None:
    examples = load_split("tnews", D, "test")
    with pytest.raises(ClueSubmissionError, match="'105' is not a valid tnews label"):
        write_submission("tnews", examples, ["105"], tmp_path)
    with pytest.raises(ClueSubmissionError, match="1 test examples but 2 predictions"):
        write_submission("tnews", examples, ["100", "101"], tmp_path)
    with pytest.raises(ClueSubmissionError, match="expected ClassificationExample"):
        write_submission("tnews", load_split("afqmc", D, "test")[:1], ["100"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_validator_rejects_bad_files(tmp_path: Path) -> None:
    examples = load_split("afqmc", D, "test")[:3]
    path = tmp_path / "afqmc_predict.json"
    path.write_text('{"id": 0, "label": "0"}\n{"id": 2, "label": "1"}\n{"id": 1, "label": "1"}\n', encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match=r"row 2: id 2, expected 1"):
        validate_submission("afqmc", path, examples)
    path.write_text('{"id": 0, "label": "0"}\n{"id": 1, "label": "2"}\n{"id": 2, "label": "1"}\n', encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match=r"row 2: '2' is not a valid afqmc label"):
        validate_submission("afqmc", path, examples)
    path.write_text('{"id": 0, "label": "0"}\n{"id": 1, "label": "1"}\n', encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match="2 rows but 3 test examples"):
        validate_submission("afqmc", path, examples)
    path.write_text('{"id": 0, "label": "0"}\n{"id": 1, "label": \n', encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match="line 2: invalid JSON"):
        read_submission("afqmc", path)
    path.write_text('{"id": 0, "pred": "0"}\n', encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match="line 1: expected"):
        read_submission("afqmc", path)
    with pytest.raises(ClueSubmissionError, match="file not found"):
        read_submission("afqmc", tmp_path / "nope.json")


def test_validator_rejects_missing_keys(tmp_path: Path) -> None:
    cmrc = load_split("cmrc2018", D, "test")
    path = tmp_path / "cmrc2018_predict.json"
    path.write_text(json.dumps({f"TEST_0_QUERY_{i}": "x" for i in range(4)}), encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match=r"missing \['TEST_0_QUERY_4'\]"):
        validate_submission("cmrc2018", path, cmrc)
    chid = load_split("chid", D, "test")
    path = tmp_path / "chid11_predict.json"
    path.write_text(json.dumps({f"#idiom{n}#": 0 for n in range(600168, 600176)}), encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match=r"8 keys, 9 blanks"):
        validate_submission("chid", path, chid)


def test_reader_rejects_repeated_keys(tmp_path: Path) -> None:
    path = tmp_path / "cmrc2018_predict.json"
    path.write_text('{"TEST_0_QUERY_0": "a", "TEST_0_QUERY_1": "b", "TEST_0_QUERY_0": "c"}', encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match="key 'TEST_0_QUERY_0' occurs twice"):
        read_submission("cmrc2018", path)
    path = tmp_path / "afqmc_predict.json"
    path.write_text('{"id": 0, "label": "0"}\n{"id": 1, "label": "0", "label": "1"}\n', encoding="utf-8")
    with pytest.raises(ClueSubmissionError, match="line 2: key 'label' occurs twice"):
        read_submission("afqmc", path)


# ------------------------------------------------------------ atomic writes


def test_invalid_prediction_mid_file_leaves_no_file(tmp_path: Path) -> None:
    examples = load_split("afqmc", D, "test")
    predictions = ["0"] * (len(examples) - 1) + ["maybe"]  # fails on the last line, after 199 were written
    with pytest.raises(ClueSubmissionError, match=r"prediction 199 \(id 199\): 'maybe'"):
        write_submission("afqmc", examples, predictions, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    examples = load_split("afqmc", D, "test")
    path = write_submission("afqmc", examples, ["0"] * len(examples), tmp_path)
    before = path.read_bytes()
    with pytest.raises(ClueSubmissionError):
        write_submission("afqmc", examples, ["1"] * (len(examples) - 1) + ["x"], tmp_path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_write_atomically_cleans_up_when_the_source_fails(tmp_path: Path) -> None:
    def chunks():
        yield "line 1\n"
        yield "line 2\n"
        raise RuntimeError("disk on fire")

    target = tmp_path / "out" / "x.json"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_atomically(target, chunks())
    assert list((tmp_path / "out").iterdir()) == []


def test_write_atomically_cleans_up_when_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        write_submission("tnews", load_split("tnews", D, "test"), ["100"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_result(tmp_path: Path) -> None:
    path = write_atomically(tmp_path / "a.txt", ["x\n", "é\n"])
    assert path.read_bytes() == "x\né\n".encode("utf-8")
    assert path.stat().st_mode & 0o777 == 0o644


def test_numpy_predictions_are_accepted(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    chid = load_split("chid", D, "test")
    predictions = [np.array([1]), np.array([3, 4, 8, 0]), np.array([7]), np.array([5, 9, 2])]
    path = write_submission("chid", chid, predictions, tmp_path)
    assert list(json.loads(path.read_text(encoding="utf-8")).values()) == [1, 3, 4, 8, 0, 7, 5, 9, 2]
    c3 = load_split("c3", D, "test")
    path = write_submission("c3", c3, [np.int64(3)], tmp_path)
    assert path.read_text(encoding="utf-8") == '{"id": 508, "label": 3}\n'
    cluener = load_split("cluener", D, "test")[:1]
    label = {"address": {"丹棱县": [(np.int64(11), np.int64(13))]}}
    path = write_submission("cluener", cluener, [label], tmp_path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"id": 0, "label": {"address": {"丹棱县": [[11, 13]]}}}
    with pytest.raises(ClueSubmissionError, match="got True"):
        write_submission("c3", c3, [True], tmp_path)
