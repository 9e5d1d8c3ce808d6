#!/usr/bin/env python3
"""Trains the embedded default model of resnet-wgpu and writes its fixtures.

The model is a narrow torchvision ResNet (torchvision's own BasicBlock and
ResNet skeleton, layers [1, 1, 1, 1], base width 16, 10 classes) trained on
scikit-learn's bundled handwritten digits (`sklearn.datasets.load_digits`,
1,797 8x8 images), each turned into a 32x32 8-bit grayscale image.

Setup (everything from PyPI; CPU is enough, training takes a few minutes):

    python3 -m venv .venv
    .venv/bin/pip install torch torchvision safetensors numpy scikit-learn pillow

Run from the repository root:

    .venv/bin/python scripts/train_default.py

Writes (all paths relative to the repository root):

    weights/default.safetensors   float32 state_dict with torchvision key names and
                                  resnet.* metadata (labels, preprocess, source, ...)
    weights/default.json          training summary (accuracy, counts, epochs, seed)
    samples/<label>_<index>.png   16 held-out 32x32 grayscale digits (index = position
                                  in load_digits, 4 digits, zero-padded)
    tests/fixtures/default_heldout.input.npy   float32 (64,3,32,32) preprocessed inputs
                                               of the first 64 held-out images
    tests/fixtures/default_heldout.logits.npy  float32 (64,10) eval-mode logits
                                               (computed in float64, then cast)
    tests/fixtures/default_heldout.labels.npy  float32 (64,) true labels
    tests/fixtures/default_samples.json        per sample PNG: file, label, PyTorch's
                                               prediction and its softmax probability

Dataset: each load_digits image (values 0..16) is scaled to 0..255 with
round(v*255/16), made a uint8 PIL 'L' image and resized 8x8 -> 32x32 with
Image.BILINEAR. Those uint8 images are the dataset (the sample PNGs hold them
pixel for pixel). The split is stratified, 80 % train / 20 % held-out, fixed seed.
The held-out images are ordered by their load_digits index.

Network input: the grey image converted to RGB (3 equal channels), ToTensor
(/255), normalized with mean 0.5 and std 0.5 per channel.

Training is deterministic: fixed seeds, one CPU thread,
torch.use_deterministic_algorithms(True).
"""

import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torchvision import transforms
from torchvision.models.resnet import BasicBlock, ResNet

SEED = 20240611
EPOCHS = 40
BATCH = 64
BASE_WIDTH = 16
LAYERS = [1, 1, 1, 1]
NUM_CLASSES = 10
SIZE = 32
MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]
FIXTURE_COUNT = 64
SAMPLE_COUNT = 16

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


class NarrowResNet(ResNet):
    """torchvision's ResNet with the stem/layer widths scaled by `base` (64 in torchvision).

    Same modules, same construction order, same state_dict key names, same forward
    (ResNet._forward_impl) and same _make_layer (downsample = conv1x1 + BN when the
    stride is not 1 or the channel count changes).
    """

    def __init__(self, block, layers, base=64, num_classes=1000):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = base
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # BasicBlock requires torchvision's base_width of 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * block.expansion, num_classes)
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def build_model():
    return NarrowResNet(BasicBlock, LAYERS, base=BASE_WIDTH, num_classes=NUM_CLASSES)


def make_images():
    """load_digits -> uint8 (N, 32, 32) images and int64 labels."""
    digits = load_digits()
    images = []
    for img in digits.images:
        u8 = np.rint(img * 255.0 / 16.0).astype(np.uint8)  # values are integers 0..16
        pil = Image.fromarray(u8, mode="L").resize((SIZE, SIZE), Image.BILINEAR)
        images.append(np.asarray(pil, dtype=np.uint8))
    return np.stack(images), digits.target.astype(np.int64)


PREPROCESS = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def preprocess(u8):
    """uint8 (32, 32) grey image -> float32 (3, 32, 32), exactly as a PNG would be fed."""
    return PREPROCESS(Image.fromarray(u8, mode="L").convert("RGB"))


