#!/usr/bin/env bash
# Sets up .venv (see setup.sh) and runs the main job: `srm-bench demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/srm-bench demo "$@"
