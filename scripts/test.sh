#!/usr/bin/env bash
# Sets up .venv (see setup.sh), lints (ruff), type-checks srm_models (mypy) and runs the whole test
# suite; exits non-zero when any of them fails. Settings for ruff and mypy are in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
