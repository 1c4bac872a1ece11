"""gau_alpha.tokenization: the release vocab, and FastTokenizer == bert4keras's Tokenizer.

The oracle is ``bert4keras.tokenizers.Tokenizer(vocab, do_lower_case=True)``, the
tokenizer GAU-alpha was trained with. Every string in every bundled CLUE sample file is
tokenized by both.
"""
import os

os.environ.setdefault("TF_KERAS", "1")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import json  # noqa: E402
import random  # noqa: E402
import unicodedata  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from gau_alpha.resources import CLUE_SAMPLES_DIR, RELEASE_VOCAB  # noqa: E402
from gau_alpha.tokenization import (  # noqa: E402
    FastTokenizer,
    _not_plain,
    load_tokenizer,
    load_vocab,
    normalize,
)
from bert4keras.tokenizers import Tokenizer as ReferenceTokenizer  # noqa: E402
from bert4keras.tokenizers import load_vocab as reference_load_vocab  # noqa: E402
from bert4keras.snippets import lowercase_and_normalize  # noqa: E402


# ------------------------------------------------------------------ sample texts
def _records(path: Path):
    """The JSON documents of a sample file: one document, or one per line (JSONL)."""
    raw = path.read_text(encoding="utf-8")
    try:
        return [json.loads(raw)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in raw.splitlines() if line.strip()]


