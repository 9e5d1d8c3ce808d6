#!/usr/bin/env python3
"""Generate the squeeze-and-excitation golden fixtures in tests/fixtures/se/: timm's own ResNet
class with SE blocks (`block_args=dict(attn_layer='se')`, as timm's `seresnet*` / `seresnext*`
entry points build them) at narrow widths, each with its input and the float64 oracle's logits.

Setup: as scripts/make_preact_fixtures.py (torch, timm, safetensors, numpy; versions in
scripts/requirements-fixtures.txt), then

    /tmp/venv/bin/python scripts/make_se_fixtures.py

Cases (see CASES): `seresnet18` (basic blocks; SE after bn2), `seresnet50` (bottleneck; SE after
bn3) and `seresnext26d_32x4d` (32 groups, deep stem, avg-pool shortcut), each at narrow stage
widths; SE's reduced width is timm's `make_divisible(C/16, 8)`, i.e. 8 or 16 here. Odd input
sizes, batches of 2–3. BatchNorm, classifier and the SE 1×1 convs (which have biases) are
randomised by make_preact_fixtures.calibrate: every BN's gamma ~ U(0.5, 1.5) — including the
last BN of each block that timm zero-initialises — beta ~ N(0, 0.2), running statistics
accumulated in train() mode over random inputs. The oracle is the same network in float64 loaded
with exactly the stored tensors, on the stored float32 input.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_weights  # noqa: E402
from make_preact_fixtures import calibrate  # noqa: E402
from train_default import canonicalize_header  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "se")


def se_resnet(block, layers, classes, **kw):
    """timm's ResNet with SE in every block, as `seresnet*` / `seresnext*` build it."""
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet
    block = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
    return ResNet(block=block, layers=layers, num_classes=classes,
                  block_args=dict(attn_layer="se"), **kw)


# name, member, builder, (N, H, W), seed, strings `Arch::describe` shows (custom widths are
# named `se` + the plain family's custom name: `seresnet26d (custom widths …, groups […])`)
CASES = [
    ("seresnet18", "seresnet18",
     lambda: se_resnet("basic", [2, 2, 2, 2], 10, channels=(8, 16, 24, 32), stem_width=8),
     (2, 45, 39), 9001,
     ["seresnet18 (custom widths", "squeeze-and-excitation, reduced widths [8, 8, 8, 8]"]),
    ("seresnet50", "seresnet50",
     lambda: se_resnet("bottleneck", [3, 4, 6, 3], 100, channels=(8, 16, 24, 32), stem_width=8),
     (3, 37, 53), 9002,
     ["seresnet50 (custom widths", "squeeze-and-excitation, reduced widths [8, 8, 8, 8]"]),
    ("seresnext26d_32x4d", "seresnext26d_32x4d",
     lambda: se_resnet("bottleneck", [2, 2, 2, 2], 17, channels=(16, 32, 32, 48), stem_width=16,
                       stem_type="deep", avg_down=True, cardinality=32, base_width=4),
     (2, 61, 47), 9003,
     ["seresnet26d (custom widths", "deep stem 16-16-32", "avg-pool shortcut", "32 groups",
      "squeeze-and-excitation, reduced widths [8, 8, 8, 16]"]),
]


def write_case(name, member, build, shape, seed, describe):
    n, h, w = shape
    torch.manual_seed(seed)
    model = calibrate(build(), seed, (n, 3, h, w))
    assert any(k.endswith(".se.fc1.weight") for k in model.state_dict()), f"{name}: no SE"
    folder = os.path.join(OUT, name)
    os.makedirs(folder)
    path = export_weights.save(model.state_dict(), os.path.join(folder, "model.safetensors"),
                               "timm:fixture")
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
    np.save(os.path.join(folder, "input.npy"), x.numpy())
    np.save(os.path.join(folder, "logits.npy"), y64.float().numpy())
    amax = y64.abs().max().item()
    print(f"{name:20s} in {tuple(x.shape)} out {tuple(y64.shape)} max|y|={amax:.4g} "
          f"|f32-f64|/max={(y32.double() - y64).abs().max().item() / amax:.2e}")
    if not (0.1 <= amax <= 100.0):
        sys.exit(f"{name}: max|output| = {amax} is outside [0.1, 100]")
    for f in os.listdir(folder):
        size = os.path.getsize(os.path.join(folder, f))
        if size >= 1_000_000:
            sys.exit(f"{name}/{f}: {size} bytes, over the 1 MB a fixture file may take")
    return {"name": name, "member": member, "layout": "timm",
            "weights": f"{name}/model.safetensors", "input": f"{name}/input.npy",
            "logits": f"{name}/logits.npy", "batch": n, "height": h, "width": w,
            "classes": int(y64.shape[1]), "dtype": "float32", "describe": describe}


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
    print(f"tests/fixtures/se total: {total} bytes ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
