#!/usr/bin/env python3
"""Generate the video golden fixtures in tests/fixtures/video/: one narrow network per video
ResNet the issue names, built with the libraries' own classes, plus the resize fixture.

Setup (from PyPI, CPU is enough; versions in scripts/requirements-fixtures.txt):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch torchvision pytorchvideo safetensors numpy
    /tmp/venv/bin/python scripts/make_video_fixtures.py

Cases (see CASES):
  torchvision  r3d_18 / mc3_18 / r2plus1d_18 as torchvision.models.video.resnet.VideoResNet's own
               _make_layer with BasicBlock and Conv3DSimple / Conv3DNoTemporal / Conv2Plus1D,
               stems laid out as BasicStem / R2Plus1dStem (stem.0, stem.1[, stem.3, stem.4]),
               narrow planes base·[1, 2, 4, 8]; layer2–4 stride 2 in time wherever the conv
               has a temporal extent
  pytorchvideo slow_r50 / c2d_r50 / i3d_r50 as pytorchvideo.models.resnet.create_resnet with the
               hub's kernel settings (stem 1×7×7 or 5×7×7, conv_a temporal kernels, c2d/i3d's
               (2,1,1) pool after stage 1), stem_dim_out 4 and depths registered for the
               fixture; head_pool_kernel_size = the final map (the head pool then is the global
               average, the only case resnet-wgpu accepts)
Odd T/H/W, batches of 2–3. BatchNorm: gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2), a small gain
U(0.1, 0.4) on the last BN of every residual branch (pytorchvideo zero-inits it: randomised
here), running statistics accumulated (momentum None) over random clips in train() mode. The
oracle is the same network in float64 loaded with exactly the stored tensors, on the stored
float32 input.

pytorchvideo 0.1.5 (the last release) imports its models with torch 2.15 / torchvision 0.29 as
is; its `pytorchvideo.transforms` does not (it imports torchvision.transforms.functional_tensor,
removed in torchvision 0.17), which this script does not need.

Also writes resize_*.npy: uint8 frames (T, H, W, 3) and torchvision's
`F.resize(frames, [128, 171], antialias=False)` of them — the video preset's resize, which the
Rust side must reproduce bit for bit.

And real/ (`--only real`: writes that folder alone, leaving every other fixture as it is): a
real H.264 file and what torchvision gives for it, for the end-to-end check of
`resnet classify video.mp4`:
  real/moving_shapes.mp4  48 frames 96×128 of moving shapes, encoded by the ffmpeg CLI
                          (libx264, yuv420p; `ffmpeg` must be on PATH), < 300 KB
  real/model.safetensors  a narrow r3d (torchvision layout, planes 4·[1,2,4,8], layers
                          [1,1,1,1]) with 400 Kinetics classes, random weights, calibrated BN
  real/probs.npy          (400,) float32: softmax averaged over the clips, computed in float64
                          (the head's weights scaled ×8 so the top class stands out)
  real/case.json          frames, clips, the clip starts, the decoder and its difference
Decoding here is PyAV's (libav* bound in its wheel, `frame.to_ndarray(format="rgb24")`):
torchvision 0.29 no longer has torchvision.io.read_video. resnet-wgpu decodes with the system
`ffmpeg` CLI (`-pix_fmt rgb24`) instead: two decoders and two YUV→RGB conversions, whose
largest difference on these frames the script prints and stores. The frames then go through
`R3D_18_Weights.KINETICS400_V1.transforms()` (the (T, C, H, W) uint8 clip in, (C, T, 112, 112)
out) and the model; clips follow issue 12's rules (K clips of T frames, clip i starting at
round(i·(F−T)/(K−1))).
"""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_weights  # noqa: E402
from train_default import canonicalize_header  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "video")
CALIB_BATCHES = 4


# ---- builders: each returns (model, last BNs of the residual branches) -------------------------

