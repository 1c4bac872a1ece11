"""Tokenization for GAU-alpha: the vocab, bert4keras's reference tokenizer and a fast one.

GAU-alpha was trained with bert4keras's ``Tokenizer(vocab, do_lower_case=True)``: a
character-level BERT tokenizer (every CJK character and every punctuation mark is a
token; other runs of characters are split into WordPiece pieces). That tokenizer is pure
Python. :class:`FastTokenizer` produces the *same ids* with the Rust ``tokenizers``
library, whose batch encoding runs in parallel, and adds character offsets into the
original text (for span-extraction tasks such as cmrc2018 and cluener).

How the fast pipeline reproduces bert4keras (``Tokenizer._tokenize``), step by step:

============================  ==============================================================
bert4keras                    ``tokenizers`` component
============================  ==============================================================
``text.lower()``              ``Replace`` (Greek final sigma, as ``str.lower`` does) then
                              ``Lowercase``
NFD, drop category ``Mn``     ``NFD`` then ``Replace(\\p{Mn} | controls -> "")``
drop NUL, U+FFFD, Cc/Cf       (same ``Replace``; ``\\t \\n \\r`` are kept: they are spaces)
split on spaces, isolate      one ``Split`` whose words are a punctuation mark, a CJK
punctuation and CJK           character, or a run of other non-space characters. Spaces:
                              space, ``\\t\\n\\r``, ``Zs``, U+2028/U+2029 (``str.split``
                              splits on them too). Punctuation: ASCII ``!``-``/``,
                              ``:``-``@``, ``[``-`````, ``{``-``~`` and every ``P*`` char
greedy longest-match pieces   ``WordPiece`` (``##`` prefix, ``[UNK]``, words longer than
                              200 characters are unknown: bert4keras's ``word_maxlen``)
``[CLS] A [SEP] (B [SEP])``   ``TemplateProcessing`` (:meth:`FastTokenizer.encode_batch`
                              adds them in Python instead: faster)
============================  ==============================================================

Texts that normalization cannot change (no accents or controls, capitals aside: most
Chinese text) skip the Rust pipeline: they are lower-cased, split by a Python regex
(:func:`_plain_words`) and looked up word by word in a cache of WordPiece ids
(``_PieceIds``), which avoids the binding's per-call and per-token overhead.

The stock components differ from bert4keras on rare inputs: ``BertNormalizer`` deletes
private-use characters (bert4keras keeps them, as ``[UNK]`` words), its CJK ranges miss
U+2B820-U+2B91F, ``Lowercase`` has no final sigma, and ``StripAccents`` also removes
spacing (``Mc``) and enclosing (``Me``) marks; hence the explicit pipeline. Truncation
(``maxlen``) is bert4keras's ``truncate_sequences``, done on the id lists in Python.
Character classes come from the Unicode tables compiled into Python (``unicodedata``)
and into the ``tokenizers`` wheel; they can disagree only on characters assigned in
recent Unicode versions.
"""
from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from gau_alpha.errors import ConfigError, DataError, ModelDirError
from gau_alpha.resources import RELEASE_VOCAB

PathLike = Union[str, Path]
Encoded = Tuple[List[int], List[int]]
"""``(token_ids, segment_ids)``: two lists of the same length ``L``."""
Span = Tuple[int, int]
"""``(start, end)`` character offsets into the original text; ``(0, 0)`` for specials."""

TOKEN_PAD = "[PAD]"
TOKEN_UNK = "[UNK]"
TOKEN_CLS = "[CLS]"
TOKEN_SEP = "[SEP]"
TOKEN_MASK = "[MASK]"
WORD_MAXLEN = 200
"""Longest word (in characters) that WordPiece splits; longer ones are unknown.
Same value as the default ``word_maxlen`` of bert4keras's ``Tokenizer``."""

# Regular expressions (Oniguruma syntax, used inside the Rust pipeline).
_CJK_RANGES = (
    r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
    r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}"
)
_PUNCT_RANGES = r"\x{21}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{7E}\p{P}"
_SPACE_RANGES = r" \t\n\r\p{Zs}\x{2028}\x{2029}"
_CONTROL_RANGES = r"\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\p{Cf}\x{FFFD}"
# Python's str.lower maps a capital sigma at the end of a word to the final form.
_FINAL_SIGMA = (
    r"(?<=\p{Cased})Σ(?!\p{Case_Ignorable}*\p{Cased})"
    r"|(?<=\p{Cased}\p{Case_Ignorable})Σ(?!\p{Case_Ignorable}*\p{Cased})"
)


