#!/usr/bin/env python3
"""Generate the pre-activation golden fixtures in tests/fixtures/preact/: narrow Wide ResNets in
RobustBench's layout and timm ResNetV2 BatchNorm variants, each with its input and the float64
oracle's logits.

Setup (from PyPI, CPU is enough; versions in scripts/requirements-fixtures.txt):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch timm safetensors numpy
    /tmp/venv/bin/python scripts/make_preact_fixtures.py

Cases (see CASES):
  wrn        RobustBench's original WideResNet (model_zoo/architectures/wide_resnet.py), copied
             below module for module so the keys are RobustBench's: `conv1`,
             `block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}`, final `bn1`, `fc`.
             WRN-10-1 (10 classes, 32×32), WRN-16-1 (two blocks per stage, 100 classes, 29×31)
             and WRN-10-2 (widen 2: block1 changes width, so its shortcut is a conv on the
             activated input; stored as F16, 31×30). WRN-16-2 itself holds 0.7 M parameters,
             2.8 MB in F32 and 1.4 MB in F16, over the 1 MB a fixture file may take; the two
             cases cover what it combines. Its head is
             `F.avg_pool2d(out, 8)`: the global average only when the final map is 8×8, i.e.
             inputs of 29–32 pixels per side (a 33-pixel side gives a 9×9 map that the pool
             reads only the top-left 8×8 of); both cases assert the map is 8×8.
  resnetv2   timm's own ResNetV2 class with the settings of `resnetv2_18`, `resnetv2_50` and
             `resnetv2_50d` (BatchNormAct2d, create_conv2d; basic blocks for 18, deep stem and
             avg-pool shortcut for 50d) at narrow widths; the head is timm's ClassifierHead
             with use_conv=True, so `head.fc.weight` is a (classes, C, 1, 1) conv weight.
Odd input sizes, batches of 2–3. BatchNorm: gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2), running
statistics accumulated (momentum None) over random inputs in train() mode; the classifier
weight ~ N(0, 1/√C), its bias ~ N(0, 0.5) (both libraries zero the bias). The oracle is the same
network in float64 loaded with exactly the stored tensors, on the stored float32 input.
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_weights  # noqa: E402
from train_default import canonicalize_header  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "preact")
CALIB_BATCHES = 4


# ---- RobustBench's WideResNet (model_zoo/architectures/wide_resnet.py), verbatim in structure --

class BasicBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, dropRate=0.0):
        super(BasicBlock, self).__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = (in_planes == out_planes)
        self.convShortcut = (not self.equalInOut) and nn.Conv2d(
            in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False) or None

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, block, stride, dropRate=0.0):
        super(NetworkBlock, self).__init__()
        self.layer = self._make_layer(block, in_planes, out_planes, nb_layers, stride, dropRate)

    def _make_layer(self, block, in_planes, out_planes, nb_layers, stride, dropRate):
        layers = []
        for i in range(int(nb_layers)):
            layers.append(block(i == 0 and in_planes or out_planes, out_planes, i == 0 and stride or 1, dropRate))
        return nn.Sequential(*layers)

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth=28, num_classes=10, widen_factor=10, dropRate=0.0, bias_last=True):
        super(WideResNet, self).__init__()
        nChannels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        assert ((depth - 4) % 6 == 0)
        n = (depth - 4) / 6
        block = BasicBlock
        self.conv1 = nn.Conv2d(3, nChannels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, nChannels[0], nChannels[1], block, 1, dropRate)
        self.block2 = NetworkBlock(n, nChannels[1], nChannels[2], block, 2, dropRate)
        self.block3 = NetworkBlock(n, nChannels[2], nChannels[3], block, 2, dropRate)
        self.bn1 = nn.BatchNorm2d(nChannels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(nChannels[3], num_classes, bias=bias_last)
        self.nChannels = nChannels[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear) and not m.bias is None:
                m.bias.data.zero_()

    def forward(self, x):
        out = self.conv1(x)
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        self.head_map = tuple(out.shape[2:])  # the fixture checks the pool saw an 8×8 map
        out = F.avg_pool2d(out, 8)
        out = out.view(-1, self.nChannels)
        return self.fc(out)


def wrn(depth, widen, classes):
    return WideResNet(depth=depth, num_classes=classes, widen_factor=widen)


def resnetv2(classes, **kw):
    """timm's ResNetV2 with BatchNormAct2d and create_conv2d, as timm's resnetv2_* entry points
    build their BatchNorm variants, at the given (narrow) widths."""
    from timm.layers import BatchNormAct2d, create_conv2d
    from timm.models.resnetv2 import ResNetV2
    return ResNetV2(num_classes=classes, conv_layer=create_conv2d, norm_layer=BatchNormAct2d, **kw)


# name, member, layout, builder, (N, H, W), seed, strings `describe` shows
CASES = [
    ("wrn_10_1", "WRN-10-1", "robustbench", lambda: wrn(10, 1, 10), (2, 32, 32), 8001,
     ["WRN-10-1", "RobustBench WideResNet", "pre-activation", "widths [16, 32, 64]", "10 classes"]),
    ("wrn_16_1", "WRN-16-1", "robustbench", lambda: wrn(16, 1, 100), (3, 29, 31), 8002,
     ["WRN-16-1", "blocks per stage 2", "widths [16, 32, 64]", "100 classes"]),
    ("wrn_10_2", "WRN-10-2", "robustbench", lambda: wrn(10, 2, 10), (2, 31, 30), 8006,
     ["WRN-10-2", "blocks per stage 1", "widths [32, 64, 128]", "10 classes"], torch.float16),
    ("resnetv2_18", "resnetv2_18", "timm",
     lambda: resnetv2(7, layers=[2, 2, 2, 2], channels=(8, 16, 24, 32), stem_chs=8, basic=True,
                      bottle_ratio=1.0),
     (2, 45, 39), 8003,
     ["resnetv2_18 (custom widths [8, 16, 24, 32])", "timm ResNetV2", "pre-activation", "basic",
      "stem 7×7 conv → 8", "depths [2, 2, 2, 2]", "7 classes"]),
    ("resnetv2_50", "resnetv2_50", "timm",
     lambda: resnetv2(9, layers=[3, 4, 6, 3], channels=(16, 32, 48, 64), stem_chs=8),
     (2, 61, 47), 8004,
     ["resnetv2_50 (custom widths [16, 32, 48, 64])", "bottleneck", "1×1 conv shortcut",
      "depths [3, 4, 6, 3]", "9 classes"]),
    ("resnetv2_50d", "resnetv2_50d", "timm",
     lambda: resnetv2(5, layers=[3, 4, 6, 3], channels=(16, 32, 48, 64), stem_chs=8,
                      stem_type="deep", avg_down=True),
     (3, 37, 53), 8005,
     ["resnetv2_50d (custom widths [16, 32, 48, 64])", "stem 3×3 convs → 4 → 4 → 8",
      "avg pool + 1×1 conv shortcut", "5 classes"]),
]


def calibrate(model, seed, shape):
    """Non-trivial BatchNorm (random affine, running statistics of the final network's
    activations on random inputs) and a classifier with a bias."""
    torch.manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.2)
        for m in model.modules():
            head = isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.bias is not None)
            if head:
                fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(fan_in))
                m.bias.normal_(0.0, 0.5)
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        for _ in range(CALIB_BATCHES):
            model(torch.randn(*shape))
    return model.eval()


def write_case(name, member, layout, build, shape, seed, describe, dtype=None):
    n, h, w = shape
    torch.manual_seed(seed)
    model = calibrate(build(), seed, (n, 3, h, w))
    folder = os.path.join(OUT, name)
    os.makedirs(folder)
    path = export_weights.save(model.state_dict(), os.path.join(folder, "model.safetensors"),
                               f"{layout}:fixture", dtype=dtype)
    canonicalize_header(path)  # the same bytes on every run
    stored = load_file(path)
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in stored.items()})
    model64 = build().double()
    model64.load_state_dict({k: (v.double() if v.is_floating_point() else v) for k, v in stored.items()})
    model64.eval()
    x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed + 7))
    with torch.no_grad():
        y64 = model64(x.double())
        y32 = model(x)
    if layout == "robustbench":  # avg_pool2d(8) is the global average only on an 8×8 map
        assert model64.head_map == (8, 8), f"{name}: final map {model64.head_map}"
    np.save(os.path.join(folder, "input.npy"), x.numpy())
    np.save(os.path.join(folder, "logits.npy"), y64.float().numpy())
    amax = y64.abs().max().item()
    print(f"{name:14s} in {tuple(x.shape)} out {tuple(y64.shape)} max|y|={amax:.4g} "
          f"|f32-f64|/max={(y32.double() - y64).abs().max().item() / amax:.2e}")
    if not (0.1 <= amax <= 100.0):
        sys.exit(f"{name}: max|output| = {amax} is outside [0.1, 100]")
    for f in os.listdir(folder):
        size = os.path.getsize(os.path.join(folder, f))
        if size >= 1_000_000:
            sys.exit(f"{name}/{f}: {size} bytes, over the 1 MB a fixture file may take")
    return {"name": name, "member": member, "layout": layout, "weights": f"{name}/model.safetensors",
            "input": f"{name}/input.npy", "logits": f"{name}/logits.npy", "batch": n,
            "height": h, "width": w, "classes": int(y64.shape[1]),
            "dtype": str(dtype or torch.float32).removeprefix("torch."), "describe": describe}


def main():
    torch.use_deterministic_algorithms(True)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = [write_case(*case) for case in CASES]
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"tests/fixtures/preact total: {total} bytes ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
