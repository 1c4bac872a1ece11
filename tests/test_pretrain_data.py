"""Pre-training data on the bundled slice of the real corpus: whole-word masking, packing,
the resumable stream, and the corpus reader's errors. Pure Python (no TensorFlow)."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import rjieba

from gau_alpha.errors import DataError
from gau_alpha.pretrain.corpus import Cursor, check_corpus, iter_documents
from gau_alpha.pretrain.masking import Segmenter, WholeWordMasker, encode_document
from gau_alpha.pretrain.packing import BatchMaker, Packer, SequenceStream, fixed_batches
from gau_alpha.resources import PRETRAIN_SAMPLE_DIR
from gau_alpha.tokenization import load_tokenizer

TRAIN = PRETRAIN_SAMPLE_DIR / "train.jsonl"
VALID = PRETRAIN_SAMPLE_DIR / "valid.jsonl"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(fast=True)


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter("rjieba")


@pytest.fixture(scope="module")
def masker(tokenizer):
    return WholeWordMasker(tokenizer._token_dict, tokenizer.mask_id)


def corpus_texts(limit=None):
    texts = [json.loads(line)["text"] for line in TRAIN.read_text(encoding="utf-8").splitlines()]
    return texts[:limit]


def word_boundaries(text):
    """Start and end offsets of rjieba's words, from ``rjieba.cut`` (the words, not offsets)."""
    starts, ends, position = set(), set(), 0
    for word in rjieba.cut(text):
        assert text.startswith(word, position)
        starts.add(position)
        position += len(word)
        ends.add(position)
    assert position == len(text)
    return starts, ends


# ---------------------------------------------------------------------------- whole words
def test_every_masked_unit_is_a_whole_segmenter_word(tokenizer, segmenter, masker):
    """On real documents, each chosen unit covers whole words of the segmenter: its
    characters start at a word start and end at a word end, and every token of the unit is
    chosen; nothing else is."""
    rng = np.random.default_rng(0)
    units_checked = single_word_units = 0
    for text in corpus_texts(150):
        document = encode_document(text, tokenizer, segmenter)
        starts, ends = word_boundaries(text)
        ids = np.concatenate([[tokenizer.cls_id], document.token_ids, [tokenizer.sep_id]]).astype(np.int32)
        units = np.concatenate([[-1], document.units, [-1]]).astype(np.int32)
        masked = masker(ids, units, rng)
        chosen = set(masked.chosen_units)
        for unit in np.unique(document.units):
            positions = np.flatnonzero(document.units == unit)
            start, end = int(document.spans[positions[0], 0]), int(document.spans[positions[-1], 1])
            assert start in starts and end in ends, (text[start:end], text)
            single_word_units += text[start:end] in rjieba.cut(text)
            units_checked += 1
            selected = masked.weights[positions + 1]  # +1: [CLS]
            assert selected.min() == selected.max() == float(unit in chosen), (unit, selected)
        assert masked.weights[0] == masked.weights[-1] == 0.0
    assert units_checked > 5000
    assert single_word_units / units_checked > 0.99  # units joining two words are rare


def test_masking_rates_and_special_tokens_on_packed_real_text(tokenizer, segmenter, masker):
    """15% of the words of each sequence, 80/10/10 of the chosen words, within tolerance;
    [CLS], [SEP] and padding are never chosen nor changed."""
    packer = Packer([TRAIN], tokenizer, segmenter, maxlen=128)
    counts, units_total, chosen_total = Counter(), 0, 0
    special = {tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id}
    for number in range(300):
        ids, units = packer.next_sequence()
        masked = masker(ids, units, np.random.default_rng([7, number]))
        present = len(np.unique(units[units >= 0]))
        assert len(masked.chosen_units) == max(1, round(0.15 * present))
        units_total += present
        chosen_total += len(masked.chosen_units)
        counts.update(masked.actions)
        is_special = np.isin(ids, list(special))
        assert np.all(units[is_special] == -1)
        assert np.all(masked.weights[is_special] == 0)
        assert np.array_equal(masked.input_ids[is_special], ids[is_special])
        unchosen = masked.weights == 0
        assert np.array_equal(masked.input_ids[unchosen], ids[unchosen])
        for unit, action in zip(masked.chosen_units, masked.actions):
            where = units == unit
            if action == "mask":
                assert np.all(masked.input_ids[where] == tokenizer.mask_id)
            elif action == "keep":
                assert np.array_equal(masked.input_ids[where], ids[where])
            else:
                assert not np.isin(masked.input_ids[where], masker.special_ids).any()
    assert abs(chosen_total / units_total - 0.15) < 0.005
    chosen = sum(counts.values())
    assert chosen > 3000
    assert abs(counts["mask"] / chosen - 0.8) < 0.03
    assert abs(counts["random"] / chosen - 0.1) < 0.025
    assert abs(counts["keep"] / chosen - 0.1) < 0.025


