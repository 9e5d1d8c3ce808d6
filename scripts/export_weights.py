#!/usr/bin/env python3
"""Export a torchvision, timm or Hugging Face transformers ResNet to safetensors for resnet-wgpu.

    pip install torch torchvision safetensors          # + timm / transformers as needed
    python scripts/export_weights.py torchvision:resnet50 --weights IMAGENET1K_V2 -o resnet50.safetensors
    python scripts/export_weights.py torchvision:resnext101_64x4d -o resnext101_64x4d.safetensors
    python scripts/export_weights.py timm:resnet50d.ra2_in1k -o resnet50d.safetensors
    python scripts/export_weights.py hf:microsoft/resnet-50 -o resnet-50/        # a folder
    python scripts/export_weights.py timm:resnet26t --random -o /tmp/r26t.safetensors

SOURCE is `torchvision:NAME`, `timm:NAME[.TAG]` or `hf:REPO` (transformers
ResNetForImageClassification; `hf-model:REPO` for the bare ResNetModel). With `--random` the
architecture is built with random weights and nothing is downloaded (to try the path).

Writes the model's state_dict unchanged (our loader reads torchvision, timm and transformers
key names as they are), floating tensors in --dtype (default: as stored, i.e. F32), plus our
metadata keys:
  resnet.source      `torchvision:resnet50/IMAGENET1K_V2`, `timm:resnet50d.ra2_in1k`, …
  resnet.labels      JSON list of class names (torchvision categories, timm's ImageNet
                     descriptions, transformers id2label), when the weights have them
  resnet.preprocess  JSON {resize, crop, interp, mean, std, rounding} of the weights' eval
                     transform (torchvision preset, timm pretrained_cfg, transformers' processor)
For transformers the output is a folder with model.safetensors and the model's config.json,
which the loader reads for what the tensors cannot show (downsample_in_bottleneck, ...).
"""

import argparse
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def preprocess_json(resize, crop, interp, mean=IMAGENET_MEAN, std=IMAGENET_STD, rounding="even"):
    return json.dumps({"resize": int(resize), "crop": int(crop), "interp": interp,
                       "mean": [float(m) for m in mean], "std": [float(s) for s in std],
                       "rounding": rounding})


# The transformers preset: shorter side int(224 / 0.875) = 256, bicubic, centre crop 224 with
# floor offsets ((H - h) // 2).
HF_PREPROCESS = preprocess_json(256, 224, "bicubic", rounding="floor")


def save(state_dict, path, source, labels=None, preprocess=None, dtype=None, hf_config=None):
    """Writes `state_dict` to `path` (a file; or, with `hf_config`, a folder holding
    model.safetensors + config.json) with our metadata keys. Returns the safetensors path."""
    sd = {}
    for k, v in state_dict.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        sd[k] = v.contiguous()
    meta = {"format": "pt", "resnet.source": source}
    if labels is not None:
        meta["resnet.labels"] = json.dumps(list(labels))
    if preprocess is not None:
        meta["resnet.preprocess"] = preprocess
    if hf_config is not None:
        os.makedirs(path, exist_ok=True)
        hf_config.to_json_file(os.path.join(path, "config.json"))
        path = os.path.join(path, "model.safetensors")
    save_file(sd, path, metadata=meta)
    return path


def hf_labels(config):
    """id2label, unless it is transformers' placeholder LABEL_0, LABEL_1, ..."""
    names = [config.id2label[i] for i in range(len(config.id2label))]
    return None if all(n == f"LABEL_{i}" for i, n in enumerate(names)) else names


def torchvision_model(name, weights, random, num_classes):
    import torchvision
    if random:
        kwargs = {"num_classes": num_classes} if num_classes else {}
        return torchvision.models.get_model(name, weights=None, **kwargs), f"torchvision:{name}/random", None, None
    w = torchvision.models.get_model_weights(name)[weights or "DEFAULT"]
    model = torchvision.models.get_model(name, weights=w)
    t = w.transforms()
    interp = "bicubic" if "BICUBIC" in str(t.interpolation) else "bilinear"
    pre = preprocess_json(t.resize_size[0], t.crop_size[0], interp, t.mean, t.std)
    return model, f"torchvision:{name}/{w.name}", w.meta["categories"], pre


def timm_model(name, random, num_classes):
    import timm
    kwargs = {"num_classes": num_classes} if num_classes is not None else {}
    model = timm.create_model(name, pretrained=not random, **kwargs)
    cfg = model.pretrained_cfg
    size = cfg.get("input_size", (3, 224, 224))[1]
    crop_pct = cfg.get("crop_pct", 0.875)
    pre = preprocess_json(math.floor(size / crop_pct), size, cfg.get("interpolation", "bicubic"),
                          cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD))
    labels = None
    if not random and model.num_classes == 1000:
        from timm.data import ImageNetInfo, infer_imagenet_subset
        subset = infer_imagenet_subset(model)
        if subset:
            labels = ImageNetInfo(subset).label_descriptions()
    tag = "random" if random else cfg.get("tag", "")
    return model, f"timm:{cfg.get('architecture', name)}.{tag}", labels, pre


def hf_model(repo, random, bare, num_classes):
    import transformers
    cls = transformers.ResNetModel if bare else transformers.ResNetForImageClassification
    if random:
        config = transformers.ResNetConfig()
        if num_classes:
            config.num_labels = num_classes
        model = cls(config)
    else:
        model = cls.from_pretrained(repo)
    return model, f"transformers:{repo}{'/random' if random else ''}", hf_labels(model.config), HF_PREPROCESS


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="torchvision:NAME | timm:NAME[.TAG] | hf:REPO | hf-model:REPO")
    ap.add_argument("-o", "--output", required=True, help="safetensors file (a folder for hf:)")
    ap.add_argument("--weights", help="torchvision weights enum name (default: DEFAULT)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="store floating tensors as this")
    ap.add_argument("--random", action="store_true", help="random weights, no download")
    ap.add_argument("--num-classes", type=int, help="head size (timm: 0 for no head)")
    args = ap.parse_args()
    kind, _, name = args.source.partition(":")
    if not name:
        sys.exit(f"{args.source}: expected SOURCE:NAME, e.g. torchvision:resnet50")
    hf_config = None
    if kind == "torchvision":
        model, source, labels, pre = torchvision_model(name, args.weights, args.random, args.num_classes)
    elif kind == "timm":
        model, source, labels, pre = timm_model(name, args.random, args.num_classes)
    elif kind in ("hf", "hf-model", "transformers"):
        model, source, labels, pre = hf_model(name, args.random, kind == "hf-model", args.num_classes)
        hf_config = model.config
    else:
        sys.exit(f"unknown source `{kind}` (torchvision, timm, hf, hf-model)")
    dtype = DTYPES[args.dtype] if args.dtype else None
    path = save(model.eval().state_dict(), args.output, source, labels, pre, dtype, hf_config)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {path}: {source}, {n:,} parameters, "
          f"{'%d labels' % len(labels) if labels else 'no labels'}")


if __name__ == "__main__":
    main()
