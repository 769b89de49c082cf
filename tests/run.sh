#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs and starts Docker, builds the
# Python 3.14/3.13 target images (once; reused while the recipe is unchanged), creates .venv,
# then runs pytest. Extra arguments go to pytest (e.g. `bash tests/run.sh -k attach`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tests/bed/setup.sh
export WAND_REQUIRE_DOCKER=1  # on the test bed a missing engine is a failure, not a skip
exec .venv/bin/python -m pytest -m "not soak and not kube_matrix and not layout_matrix" -p no:cacheprovider "$@"
