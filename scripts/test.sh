#!/usr/bin/env bash
# Install everything (pinned) and run the whole test suite: bash scripts/test.sh [pytest args]
#
# The PyTorch port's environment (.venv-port, for the cross-framework conversion tests) is
# installed too; set GAU_ALPHA_SKIP_PORT=1 to skip it (those tests then skip, saying why).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
if [[ "${GAU_ALPHA_SKIP_PORT:-0}" != "1" ]]; then
  bash scripts/install_port.sh
fi
VENV="${GAU_ALPHA_VENV:-.venv}"
exec "$VENV/bin/python" -m pytest "$@"
