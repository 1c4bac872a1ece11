"""The Keras 3 GAU-alpha (gau_alpha.keras3) against our tf-keras ``GAU_alpha``, on every backend.

One release directory (random tiny weights in the release's exact TF1 names) is loaded by the
tf-keras model in this process and by ``GAUAlphaBackbone.from_preset`` in one child process
per backend (KERAS_BACKEND=jax / tensorflow / torch); last hidden states and MLM
probabilities on a padded batch (lengths 3, 15, 64 and 512) must agree within 1e-5.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import CLEAN_ENV, TINY_CONFIG, padded_batch, write_release_dir

import gau_alpha

WORKER = Path(__file__).with_name("keras3_worker.py")
BACKENDS = ("jax", "tensorflow", "torch")
LENGTHS = (3, 15, 64, 512)


def run_worker(job: str, backend: str, timeout: float = 300, extra_env=None, **args) -> subprocess.CompletedProcess:
    env = dict(CLEAN_ENV, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **(extra_env or {}))
    argument = json.dumps(args)
    if len(argument) > 10000:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
            handle.write(argument)
        argument = "@" + handle.name
    try:
        result = subprocess.run([sys.executable, str(WORKER), job, argument], env=env, capture_output=True,
                                text=True, timeout=timeout)
    finally:
        if argument.startswith("@"):
            os.unlink(argument[1:])
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The release directory, the padded batch and the tf-keras model's outputs."""
    directory = tmp_path_factory.mktemp("keras3_parity")
    release = write_release_dir(directory / "release", TINY_CONFIG, seed=3)
    tokens, segments = padded_batch(LENGTHS, TINY_CONFIG["vocab_size"], seed=5)
    np.savez(directory / "inputs.npz", token_ids=tokens, segment_ids=segments)
    model = gau_alpha.build_transformer_model(str(release / "bert_config.json"), str(release / "bert_model.ckpt"),
                                              model="gau_alpha", with_mlm=True)
    probabilities = model.predict([tokens, segments], verbose=0)
    encoder = gau_alpha.build_transformer_model(str(release / "bert_config.json"), str(release / "bert_model.ckpt"),
                                                model="gau_alpha")
    hidden = encoder.predict([tokens, segments], verbose=0)
    return {"dir": directory, "release": release, "tokens": tokens, "hidden": hidden, "probabilities": probabilities}


def _softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    e = np.exp(shifted.astype(np.float64))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hidden_states_and_mlm_match_tf_keras(reference, backend):
    output = reference["dir"] / ("%s.npz" % backend)
    run_worker("outputs", backend, preset=str(reference["release"]), inputs=str(reference["dir"] / "inputs.npz"),
               output=str(output))
    got = np.load(output)
    assert str(got["backend"]) == backend
    real = reference["tokens"] != 0
    # every real position of every row (padded positions carry no meaning in either model)
    hidden_diff = np.abs(got["hidden"] - reference["hidden"])[real].max()
    assert hidden_diff <= 1e-5, hidden_diff
    probability_diff = np.abs(_softmax(got["logits"]) - reference["probabilities"])[real].max()
    assert probability_diff <= 1e-5, probability_diff
    # the hidden states are not trivially equal (e.g. all zeros): rows differ from each other
    assert np.abs(got["hidden"][0, 1] - got["hidden"][1, 1]).max() > 1e-2
