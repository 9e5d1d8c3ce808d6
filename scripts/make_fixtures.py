#!/usr/bin/env python3
"""Generate the PyTorch golden fixtures in tests/fixtures/ for the ResNet inference engine.

Setup (from PyPI; CPU-only torch is enough; the versions used are pinned in
scripts/requirements-fixtures.txt):

    python3 -m venv .venv && .venv/bin/pip install torch torchvision safetensors numpy
    .venv/bin/python scripts/make_fixtures.py

(or `.venv/bin/pip install -r scripts/requirements-fixtures.txt` for the exact versions).

For every case it writes, relative to tests/fixtures/:

  <name>.safetensors   model.state_dict() via safetensors.torch.save_file, torchvision key names,
                       including the I64 scalar `*.num_batches_tracked` entries; floating tensors
                       in the case's dtype (F32, F16 or BF16)
  <name>.input.npy     float32, NCHW (N, 3, H, W), C-order
  <name>.logits.npy    float32 (N, classes): the oracle, computed in float64 from exactly the
                       stored (possibly f16/bf16-rounded) weights and the stored f32 input

and one manifest.json listing all cases.

Networks are torchvision's ResNet skeleton at a narrow width: stem width = base, planes per stage
= base*[1, 2, 4, 8], built with torchvision's own BasicBlock / Bottleneck classes and its own
ResNet._make_layer, so the block code and the state_dict keys are exactly torchvision's (checked
against real resnet18/resnet50 below). Bottleneck width_per_group stays 64, i.e. width = planes.

BatchNorm is "calibrated" so it is exercised non-trivially: after torchvision's init, every BN
gets gamma ~ U(0.5, 1.5) and beta ~ N(0, 0.2) (so no BN is identity-like and none is zero), then
running_mean/running_var are set to the true cumulative statistics (momentum=None) of the
activations of a few random batches run in train() mode, then momentum is restored and the model
is put in eval(). The gamma/beta are set *before* calibration so that the running statistics
describe the activations of the final network (each BN's eval output is then well-scaled, and
logits neither explode nor vanish with depth).

Deterministic: every case uses its own fixed seed and only CPU ops.
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torchvision.models import resnet as tvr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")

BLOCKS = {"basic": tvr.BasicBlock, "bottleneck": tvr.Bottleneck}
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

# name, block, layers, base, classes, (N, H, W), dtype, seed
CASES = [
    ("tiny", "basic", [1, 1, 1, 1], 4, 3, (2, 23, 29), "F32", 1000),
    ("resnet18", "basic", [2, 2, 2, 2], 8, 10, (2, 97, 131), "F32", 1018),
    ("resnet34", "basic", [3, 4, 6, 3], 8, 37, (3, 33, 47), "F32", 1034),
    ("resnet50", "bottleneck", [3, 4, 6, 3], 8, 100, (2, 65, 79), "F32", 1050),
    ("resnet101", "bottleneck", [3, 4, 23, 3], 4, 7, (2, 45, 61), "F32", 1101),
    ("resnet152", "bottleneck", [3, 8, 36, 3], 4, 1001, (2, 40, 56), "F32", 1152),
    ("resnet18_f16", "basic", [2, 2, 2, 2], 8, 5, (2, 50, 37), "F16", 2018),
    ("resnet50_bf16", "bottleneck", [3, 4, 6, 3], 8, 12, (3, 41, 59), "BF16", 2050),
    ("resnet18_224", "basic", [2, 2, 2, 2], 8, 1000, (1, 224, 224), "F32", 3018),
]

CALIB_BATCHES = 4
CALIB_SHAPE = (2, 3, 64, 64)


class NarrowResNet(tvr.ResNet):
    """torchvision.models.resnet.ResNet.__init__ with the hardcoded 64/128/256/512 replaced by
    base*[1,2,4,8]. Everything else (layer construction via the inherited _make_layer, forward,
    init) is torchvision's."""

    def __init__(self, block, layers, num_classes, base):
        nn.Module.__init__(self)
        norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = base
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # width_per_group: Bottleneck width == planes, as in resnet50/101/152
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def key_pattern(k):
    """layer3.17.downsample.1.running_var -> layerS.B.downsample.1.running_var"""
    parts = k.split(".")
    if parts[0].startswith("layer") and len(parts) > 1 and parts[1].isdigit():
        parts[0], parts[1] = "layerS", "B"
    return ".".join(parts)


def check_keys_against_torchvision():
    for block, layers, ref in (
        ("basic", [2, 2, 2, 2], tvr.resnet18),
        ("bottleneck", [3, 4, 6, 3], tvr.resnet50),
    ):
        ours = NarrowResNet(BLOCKS[block], layers, 1000, 8).state_dict()
        theirs = ref(weights=None).state_dict()
        assert list(ours.keys()) == list(theirs.keys()), (block, set(ours) ^ set(theirs))
        for k in ours:
            assert ours[k].dtype == theirs[k].dtype and ours[k].dim() == theirs[k].dim(), k
            if not k.startswith("fc."):
                # every shape is torchvision's scaled by base/64 (channel dims only)
                scaled = tuple(
                    d if (k == "conv1.weight" and i == 1) or i >= 2 else d * 8
                    for i, d in enumerate(ours[k].shape)
                )
                assert scaled == tuple(theirs[k].shape), (k, ours[k].shape, theirs[k].shape)
    print("state_dict keys match torchvision resnet18 / resnet50 (same keys, same order)")