# ------------------------------------------------------------------------------ vocab
def load_vocab(path: Optional[PathLike] = None) -> Dict[str, int]:
    """Read a BERT ``vocab.txt``: one token per line, the id is the 0-based line number.

    As in bert4keras, only the first whitespace-separated field of a line is the token
    (``"token<TAB>count"`` files work). Unlike bert4keras, which silently shifts the ids
    after a duplicate, bad files raise.

    Args:
        path: the file; default the release vocab (:data:`gau_alpha.resources.RELEASE_VOCAB`).

    Returns:
        ``{token: id}`` with ids ``0 .. n-1``.

    Raises:
        ModelDirError: (a ``FileNotFoundError``) no such file.
        DataError: (a ``ValueError``) empty file, blank line, duplicate token (naming both
            lines), or a file that is not UTF-8; the command line prints it as one line.
    """
    path = Path(RELEASE_VOCAB if path is None else path)
    if not path.is_file():
        raise ModelDirError("vocab file not found: %s" % path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise DataError(path, "vocab file is not UTF-8 (%s)" % error.reason, line=line) from None
    vocab: Dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            raise DataError(path, "blank line in a vocab file", line=line_no)
        token = fields[0]
        if token in vocab:
            raise DataError(path, "duplicate token %r (first on line %d)" % (token, vocab[token] + 1), line=line_no)
        vocab[token] = len(vocab)
    if not vocab:
        raise DataError(path, "vocab file is empty")
    return vocab


# ------------------------------------------------------------------- special tokens
def _special_id(attribute: str, doc: str) -> property:
    """A read-only property returning bert4keras's private ``attribute`` (None if unset)."""
    return property(lambda self: getattr(self, attribute, None), doc=doc)


class SpecialTokenIds:
    """Public ids of the special tokens, shared by both tokenizers :func:`load_tokenizer` returns.

    bert4keras keeps these ids in private attributes (``_token_start_id`` ...); code in this
    project reads them here instead. Each is an ``int``, or ``None`` when the vocab lacks
    the token.
    """

    cls_id = _special_id("_token_start_id", "``[CLS]``, the first token of every sequence (bert4keras's start).")
    sep_id = _special_id("_token_end_id", "``[SEP]``, the end of each segment (bert4keras's end).")
    unk_id = _special_id("_token_unk_id", "``[UNK]``, the id of every piece not in the vocab.")
    pad_id = _special_id("_token_pad_id", "``[PAD]``, the padding id (0 in the GAU-alpha vocab).")
    mask_id = _special_id("_token_mask_id", "``[MASK]``, the masked-language-model token.")


@functools.lru_cache(maxsize=None)
def _reference_tokenizer_class() -> type:
    """:class:`ReferenceTokenizer`, defined on first use (bert4keras imports TensorFlow)."""
    from bert4keras.tokenizers import Tokenizer

    class ReferenceTokenizer(SpecialTokenIds, Tokenizer):
        """bert4keras's ``Tokenizer``, unchanged, plus the public ids of :class:`SpecialTokenIds`."""

    ReferenceTokenizer.__module__ = __name__
    ReferenceTokenizer.__qualname__ = "ReferenceTokenizer"  # found by pickle through __getattr__
    return ReferenceTokenizer


def __getattr__(name: str):
    # ``ReferenceTokenizer`` subclasses bert4keras's Tokenizer, so it is made on first use
    # (PEP 562); this also lets pickle find the class by its name.
    if name == "ReferenceTokenizer":
        return _reference_tokenizer_class()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def load_tokenizer(vocab_path: Optional[PathLike] = None, fast: bool = False):
    """The tokenizer GAU-alpha was trained with, for ``vocab_path`` (default: the release).

    Both kinds give the same ids and expose the special-token ids publicly
    (``cls_id``, ``sep_id``, ``unk_id``, ``pad_id``, ``mask_id``: :class:`SpecialTokenIds`).

    Args:
        vocab_path: a ``vocab.txt``; default :data:`gau_alpha.resources.RELEASE_VOCAB`.
        fast: ``False``: a ``ReferenceTokenizer``, i.e. bert4keras's
            ``Tokenizer(vocab, do_lower_case=True)`` (the reference; imports TensorFlow
            through bert4keras). ``True``: a :class:`FastTokenizer` with the same ids.
    """
    vocab = load_vocab(vocab_path)
    if fast:
        return FastTokenizer(vocab, do_lower_case=True)
    return _reference_tokenizer_class()(vocab, do_lower_case=True)


# ------------------------------------------------------------------------ truncation
def _pop_counts(lengths: Sequence[int], maxlen: int) -> List[int]:
    """How many tokens bert4keras's ``truncate_sequences`` pops from each sequence.

    It pops one token at a time from the longest sequence (the first one on ties) until
    the total length is at most ``maxlen``; this computes the result without the loop.
    """
    lengths = list(lengths)
    excess = sum(lengths) - maxlen
    if excess <= 0:
        return [0] * len(lengths)
    if len(lengths) == 1:
        return [excess]
    if len(lengths) != 2:
        raise ValueError("at most two sequences are supported")
    first, second = lengths
    gap = abs(first - second)
    longer = 0 if first >= second else 1
    counts = [0, 0]
    counts[longer] = min(excess, gap)
    rest = excess - counts[longer]
    counts[0] += (rest + 1) // 2  # equal lengths from here on: the first pops first
    counts[1] += rest // 2
    return counts


def _pop(items: List, count: int, index: int) -> List:
    """``items`` after ``count`` times ``items.pop(index)`` (as a new list)."""
    if count == 0:
        return items
    size = len(items)
    if index == -2 and count <= size - 1:
        return items[: size - 1 - count] + items[size - 1 :]
    if index == 1 and count <= size - 1:
        return items[:1] + items[1 + count :]
    items = list(items)
    try:
        for _ in range(count):
            items.pop(index)
    except IndexError:
        raise ValueError("maxlen is too small to keep the special tokens") from None
    return items


# ---------------------------------------------------------------------- normalization
def normalize(text: str, do_lower_case: bool = True) -> str:
    """bert4keras's normalization of ``text`` in Python (what the Rust normalizer does).

    With ``do_lower_case``: ``str.lower``, NFD and no ``Mn`` marks. Always: no NUL,
    U+FFFD or ``Cc``/``Cf`` controls, except ``\\t\\n\\r``, which are spaces to
    bert4keras (the pre-tokenizer splits on them).
    """
    if do_lower_case:
        text = unicodedata.normalize("NFD", text.lower())
    return "".join(
        c
        for c in text
        if c in "\t\n\r"
        or not (
            c == "\x00"
            or c == "\ufffd"
            or unicodedata.category(c) in ("Cc", "Cf")
            or (do_lower_case and unicodedata.category(c) == "Mn")
        )
    )


# Blocks searched for characters that normalization leaves alone (ASCII, Latin, Greek,
# Cyrillic, general punctuation, symbols, CJK punctuation and ideographs, full width).
_PLAIN_BLOCKS = (
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x4FF), (0x2000, 0x206F), (0x2100, 0x22FF),
    (0x2460, 0x25FF), (0x3000, 0x303F), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
    (0xFF00, 0xFFEF),
)


