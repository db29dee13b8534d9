#!/usr/bin/env bash
# Sets up .venv (see setup.sh) and runs the whole test suite; exits non-zero when a test fails.
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
exec .venv/bin/python -m pytest "$@"
