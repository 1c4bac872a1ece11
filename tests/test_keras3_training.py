"""Training the Keras 3 GAU-alpha: fit on the bundled CLUE samples (JAX) through the CLUE
entry point, keras.distribution data parallelism on two host devices, and model.export()."""
import json

import numpy as np
import pytest

from helpers import TINY_CONFIG, padded_batch, write_release_dir
from test_keras3_parity import run_worker

from gau_alpha.clue.submission import validate_submission
from gau_alpha.clue.loaders import load_split
from gau_alpha.resources import clue_sample_dir


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("keras3_training")
    release = write_release_dir(root / "release", TINY_CONFIG, seed=7)
    tokens, segments = padded_batch((5, 12, 9, 16, 7, 3, 14, 10), TINY_CONFIG["vocab_size"], seed=8)
    np.savez(root / "batch.npz", token_ids=tokens, segment_ids=segments, labels=np.arange(8) % 3)
    return root, release


def test_fit_on_tnews_and_afqmc_samples_lowers_the_loss_and_writes_submissions(workspace):
    root, release = workspace
    output = root / "clue.json"
    run_worker("clue", "jax", timeout=600, tasks=["tnews", "afqmc"], release=str(release),
               output_dir=str(root / "clue"), epochs=2, learning_rate=2e-3, output=str(output))
    results = json.loads(output.read_text(encoding="utf-8"))
    for task, metrics in results.items():
        assert metrics["backend"] == "jax"
        losses = metrics["train_loss"]
        assert len(losses) == 2 and losses[-1] < losses[0], (task, losses)
        assert 0.0 <= metrics["dev_accuracy"] <= 1.0
        examples = load_split(task, clue_sample_dir(task), "test")
        assert len(validate_submission(task, metrics["submission"], examples)) == len(examples)
        assert (root / "clue" / task / "metrics.json").is_file()


def test_data_parallel_on_two_host_devices_equals_one_device(workspace):
    root, release = workspace
    output = root / "dp.json"
    run_worker("data_parallel", "jax", extra_env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
               release=str(release), inputs=str(root / "batch.npz"), steps=3, output=str(output))
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["devices"] == 2
    assert report["max_diff"] <= 1e-5, report
    assert report["single_loss"][-1] < report["single_loss"][0]  # the weights did move


def test_export_of_a_fine_tuned_classifier_reloads_with_equal_outputs(workspace):
    root, release = workspace
    output = root / "export.json"
    run_worker("export", "tensorflow", release=str(release), inputs=str(root / "batch.npz"),
               saved_model=str(root / "saved_model"), output=str(output))
    report = json.loads(output.read_text(encoding="utf-8"))
    assert "saved_model.pb" in report["files"] and report["shape"] == [8, 3]
    assert report["max_diff"] <= 1e-4, report
