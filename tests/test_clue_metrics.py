"""Tests of the CLUE metrics against values worked out by hand on real sample records."""
from __future__ import annotations

import pytest

from gau_alpha.clue import (
    accuracy,
    cluener_scores,
    cmrc2018_em,
    cmrc2018_f1,
    cmrc2018_scores,
    cmrc_mixed_segmentation,
    load_split,
)
from gau_alpha.clue.metrics import cmrc_remove_punctuation, longest_common_substring_length
from gau_alpha.resources import CLUE_SAMPLES_DIR as D


@pytest.fixture(scope="module")
def cmrc_dev() -> dict:
    return {e.id: e for e in load_split("cmrc2018", D, "dev")}


# ------------------------------------------------------------ accuracy


def test_accuracy_on_real_afqmc_labels() -> None:
    golds = [e.label for e in load_split("afqmc", D, "dev")[:3]]
    assert golds == ["0", "0", "1"]  # lines 1-3 of afqmc/dev.json
    # one of three wrong -> 2/3
    assert accuracy(golds, ["0", "1", "1"]) == pytest.approx(2 / 3)
    assert accuracy(golds, golds) == 1.0


def test_accuracy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        accuracy(["0", "1"], ["0"])
    with pytest.raises(ValueError, match="no examples"):
        accuracy([], [])


# ------------------------------------------------------------ cmrc2018 building blocks


def test_mixed_segmentation() -> None:
    # CJK chars one by one; '-' is official punctuation (dropped with rm_punc); 'ω' is
    # not CJK, so 'ωforce' stays one run/token.
    assert cmrc_mixed_segmentation("光荣和ω-force", remove_punctuation=True) == ["光", "荣", "和", "ωforce"]
    assert cmrc_mixed_segmentation("光荣和ω-force") == ["光", "荣", "和", "ω", "-", "force"]
    # lower-cased; space-separated words; '(' ')' are not official punctuation, they split off
    assert cmrc_mixed_segmentation("里奇(Lionel Richie)、", remove_punctuation=True) == [
        "里", "奇", "(", "lionel", "richie", ")",
    ]
    assert cmrc_mixed_segmentation("1963年") == ["1963", "年"]
    assert cmrc_mixed_segmentation("39764.0") == ["39764.0"]


def test_remove_punctuation_and_lcs() -> None:
    assert cmrc_remove_punctuation(" 《光荣和ω-Force》 ") == "光荣和ωforce"
    assert longest_common_substring_length(list("abcde"), list("xbcdy")) == 3
    # substring, not subsequence: a_c_e shares only runs of length 1
    assert longest_common_substring_length(list("ace"), list("abcde")) == 1
    assert longest_common_substring_length([], list("abc")) == 0


# ------------------------------------------------------------ cmrc2018 on real dev questions


def test_cmrc2018_exact_answer(cmrc_dev: dict) -> None:
    answers = cmrc_dev["DEV_0_QUERY_0"].answers  # ('光荣和ω-force',) * 3
    assert cmrc2018_em(answers, "光荣和ω-force") == 1.0
    assert cmrc2018_f1(answers, "光荣和ω-force") == 1.0
    # book-title marks are official punctuation, removed before comparing
    assert cmrc2018_em(answers, "《光荣和ω-force》") == 1.0


def test_cmrc2018_partial_answers(cmrc_dev: dict) -> None:
    answers = cmrc_dev["DEV_0_QUERY_0"].answers
    # reference tokens [光 荣 和 ωforce] (4); prediction [光 荣] (2); common run 2
    # P = 2/2, R = 2/4 -> F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert cmrc2018_f1(answers, "光荣") == pytest.approx(2 / 3)
    assert cmrc2018_em(answers, "光荣") == 0.0
    # prediction [光 荣 和 ωforce 开 发] (6; upper-case F lower-cased); common run 4
    # P = 4/6, R = 4/4 -> F1 = 2 * (2/3) * 1 / (5/3) = 0.8
    assert cmrc2018_f1(answers, "光荣和ω-Force开发") == pytest.approx(0.8)


def test_cmrc2018_best_of_several_references(cmrc_dev: dict) -> None:
    answers = cmrc_dev["DEV_0_QUERY_1"].answers
    assert answers == ("村雨城", "村雨城", "任天堂游戏谜之村雨城")
    # prediction [谜 之 村 雨 城] (5)
    # vs 村雨城 (3 tokens): common 3, P = 3/5, R = 1 -> F1 = 1.2 / 1.6 = 0.75
    # vs 任天堂游戏谜之村雨城 (10 tokens): common 5, P = 1, R = 1/2 -> F1 = 2/3
    assert cmrc2018_f1(answers, "谜之村雨城") == pytest.approx(0.75)
    assert cmrc2018_em(answers, "村雨城") == 1.0


