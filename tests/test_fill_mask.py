"""Fill-mask: mask positions, the tied MLM head, and the command."""
import numpy as np
import pytest

import gau_alpha
from bert4keras.tokenizers import Tokenizer
from gau_alpha.fill_mask import encode_with_masks, fill_mask
from gau_alpha.resources import RELEASE_VOCAB
from helpers import TINY_CONFIG, write_release_dir


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(str(RELEASE_VOCAB), do_lower_case=True)


def test_mask_markers_become_mask_ids_at_the_right_positions(tokenizer):
    ids, positions = encode_with_masks(tokenizer, "北京是中国的[MASK][MASK]。")
    plain, _ = tokenizer.encode("北京是中国的首都。")
    assert len(ids) == len(plain)
    assert positions == [7, 8]
    assert [ids[p] for p in positions] == [103, 103]
    assert ids[:7] == plain[:7] and ids[9:] == plain[9:]
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        encode_with_masks(tokenizer, "没有掩码")


def test_fill_mask_reads_the_tied_head_at_each_mask(tokenizer, tmp_path):
    release = write_release_dir(tmp_path, TINY_CONFIG)
    model = gau_alpha.build_transformer_model(str(release / "bert_config.json"), str(release), with_mlm=True)
    text = "今天[MASK]气很好，我们去[MASK]园。"
    predictions = fill_mask(model, tokenizer, text, top_k=3)
    assert len(predictions) == 2 and all(len(p) == 3 for p in predictions)
    ids, positions = encode_with_masks(tokenizer, text)
    probabilities = model.predict([np.array([ids]), np.zeros((1, len(ids)))], verbose=0)[0]
    for position, predicted in zip(positions, predictions):
        assert predicted[0][0] == tokenizer.id_to_token(int(probabilities[position].argmax()))
        assert predicted[0][1] == pytest.approx(float(probabilities[position].max()))
        assert predicted[0][1] >= predicted[1][1] >= predicted[2][1]


def test_fill_mask_command(tmp_path, capsys):
    from gau_alpha.cli import main

    release = write_release_dir(tmp_path, TINY_CONFIG)
    assert main(["fill-mask", "--model-dir", str(release), "--top-k", "2", "中[MASK]"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[MASK] 1: ") and len(out.strip().splitlines()) == 1