# ---------------------------------------------------------------------------- packing
def test_packing_keeps_every_token_in_order(tokenizer, segmenter):
    """The packed sequences, specials and padding removed, are the documents' tokens in
    corpus order, [SEP] after each document; all but a word's worth at the end is filled."""
    texts = corpus_texts(40)
    expected = []
    for text in texts:
        expected.extend(encode_document(text, tokenizer, segmenter).token_ids.tolist() + [tokenizer.sep_id])
    packer = Packer([TRAIN], tokenizer, segmenter, maxlen=64)
    produced = []
    while len(produced) < len(expected):
        ids, units = packer.next_sequence()
        assert ids.shape == units.shape == (64,) and ids[0] == tokenizer.cls_id
        body = ids[1:][ids[1:] != tokenizer.pad_id]
        assert (ids == tokenizer.pad_id).sum() <= 8
        produced.extend(body.tolist())
    assert produced[: len(expected)] == expected


def test_stream_resumes_exactly_from_its_json_state(tokenizer, segmenter, masker):
    def maker():
        stream = SequenceStream(Packer([TRAIN], tokenizer, segmenter, 48), window=16, seed=3)
        return stream, BatchMaker(stream, masker, batch_size=4, accum_steps=2)

    stream, batches = maker()
    for _ in range(5):  # into the third window, mid-window
        batches.next_batch()
    state = json.loads(json.dumps(stream.state()))
    after = [batches.next_batch() for _ in range(3)]
    fresh_stream, fresh = maker()
    fresh_stream.restore(state)
    for expected in after:
        got = fresh.next_batch()
        assert got.input_ids.shape == (2, 4, 48)
        for name in ("input_ids", "target_ids", "weights"):
            assert np.array_equal(getattr(got, name), getattr(expected, name))
    # the windows really are shuffled: the stream's order is not the corpus order
    plain = Packer([TRAIN], tokenizer, segmenter, 48)
    in_order = [plain.next_sequence()[0] for _ in range(16)]
    stream, _ = maker()
    shuffled = [stream.next()[1] for _ in range(16)]
    assert sorted(map(bytes, in_order)) == sorted(map(bytes, shuffled))
    assert list(map(bytes, in_order)) != list(map(bytes, shuffled))


def test_validation_batches_are_one_fixed_pass(tokenizer, segmenter, masker):
    first = fixed_batches([VALID], tokenizer, segmenter, masker, 64, 8, 1000, seed=0)
    again = fixed_batches([VALID], tokenizer, segmenter, masker, 64, 8, 1000, seed=0)
    total = sum(b.input_ids.shape[1] for b in first)
    characters = check_corpus([VALID]).characters
    assert characters / 64 * 0.8 < total < characters / 64 * 1.6  # one pass, not endless
    assert all(np.array_equal(a.input_ids, b.input_ids) for a, b in zip(first, again))


# ---------------------------------------------------------------------------- the corpus reader
def test_corpus_reader_formats_cursor_and_passes(tmp_path):
    plain = tmp_path / "docs.txt"
    plain.write_bytes("第一篇文档。\n\n第二篇\r\n第三篇文档\n".encode("utf-8"))
    documents = iter_documents([plain, TRAIN])
    first = [next(documents) for _ in range(4)]
    assert [d.text for d in first[:3]] == ["第一篇文档。", "第二篇", "第三篇文档"]
    assert [d.line for d in first[:3]] == [1, 3, 4]
    assert first[3].text == json.loads(TRAIN.read_text(encoding="utf-8").splitlines()[0])["text"]
    resumed = next(iter_documents([plain, TRAIN], first[1].next_cursor))
    assert resumed.text == "第三篇文档" and resumed.line == 4
    single = iter_documents([plain])
    texts = [next(single).text for _ in range(4)]
    assert texts[3] == texts[0]  # the stream starts over: pass 2
    cursor = Cursor.from_json(json.loads(json.dumps(first[2].next_cursor.to_json())))
    assert cursor == first[2].next_cursor


@pytest.mark.parametrize("content, line, fragment", [
    (b"\n  \n\n", None, "no documents"),
    ('{"text": "好的"}\n{"text": "ok"}\n'.encode("utf-8") + b'{"text": "\xe4\xb8"}\n', 3, "not UTF-8"),
    (b'{"text": "a"}\n{"txt": "b"}\n', 2, 'no "text" field'),
    (b'{"text": "a"}\n{"text": 3}\n', 2, "must be a string"),
    (b'{"text": "a"}\n{"text": "b"\n', 2, "not a JSON object"),
])
def test_corpus_errors_name_the_file_and_line(tmp_path, content, line, fragment):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        check_corpus([path])
    assert str(path) in str(error.value) and fragment in str(error.value)
    assert error.value.line == line
    with pytest.raises(DataError):
        documents = iter_documents([path])
        for _ in range(5):
            next(documents)