def torchvision_video(kind, layers, base, classes, stem_mid=None):
    """VideoResNet with planes base·[1,2,4,8] instead of 64·[1,2,4,8]; blocks, conv builders,
    _make_layer and forward are torchvision's."""
    from torchvision.models.video import resnet as tvv
    builder = {"r3d": [tvv.Conv3DSimple] * 4,
               "mc3": [tvv.Conv3DSimple] + [tvv.Conv3DNoTemporal] * 3,
               "r2plus1d": [tvv.Conv2Plus1D] * 4}[kind]

    class Narrow(tvv.VideoResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self.inplanes = base
            if kind == "r2plus1d":  # R2Plus1dStem with `stem_mid` instead of 45 channels
                self.stem = nn.Sequential(
                    nn.Conv3d(3, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                    nn.BatchNorm3d(stem_mid), nn.ReLU(inplace=True),
                    nn.Conv3d(stem_mid, base, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False),
                    nn.BatchNorm3d(base), nn.ReLU(inplace=True))
            else:  # BasicStem
                self.stem = nn.Sequential(
                    nn.Conv3d(3, base, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                    nn.BatchNorm3d(base), nn.ReLU(inplace=True))
            for i, planes in enumerate([base, base * 2, base * 4, base * 8]):
                layer = self._make_layer(tvv.BasicBlock, builder[i], planes, layers[i],
                                         stride=1 if i == 0 else 2)
                setattr(self, f"layer{i + 1}", layer)
            self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
            self.fc = nn.Linear(base * 8, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv3d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    model = Narrow()
    lasts = [b.conv2[1] for b in model.modules() if isinstance(b, tvv.BasicBlock)]
    return model, lasts


def pytorchvideo_resnet(depths, classes, head_pool, **kw):
    from pytorchvideo.models import resnet as pvr
    key = 1000 + sum(d * 10 ** i for i, d in enumerate(depths))  # a depth id for these stages
    pvr._MODEL_STAGE_DEPTH[key] = tuple(depths)
    model = pvr.create_resnet(model_depth=key, model_num_class=classes, stem_dim_out=4,
                              dropout_rate=0.0, head_pool_kernel_size=head_pool, **kw)
    lasts = [b.branch2.norm_c for b in model.modules() if isinstance(b, pvr.ResBlock)]
    return model, lasts


def slow(depths, classes, head_pool):
    return pytorchvideo_resnet(depths, classes, head_pool, stem_conv_kernel_size=(1, 7, 7))


def c2d(depths, classes, head_pool):
    return pytorchvideo_resnet(depths, classes, head_pool, stem_conv_kernel_size=(1, 7, 7),
                               stage1_pool=nn.MaxPool3d,
                               stage_conv_a_kernel_size=((1, 1, 1),) * 4)


def i3d(depths, classes, head_pool):
    # The hub's i3d_r50 pattern, cut to these depths: stage 1 all 3×1×1, stages 2–3 alternate
    # 3×1×1 / 1×1×1, stage 4 alternates 1×1×1 / 3×1×1.
    alt = lambda first, second, n: [first if i % 2 == 0 else second for i in range(n)]
    kernels = ((3, 1, 1), alt((3, 1, 1), (1, 1, 1), depths[1]), alt((3, 1, 1), (1, 1, 1), depths[2]),
               alt((1, 1, 1), (3, 1, 1), depths[3]))
    return pytorchvideo_resnet(depths, classes, head_pool, stem_conv_kernel_size=(5, 7, 7),
                               stage1_pool=nn.MaxPool3d, stage_conv_a_kernel_size=kernels)


# name, member, layout, builder, (N, T, H, W), seed, head pool (pytorchvideo), strings `describe` shows
CASES = [
    ("tv_r3d", "r3d_18", "torchvision",
     lambda: torchvision_video("r3d", [2, 1, 1, 1], 4, 7),
     (2, 7, 29, 35), 7001, None, ["r3d_12 (custom widths [4, 8, 16, 32])", "torchvision video",
                                   "stem 3×7×7", "temporal kernels per stage [3, 3, 3, 3]"]),
    ("tv_mc3", "mc3_18", "torchvision",
     lambda: torchvision_video("mc3", [1, 2, 1, 1], 4, 5),
     (3, 5, 25, 31), 7002, None, ["mc3_12", "temporal kernels per stage [3, 1, 1, 1]"]),
    ("tv_r2plus1d", "r2plus1d_18", "torchvision",
     lambda: torchvision_video("r2plus1d", [1, 1, 1, 1], 4, 6, stem_mid=5),
     (2, 9, 23, 27), 7003, None, ["r2plus1d_10", "(2+1)D factorised, mid-channels 5, 9, 14, 28, 57, stem",
                                   "stem 1×7×7 + 3×1×1"]),
    ("pv_slow", "slow_r50", "pytorchvideo",
     lambda: slow([1, 2, 1, 1], 7, (5, 2, 2)),
     (2, 5, 33, 41), 7004, (5, 2, 2), ["slow_r17 (custom widths [16, 32, 64, 128])", "pytorchvideo",
                                        "temporal kernels per stage [1, 1, 3, 3]"]),
    ("pv_c2d", "c2d_r50", "pytorchvideo",
     lambda: c2d([1, 1, 2, 1], 9, (3, 2, 1)),
     (3, 7, 35, 29), 7005, (3, 2, 1), ["c2d_r17", "temporal max pool after stage 1"]),
    ("pv_i3d", "i3d_r50", "pytorchvideo",
     lambda: i3d([1, 2, 2, 2], 5, (4, 1, 1)),
     (2, 9, 31, 27), 7006, (4, 1, 1), ["i3d_r23", "stem 5×7×7", "temporal max pool after stage 1"]),
]


def calibrate(model, lasts, seed, shape):
    """Non-trivial BatchNorm: random affine, small gain on each branch's last BN, running
    statistics of the final network's activations on random clips."""
    torch.manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.2)
        for bn in lasts:
            bn.weight.uniform_(0.1, 0.4)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.in_features))
                m.bias.normal_(0.0, 0.5)
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        for _ in range(CALIB_BATCHES):
            model(torch.randn(*shape))
    return model.eval()


def resize_fixture():
    """uint8 frames → torchvision's video-preset resize, checked here to equal the float
    formula the Rust side implements (interpolate, round half to even, clamp)."""
    import torch.nn.functional as F
    from torchvision.transforms import functional as TF
    gen = torch.Generator().manual_seed(7100)
    for t, h, w in ((2, 37, 45), (1, 150, 211)):
        frames = torch.randint(0, 256, (t, 3, h, w), generator=gen, dtype=torch.uint8)
        frames[0, :, :, : w // 3] = 255  # saturated and black areas: the clamp matters
        frames[-1, :, : h // 4] = 0
        got = TF.resize(frames, [128, 171], antialias=False)
        formula = F.interpolate(frames.float(), size=(128, 171), mode="bilinear",
                                align_corners=False).round().clamp(0, 255).to(torch.uint8)
        assert torch.equal(got, formula), "torchvision's resize is not the float formula"
        name = f"resize_{h}x{w}"
        np.save(os.path.join(OUT, f"{name}.input.npy"), frames.permute(0, 2, 3, 1).contiguous().numpy())
        np.save(os.path.join(OUT, f"{name}.expected.npy"), got.permute(0, 2, 3, 1).contiguous().numpy())
        print(f"{name}: {tuple(frames.shape)} -> {tuple(got.shape)}")


def write_case(name, member, layout, build, shape, seed, head_pool, describe):
    n, t, h, w = shape
    torch.manual_seed(seed)
    model, lasts = build()
    model = calibrate(model, lasts, seed, (n, 3, t, h, w))
    folder = os.path.join(OUT, name)
    os.makedirs(folder)
    path = export_weights.save(model.state_dict(), os.path.join(folder, "model.safetensors"),
                               f"{layout}:fixture")
    canonicalize_header(path)  # the same bytes on every run
    stored = load_file(path)
    model64 = build()[0].double()
    model64.load_state_dict({k: (v.double() if v.is_floating_point() else v) for k, v in stored.items()})
    model64.eval()
    x = torch.randn(n, 3, t, h, w, generator=torch.Generator().manual_seed(seed + 7))
    pooled = []
    if head_pool:  # the head pool must be the global average: it sees exactly the final map
        model64.blocks[-1].pool.register_forward_hook(lambda m, i, o: pooled.append(tuple(i[0].shape[2:])))
    with torch.no_grad():
        y64 = model64(x.double())
        y32 = model(x)
    covers = pooled == [tuple(head_pool)] if head_pool else True
    assert covers or name in WINDOW_CASES, f"{name}: head pool {head_pool}, map {pooled}"
    np.save(os.path.join(folder, "input.npy"), x.numpy())
    np.save(os.path.join(folder, "logits.npy"), y64.float().numpy())
    amax = y64.abs().max().item()
    print(f"{name:12s} in {tuple(x.shape)} out {tuple(y64.shape)} max|y|={amax:.4g} "
          f"|f32-f64|/max={(y32.double() - y64).abs().max().item() / amax:.2e}")
    if not (0.1 <= amax <= 100.0):
        sys.exit(f"{name}: max|output| = {amax} is outside [0.1, 100]")
    return {"name": name, "member": member, "layout": layout, "weights": f"{name}/model.safetensors",
            "input": f"{name}/input.npy", "logits": f"{name}/logits.npy", "batch": n, "frames": t,
            "height": h, "width": w, "classes": int(y64.shape[1]),
            "head_pool": list(head_pool) if head_pool else None, "describe": describe}


# ---- a real video file, decoded and classified as torchvision does ----------------------------

REAL = os.path.join(OUT, "real")
REAL_FRAMES, REAL_T, REAL_K, REAL_SEED, REAL_FC_GAIN = 48, 16, 3, 7200, 8.0


def moving_shapes(frames, h=96, w=128):
    """A gradient background with a disc moving right, a square moving down and a bar moving
    diagonally: edges and colours a codec has to work for."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((frames, h, w, 3), np.uint8)
    for i in range(frames):
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 60 + i)], -1).astype(np.float64)
        cx, cy = 10 + i * 2, 40 + 10 * math.sin(i / 6)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 12 ** 2] = (230, 40, 40)
        sx, sy = 90, (i * 3) % (h - 16)
        img[(xx >= sx) & (xx < sx + 16) & (yy >= sy) & (yy < sy + 16)] = (30, 220, 60)
        bx, by = (i * 5) % w, (i * 2) % h
        img[(abs(xx - bx) < 20) & (abs(yy - by) < 3)] = (40, 60, 240)
        out[i] = img.round().clip(0, 255).astype(np.uint8)
    return out


def encode_h264(frames, path):
    t, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", "12", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
           "-threads", "1", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", path]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def decode_pyav(path):
    import av
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def decode_ffmpeg_cli(path, h, w):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def real_video_case():
    from torchvision.models.video import R3D_18_Weights
    if os.path.isdir(REAL):
        shutil.rmtree(REAL)
    os.makedirs(REAL)
    video = os.path.join(REAL, "moving_shapes.mp4")
    encode_h264(moving_shapes(REAL_FRAMES), video)
    frames = decode_pyav(video)
    f, h, w, _ = frames.shape
    assert f == REAL_FRAMES, f"decoded {f} frames"
    cli_diff = int(np.abs(frames.astype(int) - decode_ffmpeg_cli(video, h, w).astype(int)).max())
    starts = [round(i * (f - REAL_T) / (REAL_K - 1)) for i in range(REAL_K)]
    transform = R3D_18_Weights.KINETICS400_V1.transforms()
    clips = torch.stack([transform(torch.from_numpy(frames[s:s + REAL_T]).permute(0, 3, 1, 2))
                         for s in starts])
    torch.manual_seed(REAL_SEED)
    build = lambda: torchvision_video("r3d", [1, 1, 1, 1], 4, 400)
    model, lasts = build()
    model = calibrate(model, lasts, REAL_SEED, tuple(clips.shape))
    with torch.no_grad():  # sharper logits: a near-uniform softmax would pass any 1e-3 check
        model.fc.weight.mul_(REAL_FC_GAIN)
    path = export_weights.save(model.state_dict(), os.path.join(REAL, "model.safetensors"),
                               "torchvision:fixture")
    canonicalize_header(path)
    model64 = build()[0].double()
    model64.load_state_dict({k: (v.double() if v.is_floating_point() else v)
                             for k, v in load_file(path).items()})
    with torch.no_grad():
        probs = torch.softmax(model64.eval()(clips.double()), dim=1).mean(0)
    np.save(os.path.join(REAL, "probs.npy"), probs.float().numpy())
    case = {"video": "moving_shapes.mp4", "frames": REAL_T, "clips": REAL_K, "clip_starts": starts,
            "decoded_frames": f, "height": h, "width": w, "decoder": f"PyAV {__import__('av').__version__}",
            "max_abs_rgb_difference_pyav_vs_ffmpeg_cli": cli_diff}
    with open(os.path.join(REAL, "case.json"), "w") as out:
        json.dump(case, out, indent=1)
        out.write("\n")
    top = torch.topk(probs, 5)
    print(f"real: {os.path.getsize(video)} bytes, {f} frames {h}x{w}, clips at {starts}, "
          f"PyAV vs ffmpeg CLI max |RGB diff| {cli_diff}, top-5 {top.indices.tolist()} "
          f"{[round(p, 5) for p in top.values.tolist()]}")


# A head pool smaller than the final map: pytorchvideo's AvgPool3d (stride 1) over every
# window position, `proj`, then AdaptiveAvgPool3d(1) (the released models on clips larger
# than 8×224×224, e.g. the 256 crop of their eval transform).
WINDOW_CASES = {
    "pv_slow_window": ("slow_r50", "pytorchvideo", lambda: slow([1, 2, 1, 1], 7, (3, 1, 1)),
                       (2, 5, 33, 41), 7010, (3, 1, 1),
                       ["slow_r17 (custom widths [16, 32, 64, 128])", "pytorchvideo"]),
}


def window_cases():
    """Writes the WINDOW_CASES alone and adds them to the manifest (the other cases untouched)."""
    path = os.path.join(OUT, "manifest.json")
    with open(path) as f:
        manifest = [c for c in json.load(f) if c["name"] not in WINDOW_CASES]
    for name, case in WINDOW_CASES.items():
        shutil.rmtree(os.path.join(OUT, name), ignore_errors=True)
        manifest.append(write_case(name, *case))
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def main():
    torch.use_deterministic_algorithms(True)
    if sys.argv[1:] == ["--only", "real"]:
        real_video_case()
        return
    if sys.argv[1:] == ["--only", "window"]:
        window_cases()
        return
    keep = [f for f in os.listdir(OUT) if f.startswith("default_heldout")] if os.path.isdir(OUT) else []
    for entry in os.listdir(OUT) if os.path.isdir(OUT) else []:
        if entry not in keep:  # the default model's fixture belongs to train_default_video.py
            p = os.path.join(OUT, entry)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.makedirs(OUT, exist_ok=True)
    manifest = [write_case(*case) for case in CASES]
    manifest += [write_case(name, *case) for name, case in WINDOW_CASES.items()]
    resize_fixture()
    real_video_case()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"tests/fixtures/video total: {total} bytes ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
