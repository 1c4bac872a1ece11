"""The package as users meet it: light imports, the quiet command line, bert4keras adapted on
import, and a wheel that works outside the clone. Each check runs in a fresh interpreter."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# a clean environment: nothing set by this test session's imports leaks into the child
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "GAU_ALPHA"))}

PURE_MODULES = [
    "gau_alpha", "gau_alpha.cli", "gau_alpha.clue", "gau_alpha.clue.loaders", "gau_alpha.clue.metrics",
    "gau_alpha.clue.submission", "gau_alpha.clue.tasks", "gau_alpha.clue.tasks.registry",
    "gau_alpha.clue.pipeline", "gau_alpha.clue.runner", "gau_alpha.clean", "gau_alpha.locking", "gau_alpha.tokenization", "gau_alpha.spec", "gau_alpha.model_dir",
    "gau_alpha.resources", "gau_alpha.errors", "gau_alpha.atomic", "gau_alpha.release",
    "gau_alpha.release.manifest", "gau_alpha.release.verify", "gau_alpha.release.download",
    "gau_alpha.pretrain.cli", "gau_alpha.pretrain.corpus", "gau_alpha.pretrain.masking",
    "gau_alpha.pretrain.packing", "gau_alpha.pretrain.schedule", "gau_alpha.pretrain.settings",
    "gau_alpha.pretrain.run", "gau_alpha.deploy", "gau_alpha.deploy.finetuned", "gau_alpha.deploy.inputs",
    "gau_alpha.deploy.runtime", "gau_alpha.deploy.export", "gau_alpha.deploy.predict",
]


def run_python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=300)


def test_pure_python_parts_import_no_tensorflow():
    result = run_python("""
        import importlib, sys
        for name in %r:
            importlib.import_module(name)
        heavy = sorted(m for m in ("tensorflow", "bert4keras", "tf_keras", "keras") if m in sys.modules)
        print("loaded:", heavy)
    """ % PURE_MODULES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"


def test_cli_help_imports_no_tensorflow_and_lists_every_command():
    result = run_python("""
        import sys
        from gau_alpha.cli import COMMANDS, main
        try:
            main(["--help"])
        except SystemExit as exit:
            assert exit.code == 0, exit.code
        print("tensorflow loaded:", "tensorflow" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("tensorflow loaded: False")
    for command in ("clue", "convert", "verify", "download", "fill-mask", "bench", "predict", "export", "pretrain"):
        assert command in result.stdout


def test_import_gau_alpha_then_bert4keras_adapts_bert4keras():
    """The README's contract: ``import gau_alpha`` first, then bert4keras as usual."""
    result = run_python("""
        import gau_alpha
        from bert4keras.models import build_transformer_model
        from bert4keras.optimizers import AdaFactor
        import tensorflow as tf
        from gau_alpha import compat
        assert compat._applied
        assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__
        assert issubclass(AdaFactor, tf.keras.optimizers.legacy.Optimizer)
        model = build_transformer_model(str(gau_alpha.RELEASE_CONFIG), None, model=gau_alpha.GAU_alpha,
                                        num_hidden_layers=1, hidden_size=32, intermediate_size=64,
                                        attention_key_size=16)
        print(model.output.shape)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "(None, None, 32)"


def test_model_names_apply_compat_even_when_bert4keras_came_first():
    result = run_python("""
        import os
        os.environ["TF_KERAS"] = "1"; os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import bert4keras.models
        import gau_alpha
        from gau_alpha import compat
        assert not compat._applied
        assert gau_alpha.GAU_alpha.__name__ == "GAU_alpha"
        assert compat._applied
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_cli_error_is_one_quiet_line(tmp_path):
    """An expected failure: one line on stderr, exit 2, no traceback, no TensorFlow chatter."""
    result = subprocess.run([str(VENV_BIN / "gau-alpha"), "fill-mask", "--model-dir", str(tmp_path / "none"),
                             "中[MASK]"], env=CLEAN_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gau-alpha fill-mask: error: model directory %s does not exist or is not a directory" % (tmp_path / "none")
    ]
    assert result.stdout == ""


def test_bench_outside_a_checkout_says_where_it_runs(tmp_path):
    result = subprocess.run([str(VENV_BIN / "gau-alpha"), "bench", "--help"], cwd=tmp_path, env=CLEAN_ENV,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "runs from a source checkout" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.wheel
def test_wheel_works_outside_the_clone(tmp_path):
    """scripts/check_wheel.sh: build, install into a fresh venv with the locked stack, and run
    the main job, load_tokenizer(), verify and download --help from outside the clone."""
    if os.environ.get("GAU_ALPHA_SKIP_WHEEL") == "1":
        pytest.skip("GAU_ALPHA_SKIP_WHEEL=1")
    work = tmp_path / "wheel-check"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "check_wheel.sh"), str(work)], env=CLEAN_ENV,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "wheel check passed" in result.stdout
