#!/usr/bin/env python3
"""Generate the PyTorch golden fixtures in tests/fixtures/family/: one narrow network per member
of the ResNet family and per key layout, built with the libraries' own classes.

Setup (from PyPI, CPU is enough; versions in scripts/requirements-fixtures.txt):

    python3 -m venv .venv && .venv/bin/pip install torch torchvision timm transformers safetensors numpy
    .venv/bin/python scripts/make_family_fixtures.py

Members and layouts (see CASES):
  torchvision  ResNeXt (4 groups of 4–32 channels, 16 groups of 1–8, depth 50 and 101) and Wide
               ResNet, built by torchvision's own ResNet._make_layer with its Bottleneck
               (groups / width_per_group), narrow planes base·[1, 2, 4, 8]
  timm         timm.models.resnet.ResNet with BasicBlock / Bottleneck: deep stems (c, s, d widths,
               deep_tiered t), the avg-pool shortcut (d, t), ResNeXt-D, ResNet-200-D, a plain
               timm resnet34 with a 1000-class head, a headless model (num_classes=0)
  transformers ResNetForImageClassification (stride on the 3×3, downsample_in_bottleneck,
               downsample_in_first_stage, with config.json), a bare ResNetModel, and one folder
               without config.json (the loader then assumes transformers' defaults)
Stored as F32, F16 or BF16; odd input sizes, batches of 1–3, heads of 5–1000 classes.

Every file is written by scripts/export_weights.py's `save` (the documented export path), so
the fixtures also test it. BatchNorm is calibrated as in scripts/make_fixtures.py: gamma ~
U(0.5, 1.5), beta ~ N(0, 0.2), a small gain U(0.1, 0.4) on the last BN of every residual branch,
then running statistics accumulated (momentum None) over random batches in train() mode. The
oracle is the same network in float64 loaded with exactly the stored (rounded) tensors, on the
stored float32 input: logits, or the pooled features for headless models.

Writes tests/fixtures/family/<case>/… (HF cases keep config.json beside model.safetensors)
and tests/fixtures/family/manifest.json, plus preprocess_{hf,timm095}_rgb_301x257.png: the
preprocessing presets' reference crops from transformers' and timm's own eval transforms.
Deterministic: fixed seeds, CPU ops only.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_weights  # noqa: E402
from make_fixtures import calibrate_running_stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "family")
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


# ---- builders: each returns (model, last_bns, export kwargs) ------------------------------------

def torchvision_resnet(layers, base, classes, groups=1, width_per_group=64):
    """torchvision.models.resnet.ResNet with planes base·[1,2,4,8] instead of 64·[1,2,4,8];
    blocks, _make_layer, forward and init are torchvision's."""
    from torchvision.models import resnet as tvr

    class Narrow(tvr.ResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation = base, 1
            self.groups, self.base_width = groups, width_per_group
            self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(base)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(tvr.Bottleneck, base, layers[0])
            self.layer2 = self._make_layer(tvr.Bottleneck, base * 2, layers[1], stride=2)
            self.layer3 = self._make_layer(tvr.Bottleneck, base * 4, layers[2], stride=2)
            self.layer4 = self._make_layer(tvr.Bottleneck, base * 8, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(base * 8 * 4, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    model = Narrow()
    lasts = [b.bn3 for b in model.modules() if isinstance(b, tvr.Bottleneck)]
    return model, lasts, {"source": "torchvision:fixture"}


def timm_resnet(block, layers, classes, **kw):
    from timm.models import resnet as tr
    blk = {"basic": tr.BasicBlock, "bottleneck": tr.Bottleneck}[block]
    model = tr.ResNet(blk, layers, num_classes=classes, **kw)
    lasts = [getattr(b, "bn3" if block == "bottleneck" else "bn2")
             for b in model.modules() if isinstance(b, blk)]
    return model, lasts, {"source": "timm:fixture"}


def hf_resnet(bare=False, labels=None, **kw):
    import transformers
    from transformers.models.resnet import modeling_resnet as hr
    config = transformers.ResNetConfig(**kw)
    if labels:
        config.id2label = dict(enumerate(labels))
        config.label2id = {n: i for i, n in enumerate(labels)}
    model = (transformers.ResNetModel if bare else transformers.ResNetForImageClassification)(config)
    lasts = [b.layer[-1].normalization for b in model.modules()
             if isinstance(b, (hr.ResNetBasicLayer, hr.ResNetBottleNeckLayer))]
    return model, lasts, {"source": "transformers:fixture", "hf_config": config}


# name, member, layout, builder, dtype, (N, H, W), seed, strings `resnet info` must show, extra
CASES = [
    ("tv_resnext50", "resnext50_32x4d", "torchvision",
     lambda: torchvision_resnet([3, 4, 6, 3], 2, 10, groups=4, width_per_group=128),
     "F16", (2, 45, 53), 5001, ["torchvision/timm layout", "4 groups"]),
    ("tv_resnext101", "resnext101_64x4d", "torchvision",
     lambda: torchvision_resnet([3, 4, 23, 3], 2, 6, groups=16, width_per_group=32),
     "BF16", (1, 37, 41), 5002, ["resnet101 (custom", "groups [16, 16, 16, 16]", "16 groups"]),
    ("tv_wide_resnet50", "wide_resnet50_2", "torchvision",
     lambda: torchvision_resnet([3, 4, 6, 3], 2, 17, width_per_group=128),
     "BF16", (2, 39, 35), 5003, ["torchvision/timm layout", "inner [4, 8, 16, 32]"]),
    ("timm_resnet18d", "resnet18d", "timm",
     lambda: timm_resnet("basic", [2, 2, 2, 2], 9, channels=(4, 8, 16, 32), stem_width=8,
                         stem_type="deep", avg_down=True),
     "F32", (3, 33, 47), 5004, ["timm layout", "deep stem 8-8-16", "avg-pool shortcut"]),
    ("timm_resnet26d", "resnet26d", "timm",
     lambda: timm_resnet("bottleneck", [2, 2, 2, 2], 12, channels=(4, 8, 16, 32), stem_width=8,
                         stem_type="deep", avg_down=True),
     "BF16", (2, 57, 61), 5005, ["resnet26d (custom widths", "deep stem 8-8-16", "avg-pool shortcut"]),
    ("timm_resnet50c", "resnet50c", "timm",
     lambda: timm_resnet("bottleneck", [3, 4, 6, 3], 8, channels=(2, 4, 8, 16), stem_width=8,
                         stem_type="deep"),
     "F32", (2, 49, 31), 5006, ["resnet50c (custom widths", "deep stem 8-8-16"]),
    ("timm_resnet50s", "resnet50s", "timm",
     lambda: timm_resnet("bottleneck", [3, 4, 6, 3], 5, channels=(4, 8, 16, 32), stem_width=16,
                         stem_type="deep"),
     "F16", (1, 63, 65), 5007, ["deep stem 16-16-32"]),
    ("timm_resnet26t", "resnet26t", "timm",
     lambda: timm_resnet("bottleneck", [2, 2, 2, 2], 11, channels=(4, 8, 16, 32), stem_width=16,
                         stem_type="deep_tiered", avg_down=True),
     "F16", (2, 35, 29), 5008, ["resnet26t (custom", "deep tiered stem 12-16-32", "avg-pool shortcut"]),
    ("timm_resnext26d", "resnext26d_32x4d", "timm",
     lambda: timm_resnet("bottleneck", [2, 2, 2, 2], 7, channels=(4, 8, 16, 32), stem_width=8,
                         stem_type="deep", avg_down=True, cardinality=8, base_width=32),
     "F32", (2, 41, 43), 5009, ["8 groups", "avg-pool shortcut"]),
    ("timm_resnet200d", "resnet200d", "timm",
     lambda: timm_resnet("bottleneck", [3, 24, 36, 3], 13, channels=(2, 4, 8, 16), stem_width=4,
                         stem_type="deep", avg_down=True),
     "F32", (1, 45, 51), 5010, ["resnet200d (custom", "deep stem 4-4-8", "avg-pool shortcut"]),
    ("timm_resnet34", "resnet34", "timm",
     lambda: timm_resnet("basic", [3, 4, 6, 3], 1000, channels=(4, 8, 16, 32)),
     "F16", (2, 37, 33), 5011, ["resnet34", "torchvision/timm layout"]),
    ("timm_resnet10t_headless", "resnet10t", "timm",
     lambda: timm_resnet("basic", [1, 1, 1, 1], 0, channels=(8, 16, 32, 64), stem_width=16,
                         stem_type="deep_tiered", avg_down=True),
     "F32", (3, 29, 31), 5012, ["resnet10t (custom", "no head"]),
    ("hf_resnet50", "resnet50", "hf",
     lambda: hf_resnet(labels=["cat", "dog", "fox", "owl", "yak", "emu", "gnu"],
                       embedding_size=8, hidden_sizes=[16, 32, 64, 128], depths=[3, 4, 6, 3]),
     "F32", (2, 43, 47), 5013, ["Hugging Face ResNetForImageClassification layout"]),
    ("hf_resnet26_dib", "resnet26 (downsample_in_bottleneck)", "hf",
     lambda: hf_resnet(embedding_size=8, hidden_sizes=[16, 32, 64, 128], depths=[2, 2, 2, 2],
                       downsample_in_bottleneck=True, num_labels=4),
     "F16", (2, 39, 45), 5014, ["stride on the first 1×1"]),
    ("hf_resnet18_first", "resnet18 (downsample_in_first_stage)", "hf",
     lambda: hf_resnet(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[2, 2, 2, 2],
                       layer_type="basic", downsample_in_first_stage=True, num_labels=3),
     "BF16", (1, 61, 57), 5015, ["stride 2 in stage 1"]),
    ("hf_resnetmodel_bare", "resnet14 (ResNetModel)", "hf",
     lambda: hf_resnet(bare=True, embedding_size=8, hidden_sizes=[16, 32, 64, 128],
                       depths=[1, 1, 1, 1]),
     "F32", (2, 33, 37), 5016, ["Hugging Face ResNetModel layout", "no head"]),
    ("hf_resnet50_noconfig", "resnet50 (no config.json)", "hf",
     lambda: hf_resnet(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[3, 4, 6, 3],
                       num_labels=5),
     "F32", (1, 31, 35), 5017, ["Hugging Face ResNetForImageClassification layout"]),
]


def calibrate(model, lasts, seed):
    """Non-trivial BatchNorm: random affine, small gain on each branch's last BN, running
    statistics of the final network's activations (see scripts/make_fixtures.py)."""
    torch.manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.2)
        for bn in lasts:
            bn.weight.uniform_(0.1, 0.4)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.bias.normal_(0.0, 0.5)
        calibrate_running_stats(model, bns)
    return model.eval()


def forward(model, x, layout):
    """Logits, or the pooled features (N, C) of a headless model."""
    out = model(x)
    if layout == "hf":
        out = out.logits if hasattr(out, "logits") else out.pooler_output
    return out.flatten(1)


def preprocess_fixtures():
    """The presets against the libraries' own eval transforms on a 301×257 image, whose
    centre-crop offsets are x.5 after resizing (HF floors them, torchvision/timm round half
    to even): transformers' PIL ConvNext processor as configured for microsoft/resnet-50, and
    timm's transforms_imagenet_eval at crop_pct 0.95 (resize 235). Each result is stored as
    the 8-bit crop it normalises (checked here to reproduce the library's tensor bit for bit
    with ToTensor's /255 and Normalize in float32), as a PNG: a tenth of the bytes of .npy."""
    from PIL import Image
    src = os.path.join(ROOT, "tests", "fixtures", "preprocess", "rgb_301x257.png")
    img = Image.open(src).convert("RGB")
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    from transformers import ConvNextImageProcessorPil
    hf = ConvNextImageProcessorPil(size={"shortest_edge": 224}, crop_pct=0.875, resample=3,
                                   image_mean=mean.tolist(), image_std=std.tolist())
    from timm.data import create_transform
    timm095 = create_transform(224, interpolation="bicubic", crop_pct=0.95)
    for name, x in (("hf", hf(img, return_tensors="np")["pixel_values"][0]),
                    ("timm095", timm095(img).numpy())):
        crop = np.rint((x.transpose(1, 2, 0) * std + mean) * 255.0).astype(np.uint8)
        again = ((crop.astype(np.float32) / np.float32(255.0) - mean) / std).transpose(2, 0, 1)
        assert np.array_equal(again, x), f"{name}: the crop does not reproduce the tensor"
        Image.fromarray(crop).save(os.path.join(OUT, f"preprocess_{name}_rgb_301x257.png"))
    print(f"preprocess fixtures: transformers {hf.__class__.__name__}, timm {timm095}")


def main():
    torch.use_deterministic_algorithms(True)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = []
    for name, member, layout, build, dtype, (n, h, w), seed, describe in CASES:
        torch.manual_seed(seed)
        model, lasts, kw = build()
        model = calibrate(model, lasts, seed)
        tdt = DTYPES[dtype]
        folder = os.path.join(OUT, name)
        hf_config = kw.get("hf_config")
        labels = hf_config and export_weights.hf_labels(hf_config)
        if name.endswith("_noconfig"):
            hf_config = None  # the folder gets no config.json: the loader must infer
        if hf_config is None:
            os.makedirs(folder)
        path = export_weights.save(model.state_dict(), os.path.join(folder, "model.safetensors")
                                   if hf_config is None else folder, kw["source"], labels=labels,
                                   dtype=tdt if dtype != "F32" else None, hf_config=hf_config)
        # oracle: float64 copy loaded with exactly the stored tensors
        stored = load_file(path)
        model64 = build()[0].double()
        model64.load_state_dict({k: (v.double() if v.is_floating_point() else v)
                                 for k, v in stored.items()})
        model64.eval()
        gen = torch.Generator().manual_seed(seed + 7)
        x = torch.randn(n, 3, h, w, generator=gen, dtype=torch.float32)
        with torch.no_grad():
            y64 = forward(model64, x.double(), layout)
            y32 = forward(model, x, layout) if dtype == "F32" else None
        headless = (layout == "hf" and "bare" in name) or name.endswith("headless")
        np.save(os.path.join(folder, "input.npy"), np.ascontiguousarray(x.numpy()))
        np.save(os.path.join(folder, "expected.npy"), np.ascontiguousarray(y64.float().numpy()))
        amax = y64.abs().max().item()
        msg = f"{name:24s} {dtype:4s} out {tuple(y64.shape)} max|y|={amax:.4g}"
        if y32 is not None:
            msg += f"  |f32-f64|/max={(y32.double() - y64).abs().max().item() / amax:.2e}"
        print(msg)
        if not (0.1 <= amax <= 100.0):
            sys.exit(f"{name}: max|output| = {amax} is outside [0.1, 100]")
        rel = lambda p: os.path.relpath(p, OUT)
        manifest.append({
            "name": name, "member": member, "layout": layout, "dtype": dtype,
            "weights": rel(path), "input": rel(os.path.join(folder, "input.npy")),
            "expected": rel(os.path.join(folder, "expected.npy")),
            "output": "features" if headless else "logits",
            "outputs": int(y64.shape[1]), "batch": n, "height": h, "width": w,
            "labels": labels or None, "describe": describe,
            "config": hf_config is not None,
        })
    preprocess_fixtures()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"tests/fixtures/family total: {total} bytes ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
