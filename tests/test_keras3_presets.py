"""Loading the Keras 3 GAU-alpha: release directory, torch layout, keras-hub presets; strictness.

All Keras 3 work runs in one JAX child process (tests/keras3_worker.py ``presets``); this
process writes the directories (release layout through TensorFlow, torch layout through the
project's converter) and asserts on the child's report.
"""
import json

import numpy as np
import pytest

from helpers import TINY_CONFIG, padded_batch, random_release_tensors, write_release_dir
from test_keras3_parity import run_worker

import gau_alpha
from gau_alpha.tokenization import load_tokenizer


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("keras3_presets")
    release = write_release_dir(root / "release", TINY_CONFIG, seed=1)
    from gau_alpha.convert.converter import convert

    convert(release, root / "torch", to="torch")
    tokens, segments = padded_batch((4, 9), TINY_CONFIG["vocab_size"], seed=2)
    np.savez(root / "inputs.npz", token_ids=tokens, segment_ids=segments)
    broken = {}
    tensors = random_release_tensors(TINY_CONFIG, seed=1)
    cases = {
        "missing": {k: v for k, v in tensors.items() if not k.endswith("layer_1/gau/o_dense/kernel")},
        "extra": dict(tensors, **{"bert/pooler/dense/kernel": np.zeros((128, 128), np.float32)}),
        "shape": dict(tensors, **{"GAU_alpha/encoder/layer_0/gau/q_scaleoffset/gamma": np.ones(16, np.float32)}),
    }
    for name, case in cases.items():
        directory = write_release_dir(root / name, TINY_CONFIG)
        gau_alpha.write_tf1_checkpoint(directory / "bert_model.ckpt", case)
        broken[name] = str(directory)
    output = root / "report.json"
    run_worker("presets", "jax", release=str(release), torch=str(root / "torch"), preset=str(root / "preset"),
               task_preset=str(root / "task_preset"), inputs=str(root / "inputs.npz"), broken=broken,
               output=str(output))
    return json.loads(output.read_text(encoding="utf-8"))


def test_save_to_preset_round_trip_is_bit_exact(report):
    assert report["preset_weights_equal"] and all(report["preset_weights_equal"])
    assert len(report["preset_weights_equal"]) == 2 + 4 * TINY_CONFIG["num_hidden_layers"]
    assert report["preset_paths_equal"] and report["preset_outputs_equal"]
    assert report["config_round_trip"]


def test_torch_layout_loads_the_same_weights(report):
    assert report["torch_layout_equal"]


def test_classifier_preset_round_trip_keeps_head_and_preprocessor(report):
    assert report["task_preset_outputs_equal"]
    assert report["task_preset_sequence_length"] == 16
    expected = load_tokenizer(fast=True).encode("北京是中国的首都。")[0][1:-1]
    assert report["preset_tokenizer_ids"] == expected


def test_strict_loading_names_every_problem(report):
    errors = report["errors"]
    assert "missing variable GAU_alpha/encoder/layer_1/gau/o_dense/kernel" in errors["missing"]
    assert "unused checkpoint variable bert/pooler/dense/kernel, shape (128, 128)" in errors["extra"]
    assert ("shape mismatch for variable GAU_alpha/encoder/layer_0/gau/q_scaleoffset/gamma: "
            "checkpoint (16,), model (32,)") in errors["shape"]