def calibrate_running_stats(model, bns):
    """Running statistics as the cumulative average of the activations over CALIB_BATCHES
    random batches in train mode (under the caller's no_grad); momentum restored after."""
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for _ in range(CALIB_BATCHES):
        model(torch.randn(*CALIB_SHAPE))
    for bn, mom in zip(bns, saved):
        bn.momentum = mom


def build(block, layers, base, classes, seed):
    torch.manual_seed(seed)
    model = NarrowResNet(BLOCKS[block], layers, classes, base)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.2)
        # The last BN of each residual branch gets a small gain, as in trained ResNets: the
        # residual stream then grows slowly with depth instead of exploding, which keeps deep
        # fixtures (ResNet-152) well conditioned — PyTorch's own f32 result stays close to f64.
        for blk in model.modules():
            last = getattr(blk, "bn3", None) if isinstance(blk, tvr.Bottleneck) else getattr(blk, "bn2", None) if isinstance(blk, tvr.BasicBlock) else None
            if last is not None:
                last.weight.uniform_(0.1, 0.4)
        model.fc.bias.normal_(0.0, 0.5)
        calibrate_running_stats(model, bns)
    model.eval()
    return model


def main():
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    check_keys_against_torchvision()
    manifest = []
    patterns = {}
    for name, block, layers, base, classes, (n, h, w), dtype, seed in CASES:
        model = build(block, layers, base, classes, seed)
        sd = model.state_dict()
        tdt = DTYPES[dtype]
        sd = {k: (v.to(tdt) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
        st_path = os.path.join(OUT, f"{name}.safetensors")
        save_file(sd, st_path)

        # oracle: float64 model loaded with exactly the stored (rounded) values
        model64 = NarrowResNet(BLOCKS[block], layers, classes, base).double()
        model64.load_state_dict({k: (v.double() if v.is_floating_point() else v) for k, v in sd.items()})
        model64.eval()
        gen = torch.Generator().manual_seed(seed + 7)
        x = torch.randn(n, 3, h, w, generator=gen, dtype=torch.float32)
        with torch.no_grad():
            logits64 = model64(x.double())
            logits32 = model(x) if dtype == "F32" else None
        logits = logits64.float()
        np.save(os.path.join(OUT, f"{name}.input.npy"), np.ascontiguousarray(x.numpy()))
        np.save(os.path.join(OUT, f"{name}.logits.npy"), np.ascontiguousarray(logits.numpy()))

        amax = logits64.abs().max().item()
        msg = f"{name:14s} {dtype:4s} logits {tuple(logits.shape)} max|logits|={amax:.4g} std={logits64.std().item():.4g}"
        if logits32 is not None:
            msg += f"  |f32-f64|max={ (logits32.double() - logits64).abs().max().item():.2e}"
        print(msg)
        if not (0.1 <= amax <= 100.0):
            sys.exit(f"{name}: max|logits| = {amax} is outside [0.1, 100]")
        for k in sd:
            patterns.setdefault(key_pattern(k), set()).add(block)
        manifest.append({
            "name": name,
            "file": f"{name}.safetensors",
            "input": f"{name}.input.npy",
            "logits": f"{name}.logits.npy",
            "block": block,
            "layers": layers,
            "base_width": base,
            "classes": classes,
            "dtype": dtype,
            "batch": n,
            "height": h,
            "width": w,
        })
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    # read everything back
    total = os.path.getsize(os.path.join(OUT, "manifest.json"))
    for c in manifest:
        sd = load_file(os.path.join(OUT, c["file"]))
        x = np.load(os.path.join(OUT, c["input"]))
        y = np.load(os.path.join(OUT, c["logits"]))
        assert x.dtype == np.float32 and x.shape == (c["batch"], 3, c["height"], c["width"]) and x.flags.c_contiguous
        assert y.dtype == np.float32 and y.shape == (c["batch"], c["classes"])
        for k, v in sd.items():
            if k.endswith("num_batches_tracked"):
                assert v.dtype == torch.int64 and v.dim() == 0, k
            else:
                assert v.dtype == DTYPES[c["dtype"]], k
        for p in (c["file"], c["input"], c["logits"]):
            total += os.path.getsize(os.path.join(OUT, p))
    print(f"tests/fixtures total: {total} bytes ({total / 1e6:.2f} MB)")
    print("state_dict key patterns (S = stage 1..4, B = block index):")
    for p, blocks in patterns.items():
        print(f"  {p}" + ("" if len(blocks) == 2 else f"   [{'/'.join(sorted(blocks))} only]"))


if __name__ == "__main__":
    main()
