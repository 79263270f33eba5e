#!/usr/bin/env bash
# Installs what the tests need, then runs lint, types and every test (CI runs this): two
# processes share the cores (tests/conftest.py gives each its share of MATCHER_THREADS).
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
# Every test: on two processes, a test file each at a time, then the tests marked serial (they
# measure the machine) alone. Exit status 5 is "nothing selected", e.g. when "$@" picks tests of
# one kind only.
parallel=0 serial=0
.venv/bin/pytest -q -n 2 --dist loadfile -m "not serial" "$@" || parallel=$?
.venv/bin/pytest -q -m serial "$@" || serial=$?
if [ "$parallel" = 5 ]; then exit "$serial"; fi
if [ "$serial" = 5 ] || [ "$serial" = 0 ]; then exit "$parallel"; fi
exit "$serial"