def _strings(value):
    """Every string in a JSON value (dict keys included: cluener keys are entities)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _pairs(value):
    """Text pairs: consecutive string fields of each object, plus task-specific pairs."""
    if isinstance(value, dict):
        fields = [v for v in value.values() if isinstance(v, str)]
        yield from zip(fields, fields[1:])
        if "context" in value and "qas" in value:  # cmrc2018 paragraph
            for qa in value["qas"]:
                yield qa["question"], value["context"]
        if "content" in value and "candidates" in value:  # chid
            for content in value["content"]:
                yield content, "，".join(value["candidates"])
        for item in value.values():
            yield from _pairs(item)
    elif isinstance(value, list):
        if len(value) >= 2 and isinstance(value[0], list) and isinstance(value[1], list):
            if value[0] and all(isinstance(v, str) for v in value[0]):  # c3 document
                document = "\n".join(value[0])
                for question in value[1]:
                    if isinstance(question, dict) and "question" in question:
                        yield question["question"], document
                        for choice in question.get("choice", []):
                            yield choice, question["question"]
        for item in value:
            yield from _pairs(item)


def _sample_files():
    return sorted(CLUE_SAMPLES_DIR.glob("*/*.json"))


@pytest.fixture(scope="module")
def sample_texts():
    texts = set()
    for path in _sample_files():
        for record in _records(path):
            texts.update(_strings(record))
    return sorted(texts)


@pytest.fixture(scope="module")
def sample_pairs():
    pairs = set()
    for path in _sample_files():
        for record in _records(path):
            pairs.update(_pairs(record))
    return sorted(pairs)


@pytest.fixture(scope="module")
def reference():
    return ReferenceTokenizer(reference_load_vocab(str(RELEASE_VOCAB)), do_lower_case=True)


@pytest.fixture(scope="module")
def fast():
    return FastTokenizer()


@pytest.fixture(scope="module")
def reference_encodings(reference, sample_texts):
    return [reference.encode(text) for text in sample_texts]


# Inputs where bert4keras's rules and the stock tokenizers components disagree, or that
# exercise each rule: case and final sigma, accents (Mn) versus spacing marks (Mc),
# Hangul (expands under NFD), private use, U+2028, controls, zero-width and soft
# hyphen, over-long words, full-width forms, CJK extension blocks, literal specials.
EDGE_TEXTS = [
    "",
    "   \t\n ",
    "ΟΔΟΣ ΟΔΟΣ. Σ aΣb ΑΣ́ ΣΑ",
    "café naïve RÉSUMÉ e\u0301\u0301 \u0301abc test\u0345",
    "नमस्ते दुनिया a\u0903b A\u20DDb c\u0378d a\U0002B820b \U0002B91F\U0002B920",
    "한국어 텍스트 岳峰（백악봉，）",
    "x\u2028y a\u2029b c\u0085d e\x1cf",
    "\ue000中\ue001 \U000f0000",
    "\U000e0001x a\u200bb a\u00adb \ufeffbom",
    "\x00\ufffd\x7fok \x0b\x0c\x1c\x85x",
    "Istanbul ǅ ẞ ﬁne Ⅻ ①② ℃ ΐ",
    "[CLS] [UNK] hello [SEP] [MASK]",
    "a" * 250 + " " + "b" * 201 + " c " + "d" * 200,
    "\u3000全角\u3000空格ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "🙂😀 emoji 👍🏻 \U00020000\U0002A700 \uF900\uFA30 \u2F00",
    "3.14 don't I'm 1,000,000 e-mail a+b=c (x) <y> {z} ~`^|\\",
    "「引号」『书名』《书》【注】……——·•",
]


# ------------------------------------------------------------------------- vocab
def test_release_vocab_facts():
    vocab = load_vocab()
    assert len(vocab) == 12000
    assert vocab["[PAD]"] == 0
    assert vocab["[UNK]"] == 100
    assert vocab["[CLS]"] == 101
    assert vocab["[SEP]"] == 102
    assert vocab["[MASK]"] == 103
    assert "_" not in vocab
    assert sorted(vocab.values()) == list(range(12000))


def test_load_vocab_agrees_with_bert4keras():
    assert load_vocab(RELEASE_VOCAB) == reference_load_vocab(str(RELEASE_VOCAB))
    assert load_vocab(str(RELEASE_VOCAB)) == load_vocab()


def test_load_vocab_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_vocab(tmp_path / "nowhere.txt")
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "nowhere.txt", fast=True)
    with pytest.raises(FileNotFoundError):
        FastTokenizer(tmp_path / "nowhere.txt")

    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_vocab(empty)

    duplicate = tmp_path / "duplicate.txt"
    duplicate.write_text("[PAD]\n[UNK]\na\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 5.*line 3"):
        load_vocab(duplicate)

    blank = tmp_path / "blank.txt"
    blank.write_text("[PAD]\n\n[UNK]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        load_vocab(blank)

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("[PAD]\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        load_vocab(latin1)


def test_load_vocab_reads_first_field_and_strips_bom(tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text("\ufeff[PAD] 0\n[UNK]\t7\n[CLS]\n[SEP]\nab 3\n##c\n", encoding="utf-8")
    vocab = load_vocab(path)
    assert vocab == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "ab": 4, "##c": 5}
    tokenizer = FastTokenizer(path)
    assert tokenizer.encode("abc abd") == ([2, 4, 5, 1, 3], [0] * 5)
    assert tokenizer.encode("abc abd") == ReferenceTokenizer(vocab, do_lower_case=True).encode(
        "abc abd"
    )


def test_vocab_without_specials_is_rejected():
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        FastTokenizer({"[UNK]": 0, "[SEP]": 1, "a": 2})


def test_load_tokenizer(reference):
    slow = load_tokenizer()
    assert isinstance(slow, ReferenceTokenizer)
    assert slow._do_lower_case
    quick = load_tokenizer(fast=True)
    assert isinstance(quick, FastTokenizer)
    assert slow._vocab_size == quick.vocab_size == 12000


def test_special_token_ids_are_public_on_both_tokenizers():
    import pickle

    import gau_alpha.tokenization as tokenization

    for tokenizer in (load_tokenizer(), load_tokenizer(fast=True)):
        assert isinstance(tokenizer, tokenization.SpecialTokenIds)
        assert (tokenizer.cls_id, tokenizer.sep_id, tokenizer.unk_id) == (101, 102, 100)
        assert (tokenizer.pad_id, tokenizer.mask_id) == (0, 103)
        for name, token in (("cls_id", "[CLS]"), ("sep_id", "[SEP]"), ("unk_id", "[UNK]"),
                            ("pad_id", "[PAD]"), ("mask_id", "[MASK]")):
            assert getattr(tokenizer, name) == tokenizer.token_to_id(token)
    slow = load_tokenizer()
    assert type(slow) is tokenization.ReferenceTokenizer
    assert pickle.loads(pickle.dumps(slow)).encode("中文") == slow.encode("中文")
    # a vocab without [PAD] or [MASK]: those ids are None
    small = FastTokenizer({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3})
    assert (small.cls_id, small.sep_id, small.unk_id, small.pad_id, small.mask_id) == (1, 2, 0, None, None)


def test_bert4keras_compatible_attributes(fast, reference):
    for name in (
        "_token_pad_id", "_token_unk_id", "_token_mask_id", "_token_start_id",
        "_token_end_id", "_token_pad", "_token_unk", "_token_mask", "_token_start",
        "_token_end", "_vocab_size", "_do_lower_case", "_token_dict", "_word_maxlen",
    ):
        assert getattr(fast, name) == getattr(reference, name), name
    assert (fast._token_start_id, fast._token_end_id) == (101, 102)
    assert (fast._token_pad_id, fast._token_mask_id, fast._token_unk_id) == (0, 103, 100)
    for token in ("[CLS]", "中", "##ing", "not-a-token", ""):
        assert fast.token_to_id(token) == reference.token_to_id(token)
    for i in (0, 100, 101, 5000, 11999):
        assert fast.id_to_token(i) == reference.id_to_token(i)
    with pytest.raises(KeyError):
        fast.id_to_token(12000)


# ----------------------------------------------------------------------- parity
def test_sample_corpus_is_large(sample_texts, sample_pairs):
    assert len(_sample_files()) >= 30
    assert len(sample_texts) > 5000
    assert sum(len(text) for text in sample_texts) > 300_000
    assert len(sample_pairs) > 3000


def test_encode_batch_matches_reference(fast, sample_texts, reference_encodings):
    assert fast.encode_batch(sample_texts) == reference_encodings


def test_encode_matches_reference(fast, sample_texts, reference_encodings):
    for text, expected in zip(sample_texts, reference_encodings):
        assert fast.encode(text) == expected, text


def test_tokenize_matches_reference(fast, reference, sample_texts):
    for text in sample_texts:
        assert fast.tokenize(text) == reference.tokenize(text), text


@pytest.mark.parametrize("maxlen", [16, 64])
def test_single_maxlen_matches_reference(fast, reference, sample_texts, maxlen):
    expected = [reference.encode(text, maxlen=maxlen) for text in sample_texts]
    assert fast.encode_batch(sample_texts, maxlen=maxlen) == expected
    assert max(len(ids) for ids, _ in expected) == maxlen
    for text in sample_texts[:500]:
        assert fast.tokenize(text, maxlen=maxlen) == reference.tokenize(text, maxlen=maxlen)


@pytest.mark.parametrize("maxlen", [None, 64, 256])
def test_pairs_match_reference(fast, reference, sample_pairs, maxlen):
    firsts = [first for first, _ in sample_pairs]
    seconds = [second for _, second in sample_pairs]
    expected = [reference.encode(a, b, maxlen=maxlen) for a, b in sample_pairs]
    assert fast.encode_batch(firsts, seconds, maxlen=maxlen) == expected
    for (first, second), encoded in zip(sample_pairs[:300], expected):
        assert fast.encode(first, second, maxlen=maxlen) == encoded
    if maxlen is not None:
        assert max(len(ids) for ids, _ in expected) == maxlen
    assert any(1 in segments for _, segments in expected)


def test_truncation_corner_cases_match_reference(fast, reference, sample_pairs):
    """Tiny budgets (bert4keras then pops the [CLS] itself), ties, 'left' truncation."""
    rng = random.Random(0)
    pairs = rng.sample(sample_pairs, 40) + [("一二三", "四五六"), ("一", "二三四五六七")]
    for first, second in pairs:
        for maxlen in range(0, 12):
            for truncate_from in ("right", "left"):
                for other in (second, None):
                    try:
                        expected = reference.encode(
                            first, other, maxlen=maxlen, truncate_from=truncate_from
                        )
                    except IndexError:
                        with pytest.raises(ValueError, match="maxlen"):
                            fast.encode(first, other, maxlen=maxlen, truncate_from=truncate_from)
                        continue
                    got = fast.encode(first, other, maxlen=maxlen, truncate_from=truncate_from)
                    assert got == expected, (first, other, maxlen, truncate_from)
    assert fast.encode("一二三", "四五六", maxlen=6, pattern="S*ES*E") == reference.encode(
        "一二三", "四五六", maxlen=6, pattern="S*ES*E"
    )


def test_token_lists_are_encoded_as_is(fast, reference):
    first, second = reference.tokenize("GAU-alpha 模型"), reference.tokenize("字 piece")
    expected = reference.encode(list(first), list(second), maxlen=8)  # it pops in place
    assert fast.encode(first, second, maxlen=8) == expected
    assert first == reference.tokenize("GAU-alpha 模型")  # ours leaves the lists alone


def test_edge_texts_match_reference(fast, reference):
    for text in EDGE_TEXTS:
        assert fast.encode(text) == reference.encode(text), repr(text)
        assert fast.tokenize(text) == reference.tokenize(text), repr(text)
        assert fast.rematch(text) == reference.rematch(text, reference.tokenize(text)), repr(text)
    assert fast.encode_batch(EDGE_TEXTS) == [reference.encode(t) for t in EDGE_TEXTS]


def test_rematch_indexes_the_original_text(fast, reference):
    """"İ" lowercases to two characters; bert4keras's rematch then indexes the lowered
    text (off by one after it), ours keeps indexing the original."""
    text = "İstanbul İzmir"
    assert fast.encode(text) == reference.encode(text)
    tokens = fast.tokenize(text)
    assert tokens == reference.tokenize(text)
    mapping = fast.rematch(text, tokens)
    for token, chars in zip(tokens[1:-1], mapping[1:-1]):
        piece = token[2:] if token.startswith("##") else token
        assert _normalize("".join(text[i] for i in sorted(set(chars)))) == piece
    _, _, spans = fast.encode_with_offsets(text)
    assert spans[1:-1] == [(chars[0], chars[-1] + 1) for chars in mapping[1:-1]]
    assert text[spans[1][0]:spans[1][1]] == "İs"


def test_cased_tokenizer_matches_reference(sample_texts):
    vocab = load_vocab()
    cased_fast = FastTokenizer(vocab, do_lower_case=False)
    cased_reference = ReferenceTokenizer(vocab, do_lower_case=False)
    texts = [t for t in sample_texts if any(c.isupper() for c in t)] + EDGE_TEXTS
    assert len(texts) > 500
    assert cased_fast.encode_batch(texts) == [cased_reference.encode(t) for t in texts]
    for text in texts[:300] + EDGE_TEXTS:
        assert cased_fast.tokenize(text) == cased_reference.tokenize(text), repr(text)
        assert cased_fast.rematch(text) == cased_reference.rematch(
            text, cased_reference.tokenize(text)
        ), repr(text)


def test_decode_matches_reference(fast, reference, reference_encodings):
    for ids, _ in reference_encodings:
        assert fast.decode(ids) == reference.decode(ids)


def test_normalize_matches_reference(sample_texts):
    """gau_alpha's Python normalize == bert4keras's lowercasing + its control filter."""
    def reference_normalize(text):
        return "".join(
            c for c in lowercase_and_normalize(text)
            if c in "\t\n\r" or not (
                ord(c) == 0 or ord(c) == 0xFFFD or ReferenceTokenizer._is_control(c)
            )
        )

    for text in sample_texts + EDGE_TEXTS:
        assert normalize(text) == reference_normalize(text), repr(text)


def test_plain_texts_skip_normalization_safely(sample_texts):
    """Texts the normalizer cannot change take the normalizer-free path; both are used."""
    plain = [t for t in sample_texts if _not_plain(True).search(t) is None]
    assert 1000 < len(plain) < len(sample_texts) - 1000
    for text in plain:
        assert normalize(text) == text
    for text in EDGE_TEXTS:
        if _not_plain(True).search(text) is None:
            assert normalize(text) == text
    for text in sample_texts:
        if _not_plain(False).search(text) is None:
            assert normalize(text, do_lower_case=False) == text


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_rust_normalizer_leaves_plain_characters_alone(do_lower_case):
    """The plain path skips the Rust normalizer: it must be the identity on those chars."""
    tokenizer = FastTokenizer(load_vocab(), do_lower_case=do_lower_case)
    plain = "".join(
        chr(code) for code in range(0x110000)
        if 0xD800 > code or code > 0xDFFF
        if _not_plain(do_lower_case).search(chr(code)) is None
    )
    assert len(plain) > 25000
    assert tokenizer.backend.normalizer.normalize_str(plain) == plain


# ---------------------------------------------------------------------- offsets
def _normalize(text: str) -> str:
    """bert4keras's lowercase + NFD + accent stripping, minus the dropped controls."""
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(
        c for c in text
        if unicodedata.category(c) not in ("Mn", "Cc", "Cf") and c not in "\x00\ufffd"
    )


