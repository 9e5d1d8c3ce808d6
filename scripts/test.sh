#!/usr/bin/env bash
# Every test suite, as CI runs it (after scripts/setup.sh): the Rust suite (GPU kernels on
# whatever adapter is present, lavapipe included), then the browser test (the library built
# for wasm32, headless Chromium on SwiftShader), then the Python package and its Ray jobs.
# Each part installs the tools it needs and fails, never skips, when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo; echo "==== $1 ($(date -u +%H:%M:%S))"; }

step "cargo test"
cargo test 2>&1

step "browser: bash web/build.sh && bash web/test.sh"
bash web/build.sh
bash web/test.sh

step "python: bash python/test.sh"
bash python/test.sh
