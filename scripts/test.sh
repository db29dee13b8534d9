#!/usr/bin/env bash
# Sets up .venv (see setup.sh), lints (ruff), type-checks srm_models (mypy) and runs the whole test
# suite; exits non-zero when any of them fails. Settings for ruff and mypy are in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else
        echo "scripts/test.sh: the browser tests need Debian's chromium: sudo apt-get install chromium" >&2
    fi
fi
.venv/bin/ruff check .
.venv/bin/mypy
# Two pytest processes (pytest-xdist), each with its own local Ray: the end-to-end tests spend much of
# their time waiting on servers and Ray workers, so two at once use the 2 cores better than one;
# worksteal hands an idle worker the other's queued tests (the slow ones cluster by file).
exec .venv/bin/python -m pytest -n "${SRM_BENCH_TEST_WORKERS:-2}" --dist worksteal "$@"
