"""Evaluation metrics of the CLUE tasks.

- :func:`accuracy`: the classification and multiple-choice tasks (iflytek, tnews,
  afqmc, cmnli, ocnli, wsc, csl, c3, chid per blank), as a fraction in [0, 1].
- :func:`cmrc2018_scores`: EM and F1 exactly as the official CMRC 2018 script
  (``cmrc2018_evaluate.py`` v5, ymcui/cmrc2018) computes them, in percent.
- :func:`cluener_scores`: CLUENER2020 entity-level precision/recall/F1 (micro),
  plus per-type scores and their unweighted (macro) mean, as fractions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Mapping, Sequence, Set, Tuple, Union

from .examples import Cmrc2018Example, EntityLabel, entity_spans

__all__ = [
    "accuracy",
    "CMRC_PUNCTUATION",
    "cmrc_mixed_segmentation",
    "cmrc_remove_punctuation",
    "longest_common_substring_length",
    "cmrc2018_f1",
    "cmrc2018_em",
    "Cmrc2018Scores",
    "cmrc2018_scores",
    "PRF",
    "NerScores",
    "cluener_scores",
]

# ---------------------------------------------------------------- accuracy


def accuracy(golds: Sequence[object], predictions: Sequence[object]) -> float:
    """Fraction of positions where ``predictions[i] == golds[i]`` (lists or 1-D arrays).

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(golds) != len(predictions):
        raise ValueError(f"accuracy: {len(golds)} gold labels but {len(predictions)} predictions")
    if len(golds) == 0:
        raise ValueError("accuracy: no examples")
    return float(sum(bool(g == p) for g, p in zip(golds, predictions)) / len(golds))


# ---------------------------------------------------------------- cmrc2018

CMRC_PUNCTUATION: FrozenSet[str] = frozenset(
    "-:_*^/\\~`+=" "，。：？！“”；’《》·、「」（）－～『』"
)
"""The official script's ``sp_char`` list. It also lists ``'……'``, a two-character
string that never equals a single character, so a lone ``'…'`` is *not* removed
(reproduced here by leaving it out)."""

_CJK = re.compile("[\u4e00-\u9fa5]")
# Stands in for nltk.word_tokenize on the non-CJK runs: words (letters/digits,
# keeping inner '.' or ',' as in '3.5', '1,000', 'www.dji.com') and each other
# non-space character on its own.
_NON_CJK_TOKEN = re.compile(r"[^\W_]+(?:[.,][^\W_]+)*|\S")


def cmrc_mixed_segmentation(text: str, remove_punctuation: bool = False) -> List[str]:
    """Split text as the official script's ``mixed_segmentation``.

    The text is lower-cased and stripped; each CJK character (U+4E00..U+9FA5) and
    each punctuation mark of :data:`CMRC_PUNCTUATION` is its own token (marks are
    dropped when ``remove_punctuation``); runs of other characters are split into
    words (the official script uses ``nltk.word_tokenize`` there: this project
    uses an equivalent for letter/digit runs that does not need nltk; it differs
    only in nltk's English-specific rules such as splitting "n't").
    """
    tokens: List[str] = []
    run: List[str] = []

    def flush() -> None:
        if run:
            tokens.extend(_NON_CJK_TOKEN.findall("".join(run)))
            run.clear()

    for char in text.lower().strip():
        if remove_punctuation and char in CMRC_PUNCTUATION:
            continue
        if _CJK.match(char) or char in CMRC_PUNCTUATION:
            flush()
            tokens.append(char)
        else:
            run.append(char)
    flush()
    return tokens


def cmrc_remove_punctuation(text: str) -> str:
    """Lower-case, strip, and delete the characters of :data:`CMRC_PUNCTUATION` (official ``remove_punctuation``)."""
    return "".join(char for char in text.lower().strip() if char not in CMRC_PUNCTUATION)


def longest_common_substring_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest *contiguous* run of tokens shared by ``a`` and ``b`` (official ``find_lcs``)."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc2018_f1(answers: Sequence[str], prediction: str) -> float:
    """Official per-question F1 in [0, 1]: the best over references of the token F1
    where the overlap is the longest common substring of the punctuation-free
    mixed segmentations (precision = overlap / prediction tokens, recall =
    overlap / reference tokens).

    Raises:
        ValueError: no reference answers.
    """
    if not answers:
        raise ValueError("cmrc2018_f1: no reference answers")
    prediction_tokens = cmrc_mixed_segmentation(prediction, remove_punctuation=True)
    scores = []
    for answer in answers:
        answer_tokens = cmrc_mixed_segmentation(answer, remove_punctuation=True)
        overlap = longest_common_substring_length(answer_tokens, prediction_tokens)
        if overlap == 0:
            scores.append(0.0)
            continue
        precision = overlap / len(prediction_tokens)
        recall = overlap / len(answer_tokens)
        scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc2018_em(answers: Sequence[str], prediction: str) -> float:
    """Official per-question exact match: 1.0 if the prediction equals any reference
    once both are lower-cased, stripped and freed of :data:`CMRC_PUNCTUATION`, else 0.0."""
    target = cmrc_remove_punctuation(prediction)
    return 1.0 if any(cmrc_remove_punctuation(answer) == target for answer in answers) else 0.0


