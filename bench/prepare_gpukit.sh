#!/usr/bin/env bash
# Prepares .gpukit/ (Vulkan loader debs, the PyTorch baseline, our release binary) for a run
# on an NVIDIA machine that has a driver and PyTorch but no network and no Rust — see
# ../shared/gpu-kit/README.md. Run here, from the repository root; then on the GPU machine:
#   bash bench/gpu_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
kit=../shared/gpu-kit
grep -qx '/.gpukit/' .git/info/exclude 2>/dev/null || echo /.gpukit/ >> .git/info/exclude
mkdir -p .gpukit/gl
if ! ls .gpukit/gl/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=$(mktemp -d) && mkdir -p "$lists/partial"
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  apt-get $o update -qq && (cd .gpukit/gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
cp "$kit/torch_anchor.py" "$kit/run.sh" .gpukit/
cargo build --release
cp target/release/resnet .gpukit/
cp bench/gpu_compare.sh .gpukit/
ls -la .gpukit
