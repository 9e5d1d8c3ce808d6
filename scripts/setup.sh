#!/usr/bin/env bash
# Installs what building and testing resnet-wgpu needs on a fresh Debian bookworm machine:
# FFmpeg (video decoding), and
# Mesa 25's lavapipe (software Vulkan) from bookworm-backports — about 4x faster compute than
# bookworm's Mesa 22.3 — and the Vulkan loader, and
# Mesa 25's llvmpipe through EGL for wgpu's GL backend (`--backend gl`), from the same release so
# the two Mesa drivers share one libgallium. Idempotent; needs root (or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
fi
# Mesa's packages from backports (each must be 25.x), and the loaders they plug into.
MESA=(mesa-vulkan-drivers libegl-mesa0 libgl1-mesa-dri)
LOADERS=(libvulkan1 libegl1)
mesa_current() {
  for p in "${MESA[@]}"; do
    dpkg-query -W -f='${Version}' "$p" 2>/dev/null | grep -q '^25' || return 1
  done
  for p in "${LOADERS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || return 1
  done
}
if ! mesa_current; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports "${MESA[@]}" "${LOADERS[@]}" >/dev/null
fi
echo "lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
echo "llvmpipe (GL): libegl-mesa0 $(dpkg-query -W -f='${Version}' libegl-mesa0)," \
  "libgl1-mesa-dri $(dpkg-query -W -f='${Version}' libgl1-mesa-dri)"

# FFmpeg decodes videos for `resnet classify` (and the decode tests).
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
echo "ffmpeg: $(ffmpeg -version | head -n 1)"
