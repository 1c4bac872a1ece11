#!/usr/bin/env bash
# Build the wheel from this checkout, install it into a fresh virtual environment with the
# locked stack, and use it from a directory outside the clone:
#   - the main job: gau-alpha clue tnews --epochs 1 --max-steps-per-epoch 2 (bundled sample)
#   - load_tokenizer() with the bundled release vocab
#   - gau-alpha verify (finds the bundled manifest) and gau-alpha download --help
#
# Usage: bash scripts/check_wheel.sh [WORK_DIR]   (default: a new temporary directory)
# Environment: PYTHON (default python3). Exits non-zero on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
case "$WORK/" in "$ROOT"/*) echo "error: WORK_DIR must be outside the clone" >&2; exit 2 ;; esac
PIP_FLAGS=(-q --disable-pip-version-check --no-input)
pip_install() { "$WORK/venv/bin/python" -m pip install "${PIP_FLAGS[@]}" "$@" 2> >(grep -v "^WARNING: Location" >&2); }

echo "== building the wheel from a clean copy of the sources"
mkdir -p "$WORK/src" "$WORK/dist"
# a copy without build outputs, so nothing stale from an earlier build gets into the wheel
tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./.venv-port --exclude=./build \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./runs -cf - . | tar -C "$WORK/src" -xf -
"$PYTHON" -m venv "$WORK/venv"
pip_install -r "$ROOT/requirements/lock.txt"
"$WORK/venv/bin/python" -m pip wheel "${PIP_FLAGS[@]}" --no-deps --no-build-isolation -w "$WORK/dist" "$WORK/src" \
    2> >(grep -v "^WARNING: Location" >&2)
WHEEL="$(ls "$WORK"/dist/gau_alpha_keras-*.whl)"
echo "   $(basename "$WHEEL")"

echo "== installing it into a fresh venv with the locked stack"
pip_install --no-deps bert4keras==0.11.5
pip_install --no-deps "$WHEEL"

echo "== using it from $WORK/elsewhere (outside the clone)"
mkdir -p "$WORK/elsewhere"
cd "$WORK/elsewhere"
BIN="$WORK/venv/bin"
"$BIN/python" -I - <<'PY'
import sys
import gau_alpha, gau_alpha.cli, gau_alpha.clue
assert "tensorflow" not in sys.modules, "import gau_alpha loaded tensorflow"
assert "site-packages" in gau_alpha.__file__, gau_alpha.__file__
from gau_alpha.tokenization import load_tokenizer
tokenizer = load_tokenizer()
ids, segments = tokenizer.encode("今天天气不错")
assert ids[0] == tokenizer.token_to_id("[CLS]") and ids[-1] == tokenizer.token_to_id("[SEP]"), ids
assert tokenizer.token_to_id("[UNK]") not in ids, ids
print("   load_tokenizer(): ok,", len(ids), "ids from", gau_alpha.RELEASE_VOCAB)
PY
"$BIN/gau-alpha" --help >/dev/null
"$BIN/gau-alpha" download --help >/dev/null
echo "   gau-alpha --help, download --help: ok"
"$BIN/gau-alpha" clue tnews --epochs 1 --max-steps-per-epoch 2 --output-dir run --no-progress
for file in run/metrics.json run/submission/tnews11_predict.json run/best/model.npz; do
  [[ -s "$file" ]] || { echo "error: the main job did not write $file" >&2; exit 1; }
done
echo "   gau-alpha clue tnews: ok ($(wc -l < run/submission/tnews11_predict.json) test predictions)"
# verify reads the bundled manifest; the tiny random model differs from the release in
# every shape, so verify must fail (exit 1) naming shapes, not a missing manifest
set +e
"$BIN/gau-alpha" verify run/random-model > verify.out 2>&1
status=$?
set -e
if [[ $status -ne 1 ]] || ! grep -q "shape" verify.out || grep -qi "manifest.*does not exist" verify.out; then
  echo "error: gau-alpha verify (exit $status) did not check against the bundled manifest:" >&2
  cat verify.out >&2
  exit 1
fi
echo "   gau-alpha verify: ok (found $(grep -c shape verify.out) shape differences, exit 1 as expected)"
echo "wheel check passed"
