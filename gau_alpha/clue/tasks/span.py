"""cmrc2018: span extraction over sliding windows with start/end logits.

Files: SQuAD layout ``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``
(``train``, ``dev``, ``trial``, ``test``); one example per question. Test answers are
placeholders and are dropped. Submission: one JSON object ``{question_id: answer_text}``.

Features: the context is tokenized once with character offsets; each question
becomes windows ``[CLS] question [SEP] context[w : w + W] [SEP]`` with
``W = maxlen - len(question) - 3`` and window starts ``0, s, 2s, ...``
(``s = doc_stride`` tokens, the step between window starts, as in the recipe;
at most ``W`` so no context token is skipped) until a window reaches the end of the context. Questions longer than
``maxlen // 2`` tokens keep their first ``maxlen // 2`` tokens.

Labels (training): the token positions of the first reference answer found
verbatim in the context (at its ``answer_start``, else its first occurrence);
in a window that does not contain the whole answer both positions point to
[CLS] ("no answer here"). ``span_mask`` allows [CLS] and the window's context
tokens.

Decoding: in each window the best span maximises ``start_logit[i] + end_logit[j]``
over context tokens with ``i <= j < i + max_answer_len``; a question's answer is
the best-scoring span over all its windows, cut from the original context with
the tokens' character offsets (so case, spaces and full-width characters are
kept). Metrics: the official EM and F1 (percent) and their average; EM selects
the best epoch.

(The recipe scores (start, end) pairs with a one-head GlobalPointer; here the start
and end logits are independent, decoded with a maximum answer length of 100 tokens,
so the longest answers of the dev data fit.)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..examples import Cmrc2018Example
from ..features import Feature
from ..jsonio import Location, load_json_document, nonempty, require
from ..metrics import cmrc2018_scores
from .base import Task, TaskParams
from .spec import SplitFiles, SubmissionFormat, TaskDefaults, TaskSpec

__all__ = [
    "Cmrc2018Task",
    "parse_cmrc2018",
    "locate_answer",
    "char_span_to_tokens",
    "best_span",
    "CMRC2018",
]

logger = logging.getLogger(__name__)

Offsets = np.ndarray
"""``(T, 2)`` int array: ``[start, end)`` character span of each content token."""


# ---------------------------------------------------------------- parser
def parse_cmrc2018(spec: TaskSpec, path: Path, labelled: bool) -> List[Cmrc2018Example]:
    """CMRC 2018, SQuAD layout: ``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``."""
    document = load_json_document(path, dict, "a JSON object with a 'data' list")
    top = Location(path)
    articles = require(document, "data", list, top)
    examples: List[Cmrc2018Example] = []
    seen: Set[str] = set()
    misplaced = total_answers = 0
    for a, article in enumerate(articles):
        where = top.at(f"data[{a}]")
        if not isinstance(article, dict):
            raise where.error("article should be an object")
        title = article.get("title", "")
        if not isinstance(title, str):
            raise where.error("field 'title' should be a string")
        for p, paragraph in enumerate(require(article, "paragraphs", list, where)):
            where = top.at(f"data[{a}].paragraphs[{p}]")
            if not isinstance(paragraph, dict):
                raise where.error("paragraph should be an object")
            context = require(paragraph, "context", str, where)
            for q, qa in enumerate(require(paragraph, "qas", list, where)):
                where = top.at(f"data[{a}].paragraphs[{p}].qas[{q}]")
                if not isinstance(qa, dict):
                    raise where.error("question should be an object")
                qid = require(qa, "id", str, where)
                if qid in seen:
                    raise where.error(f"duplicate question id {qid!r}")
                seen.add(qid)
                question = require(qa, "question", str, where)
                answers: List[str] = []
                starts: List[int] = []
                if labelled:
                    raw_answers = require(qa, "answers", list, where)
                    if not raw_answers:
                        raise where.error(f"question {qid!r} has no answers")
                    for n, answer in enumerate(raw_answers):
                        if not isinstance(answer, dict):
                            raise where.error(f"answers[{n}] should be an object")
                        answers.append(require(answer, "text", str, where))
                        starts.append(require(answer, "answer_start", int, where))
                        total_answers += 1
                        if context[starts[-1] : starts[-1] + len(answers[-1])] != answers[-1] or starts[-1] < 0:
                            misplaced += 1
                examples.append(Cmrc2018Example(qid, context, question, tuple(answers), tuple(starts), title))
    if misplaced:
        logger.info(
            "%s %s: %d of %d reference answers are not at their answer_start in the context "
            "(kept as in the file; the official data has -1 and off-by-one starts)",
            spec.name,
            path,
            misplaced,
            total_answers,
        )
    return nonempty(examples, path)


def check_answer_prediction(spec: TaskSpec, example: Cmrc2018Example, prediction: Any) -> str:
    """A submitted answer: a string."""
    if not isinstance(prediction, str):
        raise ValueError(f"{spec.name} prediction should be the answer text, got {prediction!r}")
    return prediction


# ---------------------------------------------------------------- spans
def locate_answer(example: Cmrc2018Example) -> Optional[Tuple[int, int]]:
    """``[start, end)`` characters of the first reference answer present in the context.

    An answer counts at its ``answer_start`` when the context has its text there,
    else at the first occurrence of its text; ``None`` when no answer occurs.
    """
    for answer, start in zip(example.answers, example.answer_starts):
        if answer and start >= 0 and example.context[start : start + len(answer)] == answer:
            return start, start + len(answer)
    for answer in example.answers:
        position = example.context.find(answer) if answer else -1
        if position >= 0:
            return position, position + len(answer)
    return None


def char_span_to_tokens(offsets: Offsets, start: int, end: int) -> Optional[Tuple[int, int]]:
    """Token indices ``(first, last)`` (inclusive) covering characters ``[start, end)``.

    ``first`` is the token holding character ``start``, ``last`` the token holding
    character ``end - 1``; ``None`` when no token overlaps the span.
    """
    if len(offsets) == 0 or end <= start:
        return None
    covering = np.nonzero((offsets[:, 1] > start) & (offsets[:, 0] < end))[0]
    if len(covering) == 0:
        return None
    return int(covering[0]), int(covering[-1])


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, max_answer_len: int) -> Tuple[float, int, int]:
    """Best ``(score, i, j)`` with ``i <= j < i + max_answer_len`` over ``T`` positions.

    Args:
        start_logits: ``(T,)``.
        end_logits: ``(T,)``.
        max_answer_len: longest span in positions (>= 1).
    """
    count = len(start_logits)
    if count == 0:
        return float("-inf"), -1, -1
    scores = start_logits[:, None].astype(np.float64) + end_logits[None, :].astype(np.float64)
    rows, cols = np.indices((count, count))
    allowed = (cols >= rows) & (cols - rows < max_answer_len)
    scores = np.where(allowed, scores, -np.inf)
    flat = int(np.argmax(scores))
    i, j = divmod(flat, count)
    return float(scores[i, j]), i, j


# ---------------------------------------------------------------- the family
class Cmrc2018Task(Task):
    """Sliding-window span extraction (see the module docstring)."""

    main_metric = "em"

    def encode(
        self, examples: Sequence[Cmrc2018Example], tokenizer: Any, params: TaskParams, labelled: bool
    ) -> List[Feature]:
        """Windows of every question: ``token_ids``, ``span_mask`` ``(N,)``;
        label ``(start, end)`` sequence positions; meta: the window's token offsets."""
        max_question = max(1, params.maxlen // 2)
        contexts: Dict[str, Tuple[np.ndarray, Offsets]] = {}
        cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id
        features: List[Feature] = []
        unlocated = 0
        for index, example in enumerate(examples):
            if example.context not in contexts:
                ids, _, spans = tokenizer.encode_with_offsets(example.context)
                contexts[example.context] = (
                    np.asarray(ids[1:-1], dtype=np.int32),
                    np.asarray(spans[1:-1], dtype=np.int64).reshape(-1, 2),
                )
            context_ids, offsets = contexts[example.context]
            question_ids = tokenizer.encode(example.question)[0][1:-1][:max_question]
            budget = params.maxlen - len(question_ids) - 3
            if budget < 1:
                raise ValueError("cmrc2018: maxlen %d leaves no room for the context" % params.maxlen)
            gold = None
            if labelled:
                located = locate_answer(example)
                gold = None if located is None else char_span_to_tokens(offsets, *located)
                if gold is None:
                    unlocated += 1
            head = [cls_id] + question_ids + [sep_id]
            window_start = 0
            while True:
                window_end = min(window_start + budget, len(context_ids))
                ids = np.asarray(head + context_ids[window_start:window_end].tolist() + [sep_id], dtype=np.int32)
                span_mask = np.zeros(len(ids), dtype=np.float32)
                span_mask[0] = 1.0
                span_mask[len(head) : len(head) + window_end - window_start] = 1.0
                label = None
                if labelled:
                    label = (0, 0)
                    if gold is not None and window_start <= gold[0] and gold[1] < window_end:
                        label = (gold[0] - window_start + len(head), gold[1] - window_start + len(head))
                features.append(
                    Feature(
                        {"token_ids": ids, "span_mask": span_mask},
                        label,
                        index,
                        {
                            "context_position": len(head),
                            "offsets": offsets[window_start:window_end],
                            "max_answer_len": params.max_answer_len,
                        },
                    )
                )
                if window_end >= len(context_ids):
                    break
                window_start += min(params.doc_stride, budget)  # never skip context tokens
        if unlocated:
            logger.info(
                "cmrc2018: %d of %d questions have no reference answer in their context; "
                "all their windows are labelled 'no answer'", unlocated, len(examples)
            )
        return features

    def input_names(self) -> List[str]:
        return ["token_ids", "segment_ids", "span_mask"]

    def label_shape(self) -> tuple:
        return (None, 2)

    def collate_labels(self, features: Sequence[Feature], inputs: Dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray([f.label for f in features], dtype=np.int32).reshape(-1, 2)

    def build_model(self, encoder: Any, params: TaskParams) -> Any:
        from ..heads import span_extractor

        return span_extractor(encoder, params.kernel_initializer)

    def loss(self, labels: Any, outputs: Any) -> Any:
        from ..heads import span_loss

        return span_loss(labels, outputs)

    def summarize(self, feature: Feature, output: np.ndarray) -> Tuple[float, int, int]:
        """``(score, char_start, char_end)`` of the window's best span (``-inf`` if it has no context)."""
        position = feature.meta["context_position"]
        offsets = feature.meta["offsets"]
        window = output[position : position + len(offsets)]
        score, i, j = best_span(window[:, 0], window[:, 1], feature.meta["max_answer_len"])
        if i < 0:
            return float("-inf"), 0, 0
        return score, int(offsets[i][0]), int(offsets[j][1])

    def decode(
        self,
        examples: Sequence[Cmrc2018Example],
        features: Sequence[Feature],
        summaries: Sequence[Any],
        params: TaskParams,
    ) -> List[str]:
        """Per question, the context text of its best-scoring window span."""
        best: List[Tuple[float, int, int]] = [(float("-inf"), 0, 0)] * len(examples)
        for feature, summary in zip(features, summaries):
            if summary[0] > best[feature.example_index][0]:
                best[feature.example_index] = summary
        return [example.context[start:end] for example, (_, start, end) in zip(examples, best)]

    def score(self, examples: Sequence[Cmrc2018Example], predictions: Sequence[Any]) -> Dict[str, float]:
        scores = cmrc2018_scores(examples, {e.id: p for e, p in zip(examples, predictions)})
        return {"em": scores.em, "f1": scores.f1, "average": scores.average}


# ---------------------------------------------------------------- the task
CMRC2018 = TaskSpec(
    name="cmrc2018",
    family=Cmrc2018Task,
    example_type=Cmrc2018Example,
    parse=parse_cmrc2018,
    files=SplitFiles(extra={"trial": ("trial.json",)}),
    defaults=TaskDefaults(
        maxlen=512, batch_size=16, epochs=10, grad_accum_steps=2, doc_stride=128, max_answer_len=100
    ),
    submission=SubmissionFormat(
        check=check_answer_prediction, keys=lambda example: (example.id,), key_noun="questions"
    ),
    published_dev_score=58.09,
)
