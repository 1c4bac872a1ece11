"""GAUAlphaTokenizer gives bert4keras's ids on the bundled CLUE samples (Python path and
inside tf.data), packs sentence pairs like bert4keras, and gau_alpha.keras3 needs neither
tf-keras nor bert4keras."""
import json

import pytest

from test_keras3_parity import run_worker

from gau_alpha.clue.loaders import load_split
from gau_alpha.resources import CLUE_SAMPLES_DIR
from gau_alpha.tokenization import load_tokenizer


def sample_texts():
    """Every text field (2+ characters) of the train samples of the text tasks."""
    texts = []
    for task in ("tnews", "iflytek", "afqmc", "cmnli", "ocnli", "csl", "wsc", "cluener", "cmrc2018"):
        for example in load_split(task, CLUE_SAMPLES_DIR, "train"):
            texts += [v for v in vars(example).values() if isinstance(v, str) and len(v) > 1]
    return texts


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    texts = sample_texts() + ["Héllo WÖRLD naïve x\u200by\x00z\ufffd \t tab", "ＡＢＣ１２３，。！", "a" * 250]
    output = tmp_path_factory.mktemp("keras3_tokenizer") / "ids.json"
    run_worker("tokenize", "jax", texts=texts, sequence_length=24, output=str(output))
    return texts, json.loads(output.read_text(encoding="utf-8"))


def test_ids_equal_bert4keras_on_clue_samples(tokenized):
    texts, got = tokenized
    reference = load_tokenizer()  # bert4keras's Tokenizer(vocab, do_lower_case=True)
    assert len(texts) > 1000
    expected = [reference.encode(text)[0][1:-1] for text in texts]
    python_bad = [t for t, e, g in zip(texts, expected, got["python"]) if e != g]
    graph_bad = [t for t, e, g in zip(texts, expected, got["graph"]) if e != g]
    assert not python_bad, [(t, e, g) for t, e, g in zip(texts, expected, got["python"]) if e != g][:3]
    assert not graph_bad, graph_bad[:3]


def test_pairs_are_packed_like_bert4keras(tokenized):
    texts, got = tokenized
    reference = load_tokenizer()
    for row in range(4):
        ids, segments = reference.encode(texts[row], texts[4 + row], maxlen=24)
        pad = 24 - len(ids)
        if len(reference.encode(texts[row], texts[4 + row])[0]) <= 24:  # truncation rules differ
            assert got["pair_token_ids"][row] == ids + [0] * pad
            assert got["pair_segment_ids"][row] == segments + [0] * pad
        assert got["pair_padding_mask"][row] == [int(t != 0) for t in got["pair_token_ids"][row]]
    assert any(1 in row for row in got["pair_segment_ids"])


@pytest.mark.parametrize("backend", ["torch"])
def test_imports_without_tf_keras_and_bert4keras(tmp_path, backend):
    output = tmp_path / "imports.json"
    run_worker("imports", backend, output=str(output))
    got = json.loads(output.read_text(encoding="utf-8"))
    assert got["keras"].startswith("3.") and got["backend"] == backend
    assert got["shape"] == [1, 4, 16] and got["modules"] == []
