#!/usr/bin/env bash
# The main job: install (pinned) and fine-tune GAU-alpha on a CLUE task.
#   bash scripts/finetune.sh                      # small random GAU-alpha, bundled tnews sample
#   bash scripts/finetune.sh iflytek --model-dir /path/to/chinese_GAU-alpha-char_L-24_H-768 \
#        --data-dir /path/to/iflytek_public       # the real job
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GAU_ALPHA_CORE_ONLY="${GAU_ALPHA_CORE_ONLY:-1}" bash scripts/install.sh >/dev/null
VENV="${GAU_ALPHA_VENV:-.venv}"
exec "$VENV/bin/gau-alpha" clue "$@"
