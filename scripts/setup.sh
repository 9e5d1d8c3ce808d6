#!/usr/bin/env bash
# Installs what building and testing resnet-wgpu needs on a fresh Debian bookworm machine:
# FFmpeg (video decoding), and
# Mesa 25's lavapipe (software Vulkan) from bookworm-backports — about 4x faster compute than
# bookworm's Mesa 22.3 — and the Vulkan loader. Idempotent; needs root (or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
fi
if ! dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^25'; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
fi
echo "lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"

# FFmpeg decodes videos for `resnet classify` (and the decode tests).
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
echo "ffmpeg: $(ffmpeg -version | head -n 1)"
