#!/usr/bin/env bash
# The demo on a fresh Debian machine: sets up Docker and a local Python 3.14 image, then runs
# `kubectl-wand demo` on an unprepared container (no cluster needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/bed/setup.sh >&2
exec .venv/bin/kubectl-wand demo --image wand-bed/py314:latest "$@"
