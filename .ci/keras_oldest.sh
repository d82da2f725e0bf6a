#!/usr/bin/env bash
# The Keras tests against the oldest Keras release pyproject.toml declares (the keras
# extra's lower bound), in a second environment that shares everything else with the
# test environment: only keras itself is installed there, so this takes seconds.
#
#   .ci/keras_oldest.sh [PYTHON]
#
# PYTHON: the test environment's interpreter (default .venv/bin/python, as .ci/run makes
# it). The second environment goes to $KERAS_OLDEST_ENV (default .venv/keras-oldest).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-.venv/bin/python}
shift $(( $# > 0 ? 1 : 0 ))
oldest=$(sed -n 's/^keras = \["keras>=\([0-9.]*\)"\]$/\1/p' pyproject.toml)
if [ -z "$oldest" ]; then
  echo "could not read the keras extra's lower bound from pyproject.toml" >&2
  exit 1
fi
env=${KERAS_OLDEST_ENV:-.venv/keras-oldest}
if [ ! -x "$env/bin/python" ]; then
  "$("$base" -c 'import sys; print(sys.base_prefix)')/bin/python3" -m venv "$env"
fi
# the test environment's packages, after this environment's own (so its keras wins)
site=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$base" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/zz_test_env.pth"
"$env/bin/python" -m pip install -q --no-deps "keras==$oldest"
"$env/bin/python" -c "
from importlib.metadata import version
from packaging.version import Version
assert Version(version('keras')) == Version('$oldest'), version('keras')"
echo "+ keras $oldest: tests/test_keras.py"
PYTHONPATH=$PWD KERAS_BACKEND=jax "$env/bin/python" -m pytest -q -p no:cacheprovider tests/test_keras.py "$@"
