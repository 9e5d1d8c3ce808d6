#!/usr/bin/env bash
# Builds the page into web/dist/: the library compiled to wasm32 (WebGPU backend), its
# wasm-bindgen glue, index.html and app.js. Installs what it needs and lacks: the
# wasm32-unknown-unknown target and wasm-bindgen-cli at the version in web/Cargo.lock (the
# CLI and the crate must agree exactly). Serve web/dist/ over http (see the README).
set -euo pipefail
cd "$(dirname "$0")"
started=$SECONDS

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$version" ]; then
  echo "web/build.sh: no wasm-bindgen version in web/Cargo.lock" >&2
  exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
  # Without --locked: with it, a pinned transitive dependency newer than the registry's
  # index can fail to resolve.
  cargo install wasm-bindgen-cli --version "$version"
fi

# The root's target folder: wasm32 objects under their own triple, host build tools shared.
cargo build --locked --release --target wasm32-unknown-unknown --target-dir ../target
wasm=../target/wasm32-unknown-unknown/release/resnet_wgpu_web.wasm

rm -rf dist
mkdir -p dist
wasm-bindgen --target web --no-typescript --out-dir dist "$wasm"
cp index.html app.js dist/
echo "web/dist: $(du -b dist/resnet_wgpu_web_bg.wasm | cut -f1) bytes of wasm," \
  "built in $((SECONDS - started)) s"
