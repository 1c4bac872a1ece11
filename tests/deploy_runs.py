"""Fine-tuned runs shared by the deploy tests (``tests/test_deploy_*.py``), made once per session.

Each run fine-tunes the project's tiny GAU-alpha (``TINY_CONFIG``: 2 layers, hidden 128, random
weights in the release layout) for a few steps on a bundled CLUE sample through the pipeline
(what ``gau-alpha clue`` runs). The tnews run's test file is the sample's 200 dev sentences
rewritten in the test format, plus the real test record and one sentence far longer than
``maxlen``, so its submission covers several length-sorted batches and a truncated record.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest

import gau_alpha  # noqa: F401  (tf-keras + bert4keras set-up)
from gau_alpha.clue.pipeline import RunOptions, RunResult, run_clue
from gau_alpha.clue.tasks import get_spec
from gau_alpha.resources import CLUE_SAMPLES_DIR
from helpers import TINY_CONFIG

MAXLEN = 64
LONG_SENTENCE = "中国女排在世界杯上以三比零战胜了美国队，" * 6  # ~120 characters: cut to MAXLEN tokens


def tnews_test_records():
    """The sample's test record, its dev sentences as test records (ids 1..200) and a long one."""
    folder = CLUE_SAMPLES_DIR / "tnews"
    records = [json.loads(line) for line in (folder / "test.json").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    for line in (folder / "dev.json").read_text(encoding="utf-8").splitlines():
        if line.strip():
            dev = json.loads(line)
            records.append({"id": len(records), "sentence": dev["sentence"], "keywords": dev["keywords"]})
    records.append({"id": len(records), "sentence": LONG_SENTENCE, "keywords": ""})
    return records


def _data_dir(task: str, root: Path) -> Path:
    data = shutil.copytree(CLUE_SAMPLES_DIR / task, root / task)
    if task == "tnews":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tnews_test_records())
        (data / "test.json").write_text(text, encoding="utf-8")
    if task == "cmrc2018":  # a shorter dev split (its evaluation dominates the run otherwise)
        dev = json.loads((data / "dev.json").read_text(encoding="utf-8"))
        dev["data"] = dev["data"][:1]
        (data / "dev.json").write_text(json.dumps(dev, ensure_ascii=False), encoding="utf-8")
    return data


def run_options(task: str, model_dir: Path, data_dir: Path, output_dir: Path, **changes) -> RunOptions:
    options = dict(task=task, data_dir=data_dir, output_dir=output_dir, epochs=1, batch_size=8, maxlen=MAXLEN,
                   learning_rate=2e-2, grad_accum_steps=1, doc_stride=32, max_answer_len=30, seed=3,
                   model_dir=model_dir, max_steps_per_epoch=4, eval_batch_size=32, progress=False)
    options.update(changes)
    return RunOptions(**options)


class Runs:
    """Fine-tuned runs by task, made on first use."""

    def __init__(self, root: Path) -> None:
        from gau_alpha.model_dir import create_random_model_dir

        self.root = root
        self.model_dir = create_random_model_dir(root / "model", TINY_CONFIG, seed=7).directory
        self.results: Dict[str, RunResult] = {}

    def __call__(self, task: str) -> RunResult:
        if task not in self.results:
            data = _data_dir(task, self.root / "data")
            # tnews: one whole epoch (25 steps), so the model's labels are decided by more than
            # rounding (a few steps leave logit margins of ~0.03, which int8 flips)
            # (the other runs predict without XLA: it saves the tests its compilations; tnews keeps the
            # default, so the byte-for-byte check covers the XLA prediction path)
            changes = dict(max_steps_per_epoch=None, learning_rate=1e-2) if task == "tnews" else dict(xla=False)
            self.results[task] = run_clue(run_options(task, self.model_dir, data, self.root / "runs" / task,
                                                      grad_accum_steps=get_spec(task).defaults.grad_accum_steps,
                                                      **changes))
        return self.results[task]


# Each test module that imports these fixtures gets its own copy of their definitions, so the
# values are kept here: one set of runs per session, whichever modules run.
_SHARED: Dict[str, Any] = {}


@pytest.fixture(scope="session")
def finetuned_runs(tmp_path_factory) -> Runs:
    if "runs" not in _SHARED:
        _SHARED["runs"] = Runs(tmp_path_factory.mktemp("deploy"))
    return _SHARED["runs"]


@pytest.fixture(scope="session")
def tnews_model(finetuned_runs):
    """The tnews run's ``best/`` loaded (its Keras model is built on first use, once)."""
    from gau_alpha.deploy.finetuned import load_finetuned

    if "tnews_model" not in _SHARED:
        _SHARED["tnews_model"] = load_finetuned(finetuned_runs("tnews").output_dir)
    return _SHARED["tnews_model"]


@pytest.fixture(scope="session")
def tnews_onnx_export(tnews_model, tmp_path_factory):
    """The tnews run exported to ONNX with an int8 copy: ``(report, export directory)``."""
    from gau_alpha.deploy.export import export_finetuned

    if "onnx" not in _SHARED:
        out = tmp_path_factory.mktemp("exports") / "tnews-onnx"
        _SHARED["onnx"] = export_finetuned(tnews_model, out, "onnx", quantize="int8", say=lambda *a: None), out
    return _SHARED["onnx"]
