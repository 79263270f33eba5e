#!/usr/bin/env bash
# Creates ./.venv with Python 3.11 and installs matcher into it (idempotent).
#   --dev  also installs the test tools and the reference oracles (dlib-bin, OpenCV).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$python" -m venv .venv
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
pip=(.venv/bin/pip install --quiet --disable-pip-version-check)
# torch first and pinned: these exact wheels are on the build machines' disk; any other version
# would pull several GB.
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" -e ".${extra}"