@functools.lru_cache(maxsize=2)
def _not_plain(do_lower_case: bool) -> "re.Pattern[str]":
    """A regex that finds a character normalization could change (or that context could).

    ``_not_plain(...).search(text) is None`` means ``normalize(text) == text``, so the
    normalizer can be skipped: true of most Chinese text (no capitals, no accents).
    """
    plain = [0x09, 0x0A, 0x0D]
    for low, high in _PLAIN_BLOCKS:
        for code in range(low, high + 1):
            ch = chr(code)
            if (
                ch != "Σ"  # lowercases by context (final sigma)
                and unicodedata.category(ch) != "Cn"
                and unicodedata.combining(ch) == 0  # NFD reorders combining marks
                and normalize(ch, do_lower_case) == ch
            ):
                plain.append(code)
    ranges: List[List[int]] = []
    for code in plain:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    members = "".join(
        re.escape(chr(low)) + ("-" + re.escape(chr(high)) if high > low else "")
        for low, high in ranges
    )
    return re.compile("[^%s]" % members)


@functools.lru_cache(maxsize=2)
def _plain_words(do_lower_case: bool) -> "re.Pattern[str]":
    """bert4keras's word split of *plain* text (see :func:`_not_plain`) as a Python regex:
    a word is one punctuation mark or CJK character, or a run of other characters that are
    not spaces. Plain text holds only the characters :func:`_not_plain` allows, so the
    classes are enumerated over those (Python's ``re`` has no ``\\p{P}``)."""
    isolated, spaces = [], []
    for low, high in ((0x09, 0x0D),) + _PLAIN_BLOCKS:
        for code in range(low, high + 1):
            ch = chr(code)
            if _is_punctuation(ch) or _is_cjk(ch):
                isolated.append(code)
            elif ch.isspace() or unicodedata.category(ch) == "Zs":  # bert4keras: spaces, then str.split
                spaces.append(code)

    def char_class(codes: List[int]) -> str:
        ranges: List[List[int]] = []
        for code in codes:
            if ranges and code == ranges[-1][1] + 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
        return "".join(
            re.escape(chr(low)) + ("-" + re.escape(chr(high)) if high > low else "") for low, high in ranges
        )

    iso, space = char_class(isolated), char_class(spaces)
    return re.compile("[%s]|[^%s%s]+" % (iso, space, iso))


