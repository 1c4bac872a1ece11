#!/usr/bin/env bash
# Install the project into a virtual environment (default .venv/) from pinned versions.
#
# bert4keras 0.11.5 declares keras<=2.3.1, which no TensorFlow that runs on Python 3.10+
# accepts, so pip cannot resolve it together with tensorflow. It is installed here with
# --no-deps after the pinned stack (tensorflow + tf-keras, requirements/lock.txt); the
# project itself (gau_alpha.compat) adapts bert4keras to that stack.
#
# Environment: GAU_ALPHA_VENV (default .venv), PYTHON (default python3; 3.10-3.12).
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
pip_install -r requirements/lock.txt
pip_install --no-deps bert4keras==0.11.5
pip_install --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import gau_alpha; print('gau_alpha', gau_alpha.__version__, 'installed in $VENV')"
