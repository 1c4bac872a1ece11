"""Tests of the CLUE loaders on the real sample files bundled in gau_alpha/data/clue_samples.

Expected counts are computed here independently of the loader (counting non-blank
lines, regex counts on the raw text, or figures from SOURCES.md); spot-checked
field values were read off the sample files by eye.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from gau_alpha.clue import (
    TASKS,
    TNEWS_LABEL_DESCS,
    C3Example,
    ChidExample,
    ClassificationExample,
    ClueDataError,
    CluenerExample,
    Cmrc2018Example,
    CslExample,
    SentencePairExample,
    WscExample,
    label_list,
    load_file,
    load_split,
    split_files,
)
from gau_alpha.resources import CLUE_SAMPLES_DIR

D = CLUE_SAMPLES_DIR


def nonblank_lines(path: Path) -> int:
    """Records of a JSON-lines file, counted without the loader."""
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


# ------------------------------------------------------------ every bundled file

JSONL_SPLITS = [
    ("iflytek", "train", "train.json"),
    ("iflytek", "dev", "dev.json"),
    ("iflytek", "test", "test.json"),
    ("tnews", "train", "train.json"),
    ("tnews", "dev", "dev.json"),
    ("tnews", "test", "test.json"),
    ("afqmc", "train", "train.json"),
    ("afqmc", "dev", "dev.json"),
    ("afqmc", "test", "test.json"),
    ("cmnli", "train", "train.json"),
    ("cmnli", "dev", "dev.json"),
    ("cmnli", "test", "test.json"),
    ("ocnli", "train", "train.json"),
    ("ocnli", "test", "test.json"),
    ("wsc", "train", "train.json"),
    ("wsc", "dev", "dev.json"),
    ("wsc", "test", "test.json"),
    ("csl", "train", "train.json"),
    ("csl", "dev", "dev.json"),
    ("csl", "test", "test.json"),
    ("cluener", "train", "train.json"),
    ("cluener", "dev", "dev.json"),
    ("cluener", "test", "test.json"),
]

EXAMPLE_TYPE = {
    "iflytek": ClassificationExample,
    "tnews": ClassificationExample,
    "afqmc": SentencePairExample,
    "cmnli": SentencePairExample,
    "ocnli": SentencePairExample,
    "wsc": WscExample,
    "csl": CslExample,
    "cluener": CluenerExample,
}


@pytest.mark.parametrize("task,split,name", JSONL_SPLITS)
def test_jsonl_split_loads_every_record(task: str, split: str, name: str) -> None:
    path = D / task / name
    examples = load_split(task, D, split)
    assert len(examples) == nonblank_lines(path)
    assert all(isinstance(e, EXAMPLE_TYPE[task]) for e in examples)
    labels = TASKS[task].labels
    if split == "test":
        assert all(e.label is None for e in examples)
    elif task != "cluener":
        assert all(e.label in labels for e in examples)


def test_sample_sizes_match_sources_md() -> None:
    # SOURCES.md: JSON-lines files cut to 300 records keep only the first 200.
    for task, split in [("tnews", "train"), ("afqmc", "test"), ("wsc", "dev"), ("csl", "test"), ("cluener", "dev")]:
        assert len(load_split(task, D, split)) == 200
    for task in ("iflytek", "cmnli"):
        for split in ("train", "dev", "test"):
            assert len(load_split(task, D, split)) == 1


def test_ocnli_dev_drops_dash_rows_and_logs_count(caplog: pytest.LogCaptureFixture) -> None:
    path = D / "ocnli" / "dev.json"
    raw = path.read_text(encoding="utf-8")
    dashes = raw.count('"label":"-"')
    assert dashes == 1  # line 66, id 65, read by eye
    with caplog.at_level(logging.WARNING, logger="gau_alpha.clue.tasks.classification"):
        examples = load_split("ocnli", D, "dev")
    assert len(examples) == nonblank_lines(path) - dashes == 199
    assert 65 not in {e.id for e in examples}
    assert {64, 66} <= {e.id for e in examples}
    messages = [r.getMessage() for r in caplog.records if r.name == "gau_alpha.clue.tasks.classification"]
    assert any("dropped 1 of 200" in m and "dev.json" in m for m in messages)


def test_ocnli_train_3k_subset_via_load_file() -> None:
    path = D / "ocnli" / "train.3k.json"
    examples = load_file("ocnli", path, "train")
    assert len(examples) == nonblank_lines(path)
    first = examples[0]
    assert first.id == 12845
    assert first.label == "contradiction"
    assert first.text_a.startswith("现在,我代表国务院")
    assert first.text_b == "全国政协委员无权提出建议"


def test_ocnli_train_prefers_50k_file(tmp_path: Path) -> None:
    line = (D / "ocnli" / "dev.json").read_text(encoding="utf-8").splitlines()[0]
    (tmp_path / "train.json").write_text(line + "\n" + line + "\n", encoding="utf-8")
    assert split_files("ocnli", tmp_path, "train") == [tmp_path / "train.json"]
    assert len(load_split("ocnli", tmp_path, "train")) == 2
    (tmp_path / "train.50k.json").write_text(line + "\n", encoding="utf-8")
    assert split_files("ocnli", tmp_path, "train") == [tmp_path / "train.50k.json"]
    assert len(load_split("ocnli", tmp_path, "train")) == 1


def test_c3_merges_d_and_m_files() -> None:
    counts = {}
    for split in ("train", "dev"):
        raw_questions = 0
        for prefix in ("d", "m"):
            raw = (D / "c3" / f"{prefix}-{split}.json").read_text(encoding="utf-8")
            raw_questions += len(re.findall(r'"question":', raw))
        counts[split] = raw_questions
    # SOURCES.md: 370 + 600 train questions, 329 + 571 dev questions.
    assert counts == {"train": 970, "dev": 900}
    for split, expected in counts.items():
        examples = load_split("c3", D, split)
        assert len(examples) == expected
        assert all(isinstance(e, C3Example) and e.label in e.choices for e in examples)
    train = load_split("c3", D, "train")
    assert train[0].id == "d-train-0-0"
    assert train[0].doc_id == "25-35"
    assert train[0].question == "女的最喜欢哪种电影?"
    assert train[0].choices == ("恐怖片", "爱情片", "喜剧片", "科幻片")
    assert train[0].label == "喜剧片" and train[0].label_index == 2
    assert train[0].context[0] == "男：你今天晚上有时间吗?我们一起去看电影吧?"
    first_m = next(e for e in train if e.id.startswith("m-train-"))
    assert first_m.id == "m-train-0-0" and first_m.doc_id == "m13-70"
    assert len({e.id for e in train}) == len(train)


def test_c3_test_uses_question_id() -> None:
    (example,) = load_split("c3", D, "test")
    assert example.id == 508
    assert example.question == "男的觉得鱼怎么样?"
    assert example.choices == ("比较咸", "太辣了", "不太新鲜", "盐放少了")
    assert example.label is None and example.doc_id is None
    assert example.context == ("女：我今天做的酸菜鱼怎么样?你尝了吗?", "男：还可以，鱼肉很鲜，如果汤里再加一点儿盐就更好了。")


def test_c3_files_are_crlf_without_final_newline() -> None:
    raw = (D / "c3" / "d-dev.json").read_bytes()
    assert b"\r\n" in raw and not raw.endswith(b"\n")


@pytest.mark.parametrize("split,expected", [("train", 5), ("dev", 368), ("trial", 391), ("test", 5)])
def test_cmrc2018_question_counts(split: str, expected: int) -> None:
    raw = (D / "cmrc2018" / f"{split}.json").read_text(encoding="utf-8")
    assert len(re.findall(r'"id": "[A-Z]+_\d+_QUERY_\d+"', raw)) == expected
    examples = load_split("cmrc2018", D, split)
    assert len(examples) == expected
    assert all(isinstance(e, Cmrc2018Example) for e in examples)


def test_cmrc2018_fields() -> None:
    dev = load_split("cmrc2018", D, "dev")
    first = dev[0]
    assert first.id == "DEV_0_QUERY_0"
    assert first.question == "《战国无双3》是由哪两个公司合作开发的？"
    assert first.answers == ("光荣和ω-force",) * 3
    assert first.answer_starts == (11, 11, 11)
    assert first.context[11 : 11 + len("光荣和ω-force")] == "光荣和ω-force"
    assert all(len(e.answers) == 3 for e in dev)
    q1 = next(e for e in dev if e.id == "DEV_0_QUERY_1")
    assert q1.answers == ("村雨城", "村雨城", "任天堂游戏谜之村雨城")
    # the official dev data has answers that are not in the context (start -1): kept as is
    q62 = next(e for e in dev if e.id == "DEV_6_QUERY_2")
    assert -1 in q62.answer_starts

    train = load_split("cmrc2018", D, "train")
    assert train[0].id == "TRAIN_186_QUERY_0"
    assert train[0].question == "范廷颂是什么时候被任为主教的？"
    assert train[0].answers == ("1963年",) and train[0].answer_starts == (30,)

    test = load_split("cmrc2018", D, "test")
    assert [e.id for e in test] == [f"TEST_0_QUERY_{i}" for i in range(5)]
    assert test[0].question == "罗亚尔港号是什么级别的导弹巡洋舰？"
    assert all(e.answers == () and e.label is None for e in test)  # FAKE_ANSWER placeholders dropped


def test_chid_one_example_per_passage_with_answers() -> None:
    for split, name in (("train", "train.json"), ("dev", "dev.json"), ("test", "test1.1.json")):
        raw = (D / "chid" / name).read_text(encoding="utf-8")
        passages = sum(len(json.loads(line)["content"]) for line in raw.splitlines() if line.strip())
        blanks = re.findall(r"#idiom\d{6}#", raw)
        examples = load_split("chid", D, split)
        assert all(isinstance(e, ChidExample) for e in examples)
        assert len(examples) == passages
        assert [tag for e in examples for tag in e.blanks] == blanks
        if split != "test":
            answers = json.loads((D / "chid" / f"{split}_answer.json").read_text(encoding="utf-8"))
            assert [answers[t] for t in blanks] == [i for e in examples for i in e.label]
        else:
            assert all(e.label is None for e in examples)

    train = load_split("chid", D, "train")
    # passages hold 1, 1, 3 and 2 blanks; train_answer.json read by eye
    assert [e.blanks for e in train][2] == ("#idiom000002#", "#idiom000003#", "#idiom000004#")
    assert [e.label for e in train] == [(3,), (5,), (6, 1, 7), (4, 0)]
    assert train[0].candidates[train[0].label[0]] == "碌碌无为"
    assert "几乎#idiom000000#的情况下" in train[0].text
    assert train[0].id == "0-0" and train[3].id == "0-3"
    test = load_split("chid", D, "test")
    assert test[1].blanks == ("#idiom600169#", "#idiom600170#", "#idiom600171#", "#idiom600172#")
    assert test[0].candidates[0] == "岌岌可危"


# ------------------------------------------------------------ spot checks


def test_tnews_records_and_label_codes() -> None:
    train = load_split("tnews", D, "train")
    assert train[0] == ClassificationExample(
        0,
        "上课时学生手机响个不停，老师一怒之下把手机摔了，家长拿发票让老师赔，大家怎么看待这种事？",
        "108",
        "news_edu",
        "",
    )
    dev = load_split("tnews", D, "dev")
    assert dev[1].label == "110" and dev[1].label_desc == "news_military"
    assert dev[1].text == "以色列大规模空袭开始！伊朗多个军事目标遭遇打击，誓言对等反击"
    assert dev[0].keywords == "江疏影,美少女,经纪人,甜甜圈"
    (test,) = load_split("tnews", D, "test")
    assert test.id == 0 and test.label is None
    assert test.text == "在设计史上，每当相对稳定的发展时期，这种设计思想就会成为主导"


def test_tnews_label_list_matches_bundled_labels_json() -> None:
    rows = [json.loads(line) for line in (D / "tnews" / "labels.json").read_text(encoding="utf-8").splitlines()]
    assert label_list("tnews") == [row["label"] for row in rows]
    assert dict(TNEWS_LABEL_DESCS) == {row["label"]: row["label_desc"] for row in rows}
    assert len(rows) == 15 and "105" not in label_list("tnews") and "111" not in label_list("tnews")


def test_label_lists() -> None:
    assert label_list("iflytek") == [str(i) for i in range(119)]
    assert label_list("afqmc") == ["0", "1"] and label_list("csl") == ["0", "1"]
    assert label_list("wsc") == ["true", "false"] == label_list("cluewsc2020")
    assert label_list("cmnli") == ["entailment", "neutral", "contradiction"] == label_list("ocnli")
    assert len(label_list("cluener")) == 10
    for task in ("c3", "chid", "cmrc2018"):
        with pytest.raises(ValueError, match="no fixed label set"):
            label_list(task)
    with pytest.raises(ValueError, match="unknown CLUE task"):
        label_list("xnli")


def test_iflytek_records() -> None:
    (train,) = load_split("iflytek", D, "train")
    assert train.label == "11" and train.label_desc == "薅羊毛"
    assert train.text.startswith("活动新用户领5元现金")
    (dev,) = load_split("iflytek", D, "dev")
    assert dev.label == "110" and dev.label_desc == "社区超市"
    (test,) = load_split("iflytek", D, "test")
    assert test.id == 0 and test.text.startswith("大疆商城DJIStore")


def test_sentence_pair_records() -> None:
    dev = load_split("afqmc", D, "dev")
    assert dev[2] == SentencePairExample(2, "我的蚂蚁花呗支付金额怎么会有限制", "我到支付宝实体店消费用花呗支付受金额限制", "1")
    test = load_split("afqmc", D, "test")
    assert test[1] == SentencePairExample(1, "网商贷怎么转变成借呗", "如何将网商贷切换为借呗", None)
    (cmnli,) = load_split("cmnli", D, "dev")
    assert cmnli == SentencePairExample(0, "新的权利已经足够好了", "每个人都很喜欢最新的福利", "neutral")
    ocnli = load_split("ocnli", D, "dev")[0]
    assert ocnli == SentencePairExample(0, "身上裹一件工厂发的棉大衣,手插在袖筒里", "身上至少一件衣服", "entailment")


def test_wsc_records() -> None:
    train = load_split("wsc", D, "train")
    assert train[0] == WscExample(
        258, "裂开的伤口涂满尘土，里面有碎石子和木头刺，我小心翼翼把它们剔除出去。", 3, "伤口", 27, "它们", "false"
    )
    dev = load_split("cluewsc2020", D, "dev")
    assert (dev[0].id, dev[0].span1_index, dev[0].span1_text, dev[0].span2_index, dev[0].span2_text, dev[0].label) == (
        1, 6, "洋人", 35, "他们", "true",
    )
    (test,) = load_split("wsc", D, "test")
    assert test == WscExample(1, "杨百顺他爹是个卖豆腐的。别人叫他卖豆腐的老杨。", 0, "杨百顺", 15, "他", None)


def test_csl_records() -> None:
    (train,) = load_split("csl", D, "train")
    assert train.id == 1 and train.label == "0"
    assert train.keywords == ("粒子", "铁化合物", "联合", "0.05")
    assert train.abstract.startswith("目的探讨常见氧化铁纳米粒子")
    dev = load_split("csl", D, "dev")
    assert dev[0].id == 1 and dev[0].abstract.startswith("为解决传统均匀FFT波束形成算法")
    assert load_split("csl", D, "test")[0].id == 2415


def test_cluener_records_and_inclusive_spans() -> None:
    train = load_split("cluener", D, "train")
    third = train[2]
    assert third.text == "那不勒斯vs锡耶纳以及桑普vs热那亚之上呢？"
    assert third.label == {
        "organization": {"那不勒斯": [[0, 3]], "锡耶纳": [[6, 8]], "桑普": [[11, 12]], "热那亚": [[15, 17]]}
    }
    assert third.spans() == {
        ("organization", 0, 3),
        ("organization", 6, 8),
        ("organization", 11, 12),
        ("organization", 15, 17),
    }
    for example in train + load_split("cluener", D, "dev"):
        for etype, entities in example.label.items():
            for entity, positions in entities.items():
                for start, end in positions:
                    assert example.text[start : end + 1] == entity
    test = load_split("cluener", D, "test")
    assert test[2].id == 2 and test[2].text == "销售冠军：辐射3-Bethesda" and test[2].label is None


def test_data_dir_may_be_root_or_task_dir(tmp_path: Path) -> None:
    assert load_split("afqmc", D / "afqmc", "dev") == load_split("afqmc", D, "dev")
    # a root with the release zip's folder name
    (tmp_path / "cluewsc2020_public").mkdir()
    lines = (D / "wsc" / "dev.json").read_text(encoding="utf-8").splitlines()[:3]
    (tmp_path / "cluewsc2020_public" / "dev.json").write_text("\n".join(lines), encoding="utf-8")
    assert load_split("wsc", tmp_path, "dev") == load_split("wsc", D, "dev")[:3]


def test_versioned_test_files() -> None:
    assert split_files("tnews", D, "test") == [D / "tnews" / "test.json"]
    assert split_files("tnews", D, "test", version="1.0") == [D / "tnews" / "test1.0.json"]
    assert split_files("c3", D, "test") == [D / "c3" / "test1.1.json"]
    assert split_files("chid", D, "test", version="1.0") == [D / "chid" / "test1.0.json"]
    with pytest.raises(ClueDataError, match=r"test1\.0\.json: file not found"):
        load_split("wsc", D, "test", version="1.0")
    with pytest.raises(ValueError, match="unknown split"):
        load_split("afqmc", D, "trial")
    with pytest.raises(ValueError, match="unknown CLUE version"):
        load_split("afqmc", D, "test", version="2.0")


def test_crlf_bom_and_no_final_newline_are_accepted(tmp_path: Path) -> None:
    lines = (D / "tnews" / "dev.json").read_text(encoding="utf-8").splitlines()[:5]
    target = tmp_path / "dev.json"
    target.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8"))
    assert load_file("tnews", target, "dev") == load_split("tnews", D, "dev")[:5]


# ------------------------------------------------------------ malformed input


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    good = '{"sentence1": "a", "sentence2": "b", "label": "0"}'
    path = write(tmp_path / "dev.json", f"{good}\n{good}\n{{\"sentence1\": \"a\",\n")
    with pytest.raises(ClueDataError, match=r"dev\.json, line 3: invalid JSON") as info:
        load_split("afqmc", tmp_path, "dev")
    assert info.value.line == 3 and info.value.path == path


def test_unknown_label_is_rejected(tmp_path: Path) -> None:
    write(
        tmp_path / "train.json",
        '{"label": "100", "label_desc": "news_story", "sentence": "x", "keywords": ""}\n'
        '{"label": "105", "label_desc": "news_story", "sentence": "y", "keywords": ""}\n',
    )
    with pytest.raises(ClueDataError, match=r"train\.json, line 2: unknown label '105' for tnews"):
        load_split("tnews", tmp_path, "train")


def test_nli_label_dash_is_not_accepted_for_afqmc(tmp_path: Path) -> None:
    write(tmp_path / "dev.json", '{"sentence1": "a", "sentence2": "b", "label": "-"}\n')
    with pytest.raises(ClueDataError, match="line 1: unknown label '-'"):
        load_split("afqmc", tmp_path, "dev")


def test_tnews_label_desc_mismatch_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "dev.json", '{"label": "101", "label_desc": "news_story", "sentence": "x", "keywords": ""}\n')
    with pytest.raises(ClueDataError, match="line 1: label_desc 'news_story' does not match label '101'"):
        load_split("tnews", tmp_path, "dev")


def test_missing_field_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "dev.json", '{"sentence1": "a", "sentence2": "b", "label": "0"}\n{"sentence1": "a", "label": "1"}\n')
    with pytest.raises(ClueDataError, match=r"dev\.json, line 2: missing field 'sentence2'"):
        load_split("afqmc", tmp_path, "dev")


def test_test_data_without_id_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "test.json", '{"sentence1": "a", "sentence2": "b"}\n')
    with pytest.raises(ClueDataError, match="line 1: missing field 'id'"):
        load_split("afqmc", tmp_path, "test")


def test_wrong_field_type_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "dev.json", '{"id": 1, "abst": "x", "keyword": "a,b", "label": "1"}\n')
    with pytest.raises(ClueDataError, match="line 1: field 'keyword' should be a list"):
        load_split("csl", tmp_path, "dev")


@pytest.mark.parametrize("content", ["", "\n\n  \r\n"])
def test_empty_file_is_rejected(tmp_path: Path, content: str) -> None:
    write(tmp_path / "train.json", content)
    with pytest.raises(ClueDataError, match=r"train\.json: file is empty"):
        load_split("iflytek", tmp_path, "train")


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ClueDataError, match=r"dev\.json: file not found"):
        load_split("csl", tmp_path, "dev")
    write(tmp_path / "d-dev.json", (D / "c3" / "d-dev.json").read_text(encoding="utf-8"))
    with pytest.raises(ClueDataError, match=r"m-dev\.json: file not found"):
        load_split("c3", tmp_path, "dev")


def test_invalid_utf8_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "test.json").write_bytes(b'{"id": 0, "sentence": "ok"}\n{"id": 1, "sentence": "\xff"}\n')
    with pytest.raises(ClueDataError, match="line 2: not valid UTF-8"):
        load_split("iflytek", tmp_path, "test")


def test_cluener_span_mismatch_is_rejected(tmp_path: Path) -> None:
    # the real first dev record, with the exclusive-end span [0, 3] instead of [0, 2] for 彭小军
    real = (D / "cluener" / "dev.json").read_text(encoding="utf-8").splitlines()[0]
    broken = real.replace('"彭小军": [[0, 2]]', '"彭小军": [[0, 3]]')
    assert broken != real
    write(tmp_path / "dev.json", real + "\n" + broken + "\n")
    with pytest.raises(ClueDataError, match=r"dev\.json, line 2: name '彭小军': span \[0, 3\].*covers '彭小军认'"):
        load_split("cluener", tmp_path, "dev")


def test_cluener_unknown_type_and_out_of_range(tmp_path: Path) -> None:
    write(tmp_path / "train.json", '{"text": "北京", "label": {"city": {"北京": [[0, 1]]}}}\n')
    with pytest.raises(ClueDataError, match="line 1: unknown entity type 'city'"):
        load_split("cluener", tmp_path, "train")
    write(tmp_path / "train.json", '{"text": "北京", "label": {"address": {"北京": [[0, 2]]}}}\n')
    with pytest.raises(ClueDataError, match=r"line 1: address '北京': span \[0, 2\] is outside the text"):
        load_split("cluener", tmp_path, "train")


def test_wsc_span_text_mismatch_is_logged_not_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    real = (D / "wsc" / "train.json").read_text(encoding="utf-8").splitlines()[0]
    shifted = real.replace('"span1_index": 3', '"span1_index": 4')
    assert shifted != real
    write(tmp_path / "train.json", real + "\n" + shifted + "\n")
    with caplog.at_level(logging.WARNING, logger="gau_alpha.clue.tasks.classification"):
        examples = load_split("wsc", tmp_path, "train")
    assert len(examples) == 2
    assert any("line 2 span1" in r.getMessage() for r in caplog.records)


def test_c3_answer_not_in_choices_names_record(tmp_path: Path) -> None:
    docs = json.loads((D / "c3" / "d-dev.json").read_text(encoding="utf-8"))[:3]
    docs[2][1][0]["answer"] = "不存在"
    write(tmp_path / "d-dev.json", json.dumps(docs, ensure_ascii=False))
    with pytest.raises(ClueDataError, match=r"d-dev\.json, record 2 question 0: answer '不存在' is not one of the choices"):
        load_file("c3", tmp_path / "d-dev.json", "dev")


def test_c3_test_question_without_id_is_rejected(tmp_path: Path) -> None:
    docs = json.loads((D / "c3" / "test1.1.json").read_text(encoding="utf-8"))
    del docs[0][1][0]["id"]
    write(tmp_path / "test1.1.json", json.dumps(docs, ensure_ascii=False))
    with pytest.raises(ClueDataError, match="record 0 question 0: missing field 'id'"):
        load_split("c3", tmp_path, "test")


def test_whole_document_syntax_error_names_line(tmp_path: Path) -> None:
    write(tmp_path / "dev.json", '{\n  "version": "v1.0",\n  "data": [\n    {"paragraphs": ]\n}\n')
    with pytest.raises(ClueDataError, match=r"dev\.json, line 4: invalid JSON"):
        load_split("cmrc2018", tmp_path, "dev")


def test_cmrc2018_missing_answers_names_question(tmp_path: Path) -> None:
    doc = json.loads((D / "cmrc2018" / "train.json").read_text(encoding="utf-8"))
    del doc["data"][0]["paragraphs"][0]["qas"][1]["answers"]
    write(tmp_path / "train.json", json.dumps(doc, ensure_ascii=False))
    with pytest.raises(ClueDataError, match=r"record data\[0\]\.paragraphs\[0\]\.qas\[1\]: missing field 'answers'"):
        load_split("cmrc2018", tmp_path, "train")


def test_chid_blank_without_answer_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "dev.json", (D / "chid" / "dev.json").read_text(encoding="utf-8"))
    answers = json.loads((D / "chid" / "dev_answer.json").read_text(encoding="utf-8"))
    del answers["#idiom577160#"]
    write(tmp_path / "dev_answer.json", json.dumps(answers))
    with pytest.raises(ClueDataError, match=r"dev\.json, line 1: blank #idiom577160# has no answer"):
        load_split("chid", tmp_path, "dev")
    answers["#idiom577160#"] = 10  # only 10 candidates: 0..9
    write(tmp_path / "dev_answer.json", json.dumps(answers))
    with pytest.raises(ClueDataError, match=r"dev_answer\.json: answer for #idiom577160# should be a candidate index 0\.\.9"):
        load_split("chid", tmp_path, "dev")
    (tmp_path / "dev_answer.json").unlink()
    with pytest.raises(ClueDataError, match=r"dev_answer\.json: file not found"):
        load_split("chid", tmp_path, "dev")


# ------------------------------------------------------------------ duplicate keys and ids
def test_duplicate_json_key_in_a_line_names_file_and_line(tmp_path: Path) -> None:
    good = '{"sentence1": "a", "sentence2": "b", "label": "0"}'
    write(tmp_path / "dev.json", f'{good}\n{{"sentence1": "a", "sentence2": "b", "label": "0", "label": "1"}}\n')
    with pytest.raises(ClueDataError, match=r"dev\.json, line 2: duplicate key 'label'") as info:
        load_split("afqmc", tmp_path, "dev")
    assert info.value.line == 2


def test_duplicate_json_key_in_a_document_names_the_line_of_its_object(tmp_path: Path) -> None:
    document = json.loads((D / "cmrc2018" / "dev.json").read_text(encoding="utf-8"))
    text = json.dumps(document, ensure_ascii=False, indent=1)
    # repeat the "question" key inside the first question object
    first = text.index('"question"')
    start = text.rindex("{", 0, first)
    text = text[:first] + '"question": "again",\n' + text[first:]
    path = write(tmp_path / "dev.json", text)
    with pytest.raises(ClueDataError, match="duplicate key 'question'") as info:
        load_file("cmrc2018", path, "dev")
    assert info.value.line == text.count("\n", 0, start) + 1


def test_nested_duplicate_key_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "dev.json", '{"text": "张三", "label": {"name": {"张三": [[0, 1]], "张三": [[0, 1]]}}}\n')
    with pytest.raises(ClueDataError, match="line 1: duplicate key '张三'"):
        load_split("cluener", tmp_path, "dev")


@pytest.mark.parametrize("task, record", [
    ("afqmc", '{"id": 7, "sentence1": "a", "sentence2": "b"}'),
    ("tnews", '{"id": 7, "sentence": "x", "keywords": ""}'),
    ("csl", '{"id": 7, "abst": "x", "keyword": ["y"]}'),
    ("wsc", '{"id": 7, "text": "他们", "target": {"span1_index": 0, "span1_text": "他", '
            '"span2_index": 1, "span2_text": "们"}}'),
    ("cluener", '{"id": 7, "text": "x"}'),
])
def test_duplicate_test_id_names_file_and_both_lines(task: str, record: str, tmp_path: Path) -> None:
    name = split_files(task, tmp_path, "test")[0].name
    other = record.replace('"id": 7', '"id": 8')
    write(tmp_path / name, "\n".join([record, other, record]) + "\n")
    with pytest.raises(ClueDataError, match=r"%s, line 3: duplicate id 7 \(first at line 1\)" % re.escape(name)):
        load_split(task, tmp_path, "test")


def test_labelled_data_may_repeat_ids(tmp_path: Path) -> None:
    record = '{"id": 7, "abst": "x", "keyword": ["y"], "label": "1"}'
    write(tmp_path / "dev.json", f"{record}\n{record}\n")
    assert len(load_split("csl", tmp_path, "dev")) == 2


def test_c3_duplicate_test_question_id_names_both_records(tmp_path: Path) -> None:
    question = {"question": "q?", "choice": ["a", "b"], "id": 3}
    document = [[["text"], [question]], [["more"], [dict(question, question="p?")]]]
    path = write(tmp_path / "test1.1.json", json.dumps(document))
    with pytest.raises(ClueDataError, match=r"record 1 question 0: duplicate question id 3 \(first at record 0 question 0\)"):
        load_file("c3", path, "test")
