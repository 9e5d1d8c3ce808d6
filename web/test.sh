#!/usr/bin/env bash
# The browser test: headless Chromium (WebGPU on SwiftShader) loads web/dist/ from a local
# server, classifies every image in samples/ and compares with the native CLI; then loads
# other weights through the page and does it again (see test.mjs). Fails (never skips) when WebGPU is missing
# or any check fails. Run `bash web/build.sh` first. Installs what it lacks: Debian's
# chromium and puppeteer-core (into web/node_modules).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f dist/resnet_wgpu_web_bg.wasm ]; then
  echo "web/test.sh: web/dist is not built; run bash web/build.sh first" >&2
  exit 1
fi
if ! command -v chromium >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends chromium
fi
if [ ! -d node_modules/puppeteer-core ]; then
  npm install --no-audit --no-fund
fi

# test.mjs runs the native CLI for its references (`cargo run`: the debug build the root's
# tests make); build it here so its time is not counted as the page's.
(cd .. && cargo build --quiet --bin resnet)
node test.mjs
