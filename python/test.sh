#!/usr/bin/env bash
# The Python package and the Ray examples, from scratch: a virtual environment with pinned
# tools, `pip install ./python` (a release build of the extension), the CLI to compare with,
# then the pytest suite on a local Ray with 2 CPUs. Any failure or skipped test fails it.
#
#   bash python/test.sh            # venv in python/.venv (RESNET_PY_VENV moves it)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RESNET_PY_VENV:-python/.venv}

# Versions this was tested with (Python 3.11, December 2026).
pins=(maturin==1.16.0 numpy==2.4.6 pytest==9.2.0 pillow==13.0.0 "ray[data,serve]==2.60.0")

if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv"; then
        # Debian and Ubuntu ship venv (ensurepip) separately.
        rm -rf "$venv"
        as_root=$([ "$(id -u)" = 0 ] || echo sudo)
        $as_root apt-get update -q && $as_root apt-get install -y -q python3-venv
        python3 -m venv "$venv"
    fi
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "${pins[@]}"
# --force-reinstall rebuilds it when this version is installed already; --no-deps keeps numpy
# at its pin above.
time "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps ./python

# The tests compare the package's JSON with the CLI's.
cargo build --bin resnet
export RESNET_CLI=${CARGO_TARGET_DIR:-$PWD/target}/debug/resnet
export RAY_USAGE_STATS_ENABLED=0
unset RAY_ADDRESS
"$venv/bin/python" -m pytest python/tests -v -p no:cacheprovider "$@"