class _PieceIds(dict):
    """word -> its WordPiece ids (a tuple), computed on first use as bert4keras's
    ``_word_piece_tokenize`` + ``token_to_id`` do: greedy longest match with ``##``
    continuations; a word that cannot be split, or longer than ``word_maxlen``, is one
    token (the ``[UNK]`` id unless the vocab has the whole word)."""

    #: distinct words kept before the cache is cleared (bounded memory on any corpus)
    LIMIT = 200_000

    def __init__(self, token_dict: Mapping[str, int], unk_id: int, word_maxlen: int) -> None:
        super().__init__()
        self.token_dict, self.unk_id, self.word_maxlen = token_dict, unk_id, word_maxlen

    def pieces(self, word: str) -> Tuple[int, ...]:
        token_dict = self.token_dict
        if len(word) > self.word_maxlen:
            return (token_dict.get(word, self.unk_id),)
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in token_dict:
                    break
                end -= 1
            if end == start:
                return (token_dict.get(word, self.unk_id),)
            ids.append(token_dict[piece])
            start = end
        return tuple(ids)

    def __missing__(self, word: str) -> Tuple[int, ...]:
        if len(self) >= self.LIMIT:
            self.clear()
        ids = self[word] = self.pieces(word)
        return ids


# --------------------------------------------------------------------------- decoding
_CJK_PUNCTUATION = (
    "\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d\uff0f"
    "\uff1a\uff1b\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f\uff40\uff5b"
    "\uff5c\uff5d\uff5e\uff5f\uff60\uff62\uff63\uff64\u3000\u3001\u3003\u3008\u3009"
    "\u300a\u300b\u300c\u300d\u300e\u300f\u3010\u3011\u3014\u3015\u3016\u3017\u3018"
    "\u3019\u301a\u301b\u301c\u301d\u301e\u301f\u3030\u303e\u303f\u2013\u2014\u2018"
    "\u2019\u201b\u201c\u201d\u201e\u201f\u2026\u2027\ufe4f\ufe51\ufe54\u00b7\uff01"
    "\uff1f\uff61\u3002"
)
_NO_SPACE_AFTER = re.compile(
    "(%s) " % "|".join(re.escape(ch) for ch in _CJK_PUNCTUATION + "+-/={(<[")
)
_CJK_BLOCKS = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
"""The code point ranges of ``_CJK_RANGES``."""


def _is_cjk(ch: str) -> bool:
    """Is ``ch`` in one of the CJK blocks that bert4keras isolates?"""
    code = ord(ch)
    return any(low <= code <= high for low, high in _CJK_BLOCKS)


def _is_punctuation(ch: str) -> bool:
    """ASCII symbols and every Unicode ``P*`` character, as bert4keras defines it."""
    code = ord(ch)
    return (
        33 <= code <= 47
        or 58 <= code <= 64
        or 91 <= code <= 96
        or 123 <= code <= 126
        or unicodedata.category(ch).startswith("P")
    )


