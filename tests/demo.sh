#!/usr/bin/env bash
# The Kubernetes demo on a fresh Debian machine: the real kubectl and `kubectl wand` against a
# LOCAL EMULATION of the Kubernetes API (tests/kube/apiserver; pods are Docker containers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/bed/setup.sh >&2
exec .venv/bin/python tests/kube/demo.py "$@"