def augment(x01, gen):
    """Light augmentation on a float batch in [0, 1], (B, 1, 32, 32): integer shifts of
    up to +-2 px (zero fill, like padding + crop) and rotations of up to +-10 degrees."""
    b = x01.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(10)
    shift = torch.randint(-2, 3, (b, 2), generator=gen).to(torch.float32)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin
    theta[:, 1, 1] = cos
    theta[:, :, 2] = shift * (2.0 / SIZE)  # pixels -> normalized coordinates
    grid = F.affine_grid(theta, list(x01.shape), align_corners=False)
    out = F.grid_sample(x01, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out


def to_input(x01):
    """(B, 1, 32, 32) in [0, 1] -> normalized (B, 3, 32, 32)."""
    x = (x01 - MEAN[0]) / STD[0]
    return x.expand(-1, 3, -1, -1).contiguous()


def canonicalize_header(path):
    """Rewrites the safetensors JSON header with the metadata keys sorted.

    save_file keeps the metadata in a hash map, so its key order (and the file's bytes)
    change from run to run; the tensor entries and data are already in a fixed order.
    Only the header is rewritten (compact JSON, space padded to 8 bytes as safetensors
    does); data offsets are relative to the end of the header and stay valid.
    """
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__")
    ordered = {"__metadata__": dict(sorted(meta.items()))}
    ordered.update(header)  # tensor order as written by save_file
    text = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n :])
    os.chmod(path, 0o644)  # save_file creates the file owner-only


def evaluate(model, inputs, labels):
    model.eval()
    with torch.no_grad():
        pred = model(inputs).argmax(1)
    return int((pred == labels).sum())