def _is_special(token: str) -> bool:
    """``[CLS]``-like tokens (bracketed), which decoding and ``rematch`` skip."""
    return len(token) > 0 and token[0] == "[" and token[-1] == "]"


def _join_tokens(tokens: Sequence[str]) -> str:
    """Readable text from word pieces, with bert4keras's spacing rules.

    CJK characters and ``##`` pieces attach to what precedes; other words are separated
    by a space; a punctuation mark is followed by a space, which is then removed after
    CJK punctuation, brackets and operators, and inside decimals.
    """
    pieces: List[str] = []
    last = ""  # last character written so far
    for position, token in enumerate(t for t in tokens if not _is_special(t)):
        if token.startswith("##"):
            piece = token[2:]
        elif len(token) == 1 and _is_cjk(token):
            piece = token
        elif len(token) == 1 and _is_punctuation(token):
            piece = token + " "
        elif position > 0 and last and _is_cjk(last):
            piece = token
        else:
            piece = " " + token
        if piece:
            pieces.append(piece)
            last = piece[-1]
    text = re.sub(" +", " ", "".join(pieces))
    text = re.sub("' (re|m|s|t|ve|d|ll) ", "'\\1 ", text)
    text = _NO_SPACE_AFTER.sub("\\1", text)
    text = re.sub(r"(\d\.) (\d)", "\\1\\2", text)
    return text.strip()


