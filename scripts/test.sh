#!/usr/bin/env bash
# Install everything (pinned) and run the whole test suite: bash scripts/test.sh [pytest args]
#
# The PyTorch port's environment (.venv-port, for the cross-framework conversion tests) is
# installed too; set GAU_ALPHA_SKIP_PORT=1 to skip it (those tests then skip, saying why).
# The suite runs on GAU_ALPHA_TEST_WORKERS processes (default: the number of cores, at most 4;
# 0 runs it in this process). One of its tests builds the wheel and uses it from outside the
# clone (scripts/check_wheel.sh); GAU_ALPHA_SKIP_WHEEL=1 skips that one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
if [[ "${GAU_ALPHA_SKIP_PORT:-0}" != "1" ]]; then
  bash scripts/install_port.sh
fi
VENV="${GAU_ALPHA_VENV:-.venv}"
cores="$(nproc 2>/dev/null || echo 2)"
WORKERS="${GAU_ALPHA_TEST_WORKERS:-$(( cores > 4 ? 4 : cores ))}"
PARALLEL=()
if [[ "$WORKERS" != "0" ]]; then
  # whole files per worker: module-scoped fixtures (tiny models, CLUE runs) are built once
  PARALLEL=(-n "$WORKERS" --dist loadfile)
fi
exec "$VENV/bin/python" -m pytest "${PARALLEL[@]}" "$@"
