#!/usr/bin/env python3
"""Generate the fixtures for src/preprocess.rs's tests (tests/fixtures/preprocess/).

Needs Pillow, numpy, torch and torchvision, e.g.
    /tmp/torchvenv/bin/python scripts/make_preprocess_fixtures.py

Deterministic (seeded). Writes small synthetic images and what torchvision makes of them:

* <name>.<ext>            an input image (PNG of several modes, a JPEG, ...).
* rgb_301x257.v1.npy      the full float32 (3, 224, 224) torchvision V1 tensor, to check the
                          Rust normalisation bit for bit.
* <name>.<case>.png       the 8-bit RGB image torchvision normalises for that case, i.e. the
                          PIL image after Resize + CenterCrop (padding included). A float32
                          tensor is 600 KB, too big to keep one per case; the script asserts that
                          ToTensor + Normalize of this PNG equals torchvision's tensor exactly, so
                          the PNG encodes the expected tensor losslessly.
* <name>.pil.png          PIL's `Image.open(p).convert("RGB")` pixels, for decoder checks
                          (palette, 16-bit, JPEG, CMYK JPEG).
* resize_97x61.<filter>.<W>x<H>.png
                          PIL `Image.resize` of resize_97x61.png, whole image (edges included).
"""
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "preprocess")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
rng = np.random.default_rng(1234)


def synth(w, h, noise=16):
    """Smooth gradients, hard edges, a ring and a noisy patch: exercises rounding everywhere."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / 9.0 + y / 23.0)
    g = 255.0 * x / max(w - 1, 1)
    b = 255.0 * ((x // 37 + y // 29) % 2)  # checkerboard: sharp edges, clipping with bicubic
    img = np.stack([r, g, b], axis=-1)
    ring = ((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) < (min(w, h) * 0.2) ** 2
    img[ring] = 255.0 - img[ring]
    ph, pw = max(h // 6, 1), max(w // 6, 1)
    img[h // 2 : h // 2 + ph, w // 2 : w // 2 + pw] += rng.normal(0, noise, (ph, pw, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def path(name):
    return os.path.join(OUT, name)


def tv(resize, crop, interp=T.InterpolationMode.BILINEAR):
    geo = T.Compose([T.Resize(resize, interpolation=interp), T.CenterCrop(crop)])
    norm = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    return geo, norm


def expected(src, case, resize=256, crop=224, interp=T.InterpolationMode.BILINEAR, npy=False):
    """Run torchvision on `src`, save the pre-normalisation crop as <name>.<case>.png."""
    geo, norm = tv(resize, crop, interp)
    full = T.Compose([geo, norm])
    img = Image.open(path(src)).convert("RGB")
    want = full(img)
    cropped = geo(img)
    assert cropped.mode == "RGB"
    # The PNG is a lossless stand-in for the tensor.
    assert torch.equal(norm(cropped), want), src
    stem = src.rsplit(".", 1)[0]
    cropped.save(path(f"{stem}.{case}.png"), optimize=True)
    if npy:
        np.save(path(f"{stem}.{case}.npy"), want.numpy().astype("<f4"))
    return want


def png16(name, arr, color_type):
    """PIL cannot write 16-bit RGB(A) PNGs, so write them by hand."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    with open(path(name), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def pil_pixels(name):
    stem = name.rsplit(".", 1)[0]
    Image.open(path(name)).convert("RGB").save(path(f"{stem}.pil.png"), optimize=True)


def cmyk_case():
    """A CMYK JPEG (Pillow writes Adobe-inverted CMYK) and PIL's convert("RGB") of it."""
    y, x = np.mgrid[0:24, 0:32]
    c = np.stack([(x * 8) % 256, (y * 10) % 256, ((x + y) * 5) % 256, (x * y) % 200], -1)
    Image.fromarray(c.astype(np.uint8), "CMYK").save(path("cmyk_32x24.jpg"), quality=95)
    pil_pixels("cmyk_32x24.jpg")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(path(f))

    # RGB, odd size, landscape: downscale on both axes, full float tensor kept.
    Image.fromarray(synth(301, 257)).save(path("rgb_301x257.png"), optimize=True)
    expected("rgb_301x257.png", "v1", npy=True)
    expected("rgb_301x257.png", "bicubic", interp=T.InterpolationMode.BICUBIC)
    # Crop taller than the resized image (black padding, odd: 12 above, 13 below) and a width
    # offset of 26.5 that Python rounds half to even.
    expected("rgb_301x257.png", "r199c224x180", resize=199, crop=(224, 180))

    # JPEG, portrait. Decoders may differ, so PIL's decoded pixels are kept too.
    Image.fromarray(synth(200, 311, noise=0)).save(path("photo_200x311.jpg"), quality=90)
    pil_pixels("photo_200x311.jpg")
    expected("photo_200x311.pil.png", "v1")
    # Same picture with 4:4:4 chroma: no chroma upsampling to disagree about.
    Image.fromarray(synth(96, 64, noise=0)).save(path("photo444_96x64.jpg"), quality=90, subsampling=0)
    pil_pixels("photo444_96x64.jpg")

    # Greyscale (mode L): replicated to RGB.
    Image.fromarray(synth(180, 240)[..., 1]).save(path("gray_180x240.png"), optimize=True)
    expected("gray_180x240.png", "v1")

    # RGBA with varying alpha: convert("RGB") drops alpha without blending.
    rgba = np.dstack([synth(250, 260), (np.arange(250) % 256).astype(np.uint8)[None, :].repeat(260, 0)])
    Image.fromarray(rgba, "RGBA").save(path("rgba_250x260.png"), optimize=True)
    expected("rgba_250x260.png", "v1")

    # Very wide and low: upscaled 12.8x to 3840x256, only the middle survives the crop.
    Image.fromarray(synth(300, 20)).save(path("wide_300x20.png"), optimize=True)
    expected("wide_300x20.png", "v1")

    # Portrait, more than twice as tall as wide, downscaled: Pillow 13 runs the vertical pass
    # first here (older Pillow did not, and its output differs).
    Image.fromarray(synth(260, 530, noise=0)).save(path("tall_260x530.png"), optimize=True)
    expected("tall_260x530.png", "v1")

    # Exactly 256 on the short side: torchvision skips the resize.
    Image.fromarray(synth(256, 260, noise=0)).save(path("short256_256x260.png"), optimize=True)
    expected("short256_256x260.png", "v1")

    # Decoder/conversion cases: palette with transparency, 16-bit RGB, 16-bit grey.
    pal = Image.fromarray(synth(64, 48)).quantize(colors=50)
    pal.info["transparency"] = 3
    pal.save(path("palette_64x48.png"), transparency=3)
    pil_pixels("palette_64x48.png")
    png16("rgb16_40x30.png", rng.integers(0, 65536, (30, 40, 3)), 2)
    pil_pixels("rgb16_40x30.png")
    png16("gray16_40x30.png", rng.integers(0, 600, (30, 40)), 0)
    pil_pixels("gray16_40x30.png")
    cmyk_case()

    # Whole-image resizes: both passes in either order, one pass only, up and down, both
    # filters.
    Image.fromarray(synth(97, 61)).save(path("resize_97x61.png"))
    src = Image.open(path("resize_97x61.png"))
    for w, h in [
        (40, 25), (97, 30), (150, 61), (200, 131), (13, 7), (1, 1), (300, 2), (96, 20), (194, 30), (2, 300)
    ]:
        for name, f in [("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)]:
            src.resize((w, h), f).save(path(f"resize_97x61.{name}.{w}x{h}.png"))

    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
    print(f"{len(os.listdir(OUT))} files, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
