#!/usr/bin/env bash
# Installs what the tests need, then runs lint, types and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check matcher tests scripts
.venv/bin/mypy matcher
.venv/bin/pytest -q "$@"