def test_cmrc2018_ascii_words(cmrc_dev: dict) -> None:
    answers = cmrc_dev["DEV_9_QUERY_2"].answers
    assert answers[0] == "莱昂纳尔·里奇(Lionel Richie)、比利·乔尔(Billy Joel)等"
    # answer tokens without punctuation ('·', '、' removed; parentheses kept):
    # 莱 昂 纳 尔 里 奇 ( lionel richie ) 比 利 乔 尔 ( billy joel ) 等 = 19 tokens;
    # the third reference adds 歌 手 = 21 tokens. Prediction [lionel richie]: common 2.
    # P = 1, R = 2/19 -> F1 = (4/19) / (21/19) = 4/21 (4/23 for the third reference)
    assert cmrc2018_f1(answers, "Lionel Richie") == pytest.approx(4 / 21)
    # without the '·' marks the prediction equals the first reference after punctuation removal
    assert cmrc2018_em(answers, "莱昂纳尔里奇(Lionel Richie)、比利乔尔(Billy Joel)等") == 1.0


def test_cmrc2018_numbers_from_train() -> None:
    (first, *_) = load_split("cmrc2018", D, "train")
    assert first.answers == ("1963年",)
    # [1963 年] vs [1963]: P = 1, R = 1/2 -> 2/3; vs [于 1963 年]: P = 2/3, R = 1 -> 0.8
    assert cmrc2018_f1(first.answers, "1963") == pytest.approx(2 / 3)
    assert cmrc2018_f1(first.answers, "于1963年") == pytest.approx(0.8)
    assert cmrc2018_f1(first.answers, "1964年") == pytest.approx(0.5)  # common run [年]: P = R = 1/2


def test_cmrc2018_scores_average_over_all_questions(cmrc_dev: dict) -> None:
    references = {qid: cmrc_dev[qid].answers for qid in ("DEV_0_QUERY_0", "DEV_0_QUERY_1", "DEV_9_QUERY_2")}
    predictions = {"DEV_0_QUERY_0": "光荣", "DEV_0_QUERY_1": "村雨城", "NOT_A_QUESTION": "x"}
    scores = cmrc2018_scores(references, predictions)
    # EM: 0 + 1 + 0 (unanswered) over 3 questions; F1: 2/3 + 1 + 0 over 3
    assert scores.em == pytest.approx(100 / 3)
    assert scores.f1 == pytest.approx(100 * (5 / 3) / 3)
    assert scores.average == pytest.approx((100 / 3 + 500 / 9) / 2)
    assert (scores.total, scores.skipped) == (3, 1)
    # examples are accepted in place of the mapping
    examples = [cmrc_dev[qid] for qid in references]
    assert cmrc2018_scores(examples, predictions) == scores


def test_cmrc2018_requires_references() -> None:
    with pytest.raises(ValueError, match="no reference answers"):
        cmrc2018_f1([], "x")
    test = load_split("cmrc2018", D, "test")
    with pytest.raises(ValueError, match="TEST_0_QUERY_0.*no reference answers"):
        cmrc2018_scores(test, {})


# ------------------------------------------------------------ cluener


def test_cluener_micro_macro_on_real_dev_records() -> None:
    dev = load_split("cluener", D, "dev")[:3]
    # gold, read from cluener/dev.json lines 1-3 (7 entities):
    #   1: address 台湾 [15,16], name 彭小军 [0,2]
    #   2: organization 曼联 [23,24], name 温格 [0,1]
    #   3: game 突袭黑暗雅典娜》 [0,7], name Riddick [9,15], Johns [28,32]
    predictions = [
        {"address": {"台湾": [[15, 16]]}, "name": {"彭小军": [[0, 2]]}},  # 2 right
        {"company": {"曼联": [[23, 24]]}, "name": {"温格": [[0, 1]]}},  # wrong type, 1 right
        {"game": {"突袭黑暗雅典娜": [[0, 6]]}, "name": {"Riddick": [[9, 15]]}},  # wrong end, 1 right, Johns missed
    ]
    scores = cluener_scores([e.label for e in dev], predictions)
    # micro: 4 correct of 6 predicted and 7 gold: P = 2/3, R = 4/7, F1 = (16/21) / (26/21) = 8/13
    assert (scores.micro.n_correct, scores.micro.n_predicted, scores.micro.n_gold) == (4, 6, 7)
    assert scores.micro.precision == pytest.approx(2 / 3)
    assert scores.micro.recall == pytest.approx(4 / 7)
    assert scores.micro.f1 == pytest.approx(8 / 13)
    # per type: address 1/1/1 -> 1; name 3 of 3 predicted, 4 gold -> F1 = 1.5 / 1.75 = 6/7;
    # organization (missed), company (spurious), game (wrong boundary) -> 0
    assert set(scores.per_type) == {"address", "name", "organization", "company", "game"}
    assert scores.per_type["address"].f1 == 1.0
    assert scores.per_type["name"].f1 == pytest.approx(6 / 7)
    assert scores.per_type["name"].recall == pytest.approx(3 / 4)
    for etype in ("organization", "company", "game"):
        assert scores.per_type[etype].f1 == 0.0
    # macro: (1 + 6/7 + 0 + 0 + 0) / 5 = 13/35
    assert scores.macro_f1 == pytest.approx(13 / 35)


def test_cluener_scores_accept_span_sets_and_none() -> None:
    gold = [{("name", 0, 2)}, None]
    assert cluener_scores(gold, [{("name", 0, 2)}, None]).micro.f1 == 1.0
    empty = cluener_scores([None], [None])
    assert (empty.micro.f1, empty.macro_f1, empty.per_type) == (0.0, 0.0, {})
    with pytest.raises(ValueError, match="1 gold items but 2 predictions"):
        cluener_scores([None], [None, None])
