#!/usr/bin/env bash
# Installs what the tests need, then runs lint, types and every test (CI runs this).
#   --fast  the inner loop, under two minutes on 2 cores: no install while .venv is current,
#           no lint or types, and only the tests not marked slow, postgres, browser or
#           subprocess (markers set in tests/conftest.py), on two processes. Further
#           arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The venv is current when it was set up from these very files: their digest, kept in .venv.
stamp=.venv/.setup-dev-digest
digest=$(cat pyproject.toml scripts/setup.sh | sha256sum)
setup() {
    bash scripts/setup.sh --dev
    echo "$digest" >"$stamp"
}
if [ "${1:-}" = "--fast" ]; then
    shift
    [ -x .venv/bin/pytest ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ] || setup
    # Two worker processes, a test file each at a time (module fixtures are built once);
    # a later -n in "$@" wins.
    exec .venv/bin/pytest -q -n 2 --dist loadfile \
        -m "not slow and not postgres and not browser and not subprocess" "$@"
fi
setup
.venv/bin/ruff check matcher tests scripts
.venv/bin/mypy matcher
.venv/bin/pytest -q "$@"