def main():
    t0 = time.time()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    images, labels = make_images()
    indices = np.arange(len(images))
    train_idx, test_idx = train_test_split(
        indices, test_size=0.2, stratify=labels, random_state=SEED % (2**32)
    )
    train_idx = np.sort(train_idx)
    test_idx = np.sort(test_idx)
    print(f"dataset: {len(images)} images, train {len(train_idx)}, held-out {len(test_idx)}")

    # Training tensors in [0, 1] (one channel; replicated to 3 after augmentation).
    train_x01 = torch.from_numpy(images[train_idx]).to(torch.float32).div(255).unsqueeze(1)
    train_y = torch.from_numpy(labels[train_idx])
    # Held-out inputs exactly as the network sees a PNG (PIL RGB -> ToTensor -> Normalize).
    test_x = torch.stack([preprocess(images[i]) for i in test_idx])
    test_y = torch.from_numpy(labels[test_idx])
    # Sanity: the batched path equals the PIL/torchvision path.
    assert torch.equal(
        to_input(torch.from_numpy(images[test_idx]).to(torch.float32).div(255).unsqueeze(1)), test_x
    ), "batched preprocessing differs from torchvision's"

    model = build_model()
    steps_per_epoch = math.ceil(len(train_idx) / BATCH)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, epochs=EPOCHS, steps_per_epoch=steps_per_epoch, pct_start=0.2
    )
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(train_idx), generator=gen)
        total_loss = 0.0
        for s in range(steps_per_epoch):
            bi = perm[s * BATCH : (s + 1) * BATCH]
            x = to_input(augment(train_x01[bi], gen))
            loss = F.cross_entropy(model(x), train_y[bi])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(bi)
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            correct = evaluate(model, test_x, test_y)
            print(
                f"epoch {epoch + 1:3d}  loss {total_loss / len(train_idx):.4f}  "
                f"held-out {correct}/{len(test_idx)} ({correct / len(test_idx):.4f})  "
                f"{time.time() - t0:.1f}s"
            )

    model.eval()
    correct = evaluate(model, test_x, test_y)
    accuracy = correct / len(test_idx)
    acc_str = f"{accuracy:.4f}"
    print(f"held-out accuracy (eval mode, float32): {correct}/{len(test_idx)} = {acc_str}")

    # float64 reference model for fixtures.
    model64 = build_model().double()
    model64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    model64.eval()

    def logits64(x):
        with torch.no_grad():
            return model64(x.double())

    # ---- weights/default.safetensors --------------------------------------------------
    state = {
        k: (v.detach().to(torch.float32) if v.is_floating_point() else v.detach()).contiguous().clone()
        for k, v in model.state_dict().items()
    }
    metadata = {
        "resnet.labels": json.dumps([str(i) for i in range(NUM_CLASSES)]),
        "resnet.preprocess": json.dumps(
            {"resize": SIZE, "crop": SIZE, "interp": "bilinear", "mean": MEAN, "std": STD}
        ),
        "resnet.source": "torchvision",
        "resnet.description": (
            f"ResNet (torchvision BasicBlock, layers [1,1,1,1], base width {BASE_WIDTH}) trained on "
            f"scikit-learn load_digits (8x8 handwritten digits upscaled to 32x32 grayscale); "
            f"held-out accuracy {acc_str} ({correct}/{len(test_idx)})"
        ),
        "resnet.heldout_accuracy": acc_str,
    }
    os.makedirs(os.path.join(ROOT, "weights"), exist_ok=True)
    weights_path = os.path.join(ROOT, "weights", "default.safetensors")
    save_file(state, weights_path, metadata=metadata)
    canonicalize_header(weights_path)
    # Round trip: the saved file reproduces the model and the metadata.
    reloaded_state = load_file(weights_path)
    assert reloaded_state.keys() == state.keys()
    assert all(torch.equal(reloaded_state[k], state[k]) for k in state)
    with safe_open(weights_path, framework="pt") as f:
        assert f.metadata() == metadata
    reloaded = build_model()
    reloaded.load_state_dict(reloaded_state, strict=True)
    assert evaluate(reloaded, test_x, test_y) == correct

    # ---- samples/ -----------------------------------------------------------------------
    by_class = {c: [int(i) for i in test_idx if labels[i] == c] for c in range(NUM_CLASSES)}
    chosen = []
    rank = 0
    while len(chosen) < SAMPLE_COUNT:  # round robin: first of each class, then second, ...
        for c in range(NUM_CLASSES):
            if len(chosen) < SAMPLE_COUNT and rank < len(by_class[c]):
                chosen.append(by_class[c][rank])
        rank += 1
    chosen.sort(key=lambda i: (int(labels[i]), i))
    samples_dir = os.path.join(ROOT, "samples")
    os.makedirs(samples_dir, exist_ok=True)
    for name in os.listdir(samples_dir):
        if name.endswith(".png"):
            os.remove(os.path.join(samples_dir, name))
    sample_records = []
    for i in chosen:
        name = f"{labels[i]}_{i:04d}.png"
        path = os.path.join(samples_dir, name)
        Image.fromarray(images[i], mode="L").save(path, format="PNG", optimize=True)
        png = Image.open(path)
        assert png.mode == "L" and png.size == (SIZE, SIZE)
        assert np.array_equal(np.asarray(png), images[i]), name
        x = PREPROCESS(png.convert("RGB")).unsqueeze(0)
        probs = torch.softmax(logits64(x), dim=1)[0]
        pred = int(probs.argmax())
        sample_records.append(
            {"file": name, "label": int(labels[i]), "predicted": pred, "probability": round(float(probs[pred]), 6)}
        )
    samples_correct = sum(r["label"] == r["predicted"] for r in sample_records)
    print(f"samples: {samples_correct}/{len(sample_records)} correct")
    for r in sample_records:
        print(f"  {r['file']}: label {r['label']} predicted {r['predicted']} p={r['probability']:.4f}")

    # ---- tests/fixtures -----------------------------------------------------------------
    fixtures = os.path.join(ROOT, "tests", "fixtures")
    os.makedirs(fixtures, exist_ok=True)
    fx = test_x[:FIXTURE_COUNT].contiguous()
    np.save(os.path.join(fixtures, "default_heldout.input.npy"), fx.numpy().astype(np.float32))
    np.save(
        os.path.join(fixtures, "default_heldout.logits.npy"), logits64(fx).numpy().astype(np.float32)
    )
    np.save(
        os.path.join(fixtures, "default_heldout.labels.npy"),
        test_y[:FIXTURE_COUNT].numpy().astype(np.float32),
    )
    with open(os.path.join(fixtures, "default_samples.json"), "w") as f:
        json.dump(sample_records, f, indent=2)
        f.write("\n")

    # ---- weights/default.json -----------------------------------------------------------
    summary = {
        "heldout_accuracy": float(acc_str),
        "heldout_count": int(len(test_idx)),
        "train_count": int(len(train_idx)),
        "epochs": EPOCHS,
        "seed": SEED,
        "samples_correct": f"{samples_correct}/{len(sample_records)}",
    }
    with open(os.path.join(ROOT, "weights", "default.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(json.dumps(summary))
    print(f"size of weights/default.safetensors: {os.path.getsize(weights_path)} bytes")
    print(f"done in {time.time() - t0:.1f}s")
    if samples_correct < math.ceil(0.9 * len(sample_records)):
        print("warning: fewer than 90% of the samples are classified correctly", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