def test_rematch_matches_reference(fast, reference, sample_texts):
    for text in sample_texts:
        tokens = reference.tokenize(text)
        assert fast.rematch(text) == reference.rematch(text, tokens), text
    text = max(sample_texts, key=len)
    tokens = reference.tokenize(text, maxlen=32)
    assert fast.rematch(text, tokens) == reference.rematch(text, tokens)


def test_offsets_agree_with_rematch(fast, reference, sample_texts):
    """Each token's span is the stretch of the original text rematch maps it to."""
    for text in sample_texts:
        ids, segments, spans = fast.encode_with_offsets(text)
        tokens = reference.tokenize(text)
        assert (ids, segments) == reference.encode(text)
        assert spans[0] == spans[-1] == (0, 0)
        mapping = reference.rematch(text, tokens)
        for token, span, chars in zip(tokens[1:-1], spans[1:-1], mapping[1:-1]):
            assert span == (chars[0], chars[-1] + 1), (text, token)
            piece = token[2:] if token.startswith("##") else token
            assert _normalize(text[span[0]:span[1]]) == piece, (text, token)


def test_pair_offsets(fast, reference, sample_pairs):
    for first, second in sample_pairs[:500]:
        ids, segments, spans = fast.encode_with_offsets(first, second, maxlen=64)
        assert (ids, segments) == reference.encode(first, second, maxlen=64)
        assert len(spans) == len(ids)
        for token_id, segment, (start, end) in zip(ids, segments, spans):
            text = second if segment else first
            if token_id in (101, 102):
                assert (start, end) == (0, 0)
            else:
                assert 0 <= start < end <= len(text)