@dataclass(frozen=True)
class Cmrc2018Scores:
    """CMRC 2018 results, as the official script reports them (scores in percent).

    Attributes:
        em: mean exact match over all reference questions x 100.
        f1: mean F1 over all reference questions x 100.
        average: (em + f1) / 2, the leaderboard score.
        total: number of reference questions.
        skipped: questions without a prediction (each scored 0, as officially).
    """

    em: float
    f1: float
    average: float
    total: int
    skipped: int


def cmrc2018_scores(
    references: Union[Mapping[str, Sequence[str]], Iterable[Cmrc2018Example]],
    predictions: Mapping[str, str],
) -> Cmrc2018Scores:
    """Score ``predictions`` ({question id: answer text}) against the references.

    ``references`` is either {question id: [reference answers]} or labelled
    :class:`~gau_alpha.clue.examples.Cmrc2018Example` objects. Unanswered
    questions count as 0 in both averages; predictions for unknown ids are
    ignored (as officially).

    Raises:
        ValueError: no references, or a question without reference answers.
    """
    if isinstance(references, Mapping):
        pairs = list(references.items())
    else:
        pairs = [(example.id, example.answers) for example in references]
    if not pairs:
        raise ValueError("cmrc2018_scores: no reference questions")
    em = f1 = 0.0
    skipped = 0
    for qid, answers in pairs:
        if not answers:
            raise ValueError(f"cmrc2018_scores: question {qid!r} has no reference answers")
        if qid not in predictions:
            skipped += 1
            continue
        prediction = str(predictions[qid])
        f1 += cmrc2018_f1(answers, prediction)
        em += cmrc2018_em(answers, prediction)
    total = len(pairs)
    em_score = 100.0 * em / total
    f1_score = 100.0 * f1 / total
    return Cmrc2018Scores(em_score, f1_score, (em_score + f1_score) / 2, total, skipped)


# ---------------------------------------------------------------- cluener

Span = Tuple[str, int, int]


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 (fractions) from entity counts.

    Precision is 0 when nothing was predicted, recall 0 when nothing is gold, F1 0
    when both are 0.
    """

    precision: float
    recall: float
    f1: float
    n_gold: int
    n_predicted: int
    n_correct: int

    @classmethod
    def from_counts(cls, n_gold: int, n_predicted: int, n_correct: int) -> "PRF":
        """Compute the scores from counts."""
        precision = n_correct / n_predicted if n_predicted else 0.0
        recall = n_correct / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, n_gold, n_predicted, n_correct)


@dataclass(frozen=True)
class NerScores:
    """CLUENER2020 entity-level scores.

    Attributes:
        micro: precision/recall/F1 pooled over all entities of all types (the
            CLUENER leaderboard F1 is ``micro.f1``).
        per_type: the same per entity type, for every type present in the gold
            labels or the predictions.
        macro_f1: unweighted mean of ``per_type[t].f1`` over those types.
    """

    micro: PRF
    per_type: Dict[str, PRF]
    macro_f1: float


def _as_spans(item: Union[None, EntityLabel, Set[Span]]) -> Set[Span]:
    if item is None:
        return set()
    if isinstance(item, (set, frozenset)):
        return set(item)
    return entity_spans(item)


def cluener_scores(
    golds: Sequence[Union[None, EntityLabel, Set[Span]]],
    predictions: Sequence[Union[None, EntityLabel, Set[Span]]],
) -> NerScores:
    """Entity-level scores: an entity is correct when its (type, start, end) matches a gold one exactly.

    Each item is a cluener label dict ``{type: {text: [[start, end], ...]}}``
    (inclusive ends), a set of ``(type, start, end)``, or None (no entities). The
    i-th prediction is compared with the i-th gold item; counts are summed over
    the examples.

    Raises:
        ValueError: the sequences differ in length.
    """
    if len(golds) != len(predictions):
        raise ValueError(f"cluener_scores: {len(golds)} gold items but {len(predictions)} predictions")
    counts: Dict[str, List[int]] = {}
    for gold_item, predicted_item in zip(golds, predictions):
        gold = _as_spans(gold_item)
        predicted = _as_spans(predicted_item)
        for etype, *_ in gold:
            counts.setdefault(etype, [0, 0, 0])[0] += 1
        for etype, *_ in predicted:
            counts.setdefault(etype, [0, 0, 0])[1] += 1
        for etype, *_ in gold & predicted:
            counts[etype][2] += 1
    per_type = {etype: PRF.from_counts(*counts[etype]) for etype in sorted(counts)}
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    macro = sum(s.f1 for s in per_type.values()) / len(per_type) if per_type else 0.0
    return NerScores(PRF.from_counts(*totals), per_type, macro)
