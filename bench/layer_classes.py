#!/usr/bin/env python3
"""Sums a `resnet profile --json` report by layer class (stem, 3x3 conv, 1x1 conv, split-K
sums, pools, head): GPU ms, share of the total, GFLOP and GFLOP/s. Standard library only.

    resnet profile --arch resnet50 --json > p.json && python3 bench/layer_classes.py p.json
"""
import json
import re
import sys


def layer_class(layer):
    config = layer["config"]
    if layer["kernel"] == "ConvReduce":
        return "split-K sums"
    if config.startswith("conv 7x7"):
        return "stem 7x7 conv"
    if config.startswith("conv 3x3"):
        return "3x3 convs" + (" (grouped)" if re.search(r"/s\d+ g\d+", config) else "")
    if config.startswith("conv 1x1"):
        return "1x1 convs"
    if config.startswith("conv"):
        return "other convs"
    if "pool" in config:
        return "pools"
    return "head"


def main(path):
    with open(path) as f:
        p = json.load(f)
    total = p["total_gpu_ms"]
    classes = {}
    for layer in p["layers"]:
        c = classes.setdefault(layer_class(layer), [0, 0.0, 0.0])
        c[0] += 1
        c[1] += layer["gpu_ms"]
        # A Winograd conv's transforms count in its class's time; its GEMM dispatch carries
        # the direct conv's FLOPs, so GFLOP/s stay comparable across algorithms.
        if not layer["config"].endswith("transform)"):
            c[2] += layer["gflop"]
    print(f"{p['adapter']}, batch {p['batch']} at {p['height']}x{p['width']}, timing {p['method']}")
    print(f"{'class':<22} {'dispatches':>10} {'GPU ms':>10} {'share':>7} {'GFLOP':>8} {'GFLOP/s':>9}")
    for name, (n, ms, gflop) in sorted(classes.items(), key=lambda kv: -kv[1][1]):
        rate = gflop / (ms / 1e3) if ms > 0 else 0.0
        print(f"{name:<22} {n:>10} {ms:>10.2f} {100 * ms / total:>6.1f}% {gflop:>8.3f} {rate:>9.1f}")
    print(f"{'total':<22} {len(p['layers']):>10} {total:>10.2f} {100.0:>6.1f}%")


if __name__ == "__main__":
    main(sys.argv[1])