def _entity_spans():
    """(text, start, end) of every cluener entity and cmrc2018 answer (end exclusive)."""
    for path in sorted((CLUE_SAMPLES_DIR / "cluener").glob("*.json")):
        for record in _records(path):
            for entities in record.get("label", {}).values():
                for entity, positions in entities.items():
                    for start, last in positions:
                        assert record["text"][start:last + 1] == entity
                        yield record["text"], start, last + 1
    for path in sorted((CLUE_SAMPLES_DIR / "cmrc2018").glob("*.json")):
        for article in _records(path)[0]["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    for answer in qa["answers"]:
                        start = answer["answer_start"]
                        end = start + len(answer["text"])
                        if start >= 0 and context[start:end] == answer["text"]:
                            yield context, start, end


def test_span_extraction_with_offsets(fast, reference):
    """Entity/answer character spans <-> token spans, as a span-extraction task needs."""
    total = aligned = 0
    cache = {}
    for text, start, end in _entity_spans():
        total += 1
        if text not in cache:
            cache[text] = (
                fast.encode_with_offsets(text)[2],
                reference.rematch(text, reference.tokenize(text)),
            )
        spans, mapping = cache[text]
        starts = [i for i, s in enumerate(spans) if s != (0, 0) and s[0] == start]
        ends = [i for i, s in enumerate(spans) if s != (0, 0) and s[1] == end]
        reference_starts = [i for i, m in enumerate(mapping) if m and m[0] == start]
        reference_ends = [i for i, m in enumerate(mapping) if m and m[-1] + 1 == end]
        assert (starts, ends) == (reference_starts, reference_ends), text[start:end]
        if starts and ends:
            aligned += 1
            assert text[spans[starts[0]][0]:spans[ends[0]][1]] == text[start:end]
    assert total > 2000
    assert aligned / total > 0.99


# ------------------------------------------------------------------ the Python path
def test_python_path_splits_every_plain_character_like_bert4keras(reference):
    """Plain texts are split by a Python regex whose classes are enumerated over the plain
    characters: every one of them (alone, inside a word, between spaces) gives bert4keras's
    ids, and so does the lower-cased path for capitals."""
    fast = FastTokenizer()
    plain = [chr(c) for c in range(0x110000) if (c < 0xD800 or c > 0xDFFF) and _not_plain(True).search(chr(c)) is None]
    assert len(plain) > 25000
    chunks = ["".join(plain[i : i + 40]) for i in range(0, len(plain), 40)]
    texts = chunks + ["ab%scd 12%s" % (ch, ch) for ch in plain[::7]] + [" ".join(plain[:3000])]
    texts += ["GAU-Alpha 模型 NBA%s" % text[:5] for text in chunks[:50]]  # capitals: the lower-cased path
    assert all(fast._as_plain(text) is not None for text in texts)
    expected = [reference.encode(text) for text in texts]
    assert fast.encode_batch(texts) == expected
    assert [fast.encode(text) for text in texts] == expected


def test_word_cache_is_bounded_and_exact(reference, sample_texts):
    fast = FastTokenizer()
    fast._piece_ids.LIMIT = 50  # cleared again and again
    texts = sample_texts[:2000] + ["a" * 201 + " 中" + "b" * 200, "unaffable ##x xx##"]
    assert fast.encode_batch(texts) == [reference.encode(text) for text in texts]
    assert len(fast._piece_ids) <= 50
