#!/usr/bin/env bash
# Install the project into a virtual environment (default .venv/) from pinned versions.
#
# bert4keras 0.11.5 declares keras<=2.3.1, which no TensorFlow that runs on Python 3.10+
# accepts, so pip cannot resolve it together with tensorflow. It is installed here with
# --no-deps after the pinned stack (tensorflow + tf-keras, requirements/lock.txt); the
# project itself (gau_alpha.compat) adapts bert4keras to that stack. requirements/lock-extras.txt
# adds the optional parts the tests use: the Keras 3 backends (jax, torch CPU, keras-hub), ONNX
# (onnx, onnxruntime, tf2onnx) and the pre-training segmenter (rjieba).
#
# Environment: GAU_ALPHA_VENV (default .venv), PYTHON (default python3; 3.10-3.12),
# GAU_ALPHA_CORE_ONLY=1 (skip lock-extras.txt: what the main job needs is in lock.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${GAU_ALPHA_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
PIP_FLAGS=(-q --disable-pip-version-check --no-input)

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
# Filter pip's notices about local mirrors that do not exist on this machine.
pip_install() { "$VENV/bin/python" -m pip install "${PIP_FLAGS[@]}" "$@" 2> >(grep -v "^WARNING: Location" >&2); }
if [[ "${GAU_ALPHA_CORE_ONLY:-0}" == "1" ]]; then
  pip_install -r requirements/lock.txt
else
  pip_install -r requirements/lock.txt -r requirements/lock-extras.txt
fi
pip_install --no-deps bert4keras==0.11.5
pip_install --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import gau_alpha; print('gau_alpha', gau_alpha.__version__, 'installed in $VENV')"
