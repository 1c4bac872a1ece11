#!/usr/bin/env bash
# Create .venv-port/: a separate Python 3.11 environment with the PyTorch port of GAU-alpha
# (PyPI "gau-alpha" 0.0.3, import name `gau_alpha`, the same as this project's package, so it
# can never share a venv with it). The tests run it as a subprocess (tests/port_runner.py) to
# check that our `torch` conversion output loads in the port and gives the same hidden states.
#
# Usage:
#   bash scripts/install_port.sh            # install exactly requirements/port-lock.txt
#                                           # (kept as is when it already matches the lock)
#   bash scripts/install_port.sh --force    # rebuild even if it matches
#   bash scripts/install_port.sh --relock   # install the top-level pins below, then rewrite
#                                           # requirements/port-lock.txt with `pip freeze`
# Environment: PORT_PYTHON (default python3.11), PORT_VENV (default .venv-port).
#
# torch is pinned to 2.13.0 on purpose: its CPU wheel lies on the build machines' disk and
# pip takes it from there; any other version would make pip download a multi-GB CUDA build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT_PYTHON="${PORT_PYTHON:-python3.11}"
PORT_VENV="${PORT_VENV:-.venv-port}"
LOCK="requirements/port-lock.txt"
# The top-level pins; everything else comes from the lock file.
TOP_LEVEL=(
  "torch==2.13.0"
  "transformers==4.46.3"
  "gau-alpha==0.0.3"
  "safetensors==0.8.0"
  "numpy==1.26.4"
)

relock=0
force=0
case "${1:-}" in
  --relock) relock=1 ;;
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--relock|--force]" >&2; exit 2 ;;
esac
if [[ $relock -eq 0 && ! -f "$LOCK" ]]; then
  echo "error: $LOCK is missing; run '$0 --relock' to create it" >&2
  exit 1
fi

check_venv() {
  # -I (isolated): neither the working directory nor PYTHONPATH is on sys.path, so
  # `gau_alpha` below is the port's package, never this repository's.
  "$PORT_VENV/bin/python" -I - <<'PY'
import torch, transformers, gau_alpha  # noqa: F401  (the port's gau_alpha)
from gau_alpha import GAUAlphaModel  # noqa: F401
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
assert transformers.__version__ == "4.46.3", transformers.__version__
print("port venv ok: torch %s, transformers %s" % (torch.__version__, transformers.__version__))
PY
}

start=$(date +%s)
if [[ $relock -eq 0 && $force -eq 0 && -x "$PORT_VENV/bin/python" ]]; then
  installed=$("$PORT_VENV/bin/python" -m pip --disable-pip-version-check freeze --all --exclude pip --exclude-editable 2>/dev/null || true)
  if [[ "$installed" == "$(grep -v '^#' "$LOCK")" ]]; then
    echo "$PORT_VENV already matches $LOCK (use --force to rebuild)"
    check_venv
    exit 0
  fi
fi
"$PORT_PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit("error: the port environment needs Python 3.11 (the local torch 2.13.0 wheel is cp311), got %s" % sys.version.split()[0])
PY
rm -rf "$PORT_VENV"
# A failed install leaves no half-built venv behind (the tests would take it for a real one).
trap 'echo "install failed; removing $PORT_VENV" >&2; rm -rf "$PORT_VENV"' ERR
"$PORT_PYTHON" -m venv "$PORT_VENV"
PIP=("$PORT_VENV/bin/python" -m pip --disable-pip-version-check --no-input)
if [[ $relock -eq 1 ]]; then
  "${PIP[@]}" install "${TOP_LEVEL[@]}"
  {
    echo "# Exact pins of .venv-port (the PyTorch port of GAU-alpha), written by"
    echo "# 'bash scripts/install_port.sh --relock' (pip freeze). Python 3.11."
    "${PIP[@]}" freeze --all --exclude pip --exclude-editable
  } > "$LOCK.tmp"
  mv "$LOCK.tmp" "$LOCK"
else
  # Every package is pinned in the lock, so --no-deps installs exactly that set.
  "${PIP[@]}" install --no-deps -r "$LOCK"
  "${PIP[@]}" check
fi
check_venv
trap - ERR
echo "installed $PORT_VENV in $(( $(date +%s) - start )) s"