# ---------------------------------------------------------------------- the tokenizer
class FastTokenizer(SpecialTokenIds):
    """Drop-in replacement for bert4keras's ``Tokenizer`` built on ``tokenizers`` (Rust).

    ``encode``, ``tokenize``, ``token_to_id``, ``id_to_token``, ``decode`` and ``rematch``
    give the same results as ``bert4keras.tokenizers.Tokenizer(vocab, do_lower_case)``,
    and the private attributes that code written for bert4keras reads
    (``_token_start_id``, ``_token_end_id``, ``_token_pad_id``, ``_token_unk_id``,
    ``_token_mask_id``, ``_token_dict``, ``_vocab_size``...) exist with the same values.
    Additions: the public special-token ids (``cls_id``, ``sep_id``, ``unk_id``, ``pad_id``,
    ``mask_id``: :class:`SpecialTokenIds`), :meth:`encode_batch` (parallel),
    :meth:`encode_with_offsets` and :attr:`backend` (the ``tokenizers.Tokenizer``).

    Args:
        token_dict: ``{token: id}``, or a ``vocab.txt`` path; default the release vocab.
        do_lower_case: lowercase and strip accents (GAU-alpha: ``True``).
    """

    def __init__(
        self,
        token_dict: Union[Mapping[str, int], PathLike, None] = None,
        do_lower_case: bool = True,
    ) -> None:
        vocab_source = token_dict if isinstance(token_dict, (str, Path)) else None
        if token_dict is None or isinstance(token_dict, (str, Path)):
            token_dict = load_vocab(token_dict)
        self._token_dict: Dict[str, int] = dict(token_dict)
        self._token_dict_inv: Dict[int, str] = {i: t for t, i in self._token_dict.items()}
        self._vocab_size = len(self._token_dict)
        self._do_lower_case = do_lower_case
        self._word_maxlen = WORD_MAXLEN
        self._token_pad, self._token_unk, self._token_mask = TOKEN_PAD, TOKEN_UNK, TOKEN_MASK
        self._token_start, self._token_end = TOKEN_CLS, TOKEN_SEP
        for name in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, "_token_%s" % name)
            if token in self._token_dict:
                setattr(self, "_token_%s_id" % name, self._token_dict[token])
        for name in ("unk", "start", "end"):
            if not hasattr(self, "_token_%s_id" % name):
                where = "" if not isinstance(vocab_source, (str, Path)) else " %s" % vocab_source
                raise ConfigError("the vocab%s has no %s token" % (where, getattr(self, "_token_" + name)))
        self._backend = self._build_backend()
        # Texts that are already normal (most Chinese text) need no normalizer: they are
        # split and looked up in Python, without the Rust binding's per-call and per-token
        # overhead (Chinese text: one dict lookup per character).
        self._not_plain = _not_plain(do_lower_case)
        self._plain_words = _plain_words(do_lower_case).findall
        self._piece_ids = _PieceIds(self._token_dict, self._token_unk_id, self._word_maxlen)

    def _build_backend(self, normalizer: bool = True):
        """The ``tokenizers.Tokenizer`` pipeline (see the module docstring)."""
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
        from tokenizers import processors

        model = models.WordPiece(
            self._token_dict,
            unk_token=self._token_unk,
            continuing_subword_prefix="##",
            max_input_chars_per_word=self._word_maxlen,
        )
        backend = Tokenizer(model)
        if normalizer and self._do_lower_case:
            backend.normalizer = normalizers.Sequence([
                normalizers.Replace(Regex(_FINAL_SIGMA), "ς"),
                normalizers.Lowercase(),
                normalizers.NFD(),
                normalizers.Replace(Regex(r"[\p{Mn}%s]" % _CONTROL_RANGES), ""),
            ])
        elif normalizer:
            backend.normalizer = normalizers.Replace(Regex("[%s]" % _CONTROL_RANGES), "")
        # One pass: a word is one punctuation mark or CJK character, or a run of other
        # non-space characters; what no word matches (spaces) is dropped.
        isolated = _PUNCT_RANGES + _CJK_RANGES
        words = "[%s]|[^%s%s]+" % (isolated, _SPACE_RANGES, isolated)
        backend.pre_tokenizer = pre_tokenizers.Split(
            Regex(words), behavior="removed", invert=True
        )
        cls, sep = self._token_start, self._token_end
        backend.post_processor = processors.TemplateProcessing(
            single="%s $A %s" % (cls, sep),
            pair="%s $A %s $B:1 %s:1" % (cls, sep, sep),
            special_tokens=[(cls, self._token_start_id), (sep, self._token_end_id)],
        )
        return backend

    # ------------------------------------------------------------------ vocabulary
    @property
    def backend(self):
        """The underlying ``tokenizers.Tokenizer`` (no truncation configured)."""
        return self._backend

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocab."""
        return self._vocab_size

    def token_to_id(self, token: str) -> int:
        """Id of ``token``; the ``[UNK]`` id for tokens not in the vocab."""
        return self._token_dict.get(token, self._token_unk_id)

    def tokens_to_ids(self, tokens: Sequence[str]) -> List[int]:
        """:meth:`token_to_id` for each token."""
        return [self.token_to_id(token) for token in tokens]

    def id_to_token(self, i: int) -> str:
        """Token of id ``i`` (``KeyError`` when out of range)."""
        return self._token_dict_inv[i]

    def ids_to_tokens(self, ids: Sequence[int]) -> List[str]:
        """:meth:`id_to_token` for each id."""
        return [self.id_to_token(i) for i in ids]

    # -------------------------------------------------------------------- encoding
    def _truncate_index(self, truncate_from: Union[str, int]) -> int:
        if truncate_from == "right":
            return -2
        if truncate_from == "left":
            return 1
        if isinstance(truncate_from, int):
            return truncate_from
        raise ValueError("truncate_from must be 'right', 'left' or an int")

    def _assemble(
        self,
        first: List,
        second: Optional[List],
        maxlen: Optional[int],
        pattern: str = "S*E*E",
        truncate_from: Union[str, int] = "right",
    ) -> Tuple[List, List[int]]:
        """Truncate (bert4keras's rule) and join ``[CLS] A [SEP]`` and ``[CLS] B [SEP]``.

        ``first``/``second`` are per-token lists (ids, tokens or spans) including both
        specials. Returns the joined list (``L``) and the segment ids (``L``).
        """
        if maxlen is not None:
            index = self._truncate_index(truncate_from)
            if second is None:
                (count,) = _pop_counts([len(first)], maxlen)
                first = _pop(first, count, index)
            else:
                budget = maxlen + 1 if pattern == "S*E*E" else maxlen
                counts = _pop_counts([len(first), len(second)], budget)
                first = _pop(first, counts[0], index)
                second = _pop(second, counts[1], index)
        if second is None:
            return first, [0] * len(first)
        if pattern == "S*E*E":
            second = second[1:]
        return first + second, [0] * len(first) + [1] * len(second)

    def _plain_ids(self, text: str) -> List[int]:
        """``[CLS] ... [SEP]`` ids of a plain text (``self._not_plain.search(text) is None``),
        split by a Python regex, each word's ids from the word cache."""
        ids = [self._token_start_id]
        ids.extend(itertools.chain.from_iterable(map(self._piece_ids.__getitem__, self._plain_words(text))))
        ids.append(self._token_end_id)
        return ids

    def _as_plain(self, text: str) -> Optional[str]:
        """``text`` normalized, when that is cheap: the text itself if plain, or (lower-casing
        tokenizers) its ``str.lower()`` if that is plain (then NFD, accent and control
        removal change nothing, so it is the full normalization: capitals in otherwise
        plain text, the common case). None otherwise (the Rust pipeline normalizes it)."""
        search = self._not_plain.search
        if search(text) is None:
            return text
        if self._do_lower_case:
            lowered = text.lower()
            if search(lowered) is None:
                return lowered
        return None

    def _encode_many(self, texts: List[str]) -> List[List[int]]:
        """``[CLS] ... [SEP]`` ids of each text: plain texts in Python, the others by the
        Rust pipeline (in parallel)."""
        other: List[int] = []
        rows: List[List[int]] = [[]] * len(texts)
        as_plain, plain_ids = self._as_plain, self._plain_ids
        for position, text in enumerate(texts):
            plain = as_plain(text)
            if plain is None:
                other.append(position)
            else:
                rows[position] = plain_ids(plain)
        if other:
            batch = getattr(self._backend, "encode_batch_fast", self._backend.encode_batch)
            # Specials are added here rather than by the template: measurably faster.
            encodings = batch([texts[i] for i in other], add_special_tokens=False)
            start, end = [self._token_start_id], [self._token_end_id]
            for position, encoding in zip(other, encodings):
                rows[position] = start + encoding.ids + end
        return rows

    def _ids(self, text: Union[str, Sequence[str]]) -> List[int]:
        """``[CLS] ... [SEP]`` ids of a text, or ids of a list of tokens (as is)."""
        if isinstance(text, str):
            plain = self._as_plain(text)
            return self._backend.encode(text).ids if plain is None else self._plain_ids(plain)
        return self.tokens_to_ids(text)

    def encode(
        self,
        first_text: Union[str, Sequence[str]],
        second_text: Union[str, Sequence[str], None] = None,
        maxlen: Optional[int] = None,
        pattern: str = "S*E*E",
        truncate_from: Union[str, int] = "right",
    ) -> Encoded:
        """Token ids and segment ids of a text or a text pair, as bert4keras's ``encode``.

        ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` (segment 0 up to the first
        ``[SEP]``, 1 after). With ``maxlen``, the longer part loses its last content
        token until the total fits (``truncate_from='left'``: its first content token).
        A list of tokens instead of a text is used as is (it must hold the specials).

        Returns:
            ``(token_ids, segment_ids)``, each a list of length ``L <= maxlen``.
        """
        first = self._ids(first_text)
        second = None if second_text is None else self._ids(second_text)
        return self._assemble(first, second, maxlen, pattern, truncate_from)

    def encode_batch(
        self,
        first_texts: Sequence[str],
        second_texts: Optional[Sequence[str]] = None,
        maxlen: Optional[int] = None,
    ) -> List[Encoded]:
        """:meth:`encode` for many texts (or pairs), encoded in parallel by ``tokenizers``.

        Args:
            first_texts: ``N`` texts.
            second_texts: ``None`` or ``N`` texts paired with ``first_texts``.
            maxlen: per-example length limit, as in :meth:`encode`.

        Returns:
            ``N`` pairs ``(token_ids, segment_ids)``.
        """
        first_texts = list(first_texts)
        count = len(first_texts)
        texts = first_texts
        if second_texts is not None:
            second_texts = list(second_texts)
            if len(second_texts) != count:
                raise ValueError(
                    "%d first texts but %d second texts" % (count, len(second_texts))
                )
            texts = first_texts + second_texts
        ids = self._encode_many(texts)
        if second_texts is None:
            if maxlen is None:
                return [(row, [0] * len(row)) for row in ids]
            return [self._assemble(row, None, maxlen) for row in ids]
        return [self._assemble(ids[i], ids[count + i], maxlen) for i in range(count)]

    def encode_with_offsets(
        self,
        first_text: str,
        second_text: Optional[str] = None,
        maxlen: Optional[int] = None,
    ) -> Tuple[List[int], List[int], List[Span]]:
        """:meth:`encode` plus, per token, its ``(start, end)`` span in the original text.

        ``text[start:end]`` is the stretch of the text the token came from (accents,
        case and removed control characters included); tokens of ``second_text`` index
        into ``second_text``; ``[CLS]``/``[SEP]`` get ``(0, 0)``.

        Returns:
            ``(token_ids, segment_ids, spans)``, three lists of length ``L``.
        """
        first = self._backend.encode(first_text)
        items = list(zip(first.ids, first.offsets))
        other = None
        if second_text is not None:
            second = self._backend.encode(second_text)
            other = list(zip(second.ids, second.offsets))
        joined, segment_ids = self._assemble(items, other, maxlen)
        return [i for i, _ in joined], segment_ids, [tuple(span) for _, span in joined]

    def tokenize(self, text: str, maxlen: Optional[int] = None) -> List[str]:
        """Tokens of ``text`` with ``[CLS]``/``[SEP]``, as bert4keras's ``tokenize``.

        A word that WordPiece cannot split appears as its normalized self (not
        ``[UNK]``), like in bert4keras; its id is still the ``[UNK]`` id.
        """
        encoding = self._backend.encode(text)
        tokens = list(encoding.tokens)
        for position, (token_id, token) in enumerate(zip(encoding.ids, tokens)):
            if token_id == self._token_unk_id and 0 < position < len(tokens) - 1:
                start, end = encoding.offsets[position]
                tokens[position] = normalize(text[start:end], self._do_lower_case)
        if maxlen is not None:
            (count,) = _pop_counts([len(tokens)], maxlen)
            tokens = _pop(tokens, count, -2)
        return tokens

    def _normalized_length(self, ch: str) -> int:
        """How many characters ``ch`` becomes after normalization (0: it is dropped).

        Lowercasing and NFD may expand a character (a Hangul syllable becomes 3 jamo);
        controls and lone combining accents vanish.
        """
        if " " <= ch <= "~":
            return 1
        if self._do_lower_case:
            ch = unicodedata.normalize("NFD", ch.lower())
        return sum(
            1
            for c in ch
            if c != "\x00"
            and c != "\ufffd"
            and unicodedata.category(c) not in ("Cc", "Cf")
            and not (self._do_lower_case and unicodedata.category(c) == "Mn")
        )

    def rematch(self, text: str, tokens: Optional[Sequence[str]] = None) -> List[List[int]]:
        """Per token, the indices of the characters of ``text`` it came from.

        Same result as bert4keras's ``Tokenizer.rematch(text, tokens)``: special tokens
        map to ``[]``; an index appears once per character it becomes after
        normalization, so characters dropped by it (controls, combining accents) are left
        out and expanded ones (Hangul syllables) repeat. (bert4keras lowercases the whole
        text first and its indices shift after a character whose lowercase is longer,
        such as "İ"; these indices do not.) ``tokens`` (default: ``self.tokenize(text)``;
        may be truncated at the end) only decides which entries are special.
        """
        content = self._backend.encode(text).offsets[1:-1]
        if tokens is None:
            tokens = self.tokenize(text)
        mapping: List[List[int]] = []
        position = 0
        for token in tokens:
            if _is_special(token) and token != self._token_unk:
                mapping.append([])
                continue
            if position >= len(content):
                raise ValueError("more content tokens than this text has")
            start, end = content[position]
            position += 1
            if token == self._token_unk:  # a word written as "[UNK]": bert4keras gives []
                mapping.append([])
            else:
                mapping.append([
                    i for i in range(start, end) for _ in range(self._normalized_length(text[i]))
                ])
        return mapping

    def decode(self, ids: Sequence[int], tokens: Optional[Sequence[str]] = None) -> str:
        """Readable text for ``ids`` (special tokens dropped), as bert4keras's ``decode``."""
        return _join_tokens(tokens or self.ids_to_tokens(ids))

    def __repr__(self) -> str:
        return "FastTokenizer(vocab_size=%d, do_lower_case=%s)" % (
            self._vocab_size,
            self._do_lower_case,
        )
