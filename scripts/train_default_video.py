#!/usr/bin/env python3
"""Trains resnet-wgpu's default video model: which way a handwritten digit moves.

Clips are synthesised from scikit-learn's bundled digits (`load_digits`, 1,797 8x8 images):
each digit, upscaled to 16x16, slides across a black 32x32 canvas for 8 frames, 2 pixels per
frame in one of 8 directions. The label is the direction (not the digit): the task needs the
temporal kernels, since no single frame shows it. The network is a narrow torchvision r3d
(torchvision.models.video.resnet's VideoResNet skeleton, BasicBlock with Conv3DSimple, layers
[1, 1, 1, 1], planes 8·[1, 2, 4, 8], stem 3x7x7 stride (1, 2, 2)).

Setup (everything from PyPI; CPU is enough, training takes a few minutes):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch torchvision safetensors numpy scikit-learn pillow
    /tmp/venv/bin/python scripts/train_default_video.py

Split: the digits (not the clips) are split 80/20, stratified, fixed seed; each training digit
gives 4 clips per epoch with fresh random directions and start points, each held-out digit one
clip with a fixed seed, so the held-out accuracy is measured on digits never seen moving.

Writes:
    weights/default_video.safetensors   float32 state_dict (torchvision video key names) with
                                        resnet.* metadata: labels, frames, preprocess, accuracy
    weights/default_video.json          training summary
    samples_video/<label>_<index>.gif   8 held-out clips, one per direction (index = position in
                                        load_digits), 32x32 grayscale, 8 frames
    tests/fixtures/video/default_heldout.{input,logits,labels}.npy
                                        the 8 sample clips as the network sees them, one channel
                                        of the three equal ones (8,1,8,32,32), their float64
                                        logits (8,8) and true labels
Network input: grey frames as RGB (3 equal channels), /255, mean 0.5, std 0.5, (N, 3, T, H, W).
"""

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_default import canonicalize_header  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261202
FRAMES, SIZE, DIGIT, STEP = 8, 32, 16, 2
BASE_WIDTH = 8
EPOCHS = 6
DIRECTIONS = [("up", (0, -1)), ("up_right", (1, -1)), ("right", (1, 0)), ("down_right", (1, 1)),
              ("down", (0, 1)), ("down_left", (-1, 1)), ("left", (-1, 0)), ("up_left", (-1, -1))]
LABELS = [name.replace("_", "-") for name, _ in DIRECTIONS]
MEAN, STD = 0.5, 0.5


def digits16():
    """load_digits → uint8 (N, 16, 16) (values 0..16 scaled to 0..255, bilinear upscale)."""
    from sklearn.datasets import load_digits
    d = load_digits()
    imgs = np.rint(d.images * 255.0 / 16.0).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(i, mode="L").resize((DIGIT, DIGIT), Image.BILINEAR))
                    for i in imgs])
    return big, d.target.astype(np.int64)


def make_clip(digit, direction, rng):
    """uint8 (T, 32, 32): `digit` sliding STEP pixels a frame along `direction`, from a random
    start that keeps it on the canvas for the whole clip."""
    dx, dy = DIRECTIONS[direction][1]
    travel = STEP * (FRAMES - 1)
    room = SIZE - DIGIT

    def start(d):
        lo, hi = (travel, room) if d < 0 else (0, room - travel) if d > 0 else (0, room)
        return int(rng.integers(lo, hi + 1))

    x0, y0 = start(dx), start(dy)
    clip = np.zeros((FRAMES, SIZE, SIZE), np.uint8)
    for t in range(FRAMES):
        x, y = x0 + dx * STEP * t, y0 + dy * STEP * t
        clip[t, y:y + DIGIT, x:x + DIGIT] = digit
    return clip


def to_input(clips):
    """uint8 (B, T, H, W) → normalised float32 (B, 3, T, H, W)."""
    x = (torch.from_numpy(clips).float() / 255.0 - MEAN) / STD
    return x.unsqueeze(1).expand(-1, 3, -1, -1, -1).contiguous()


def build_model():
    from torchvision.models.video import resnet as tvv

    class Small(tvv.VideoResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self.inplanes = BASE_WIDTH
            self.stem = nn.Sequential(
                nn.Conv3d(3, BASE_WIDTH, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                nn.BatchNorm3d(BASE_WIDTH), nn.ReLU(inplace=True))
            for i in range(4):
                planes = BASE_WIDTH * 2 ** i
                layer = self._make_layer(tvv.BasicBlock, tvv.Conv3DSimple, planes, 1, stride=1 if i == 0 else 2)
                setattr(self, f"layer{i + 1}", layer)
            self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
            self.fc = nn.Linear(BASE_WIDTH * 8, len(DIRECTIONS))

    return Small()


def clips_for(images, idx, per_digit, rng):
    clips, labels = [], []
    for i in idx:
        for _ in range(per_digit):
            d = int(rng.integers(len(DIRECTIONS)))
            clips.append(make_clip(images[i], d, rng))
            labels.append(d)
    return np.stack(clips), np.array(labels, np.int64)


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


def train(model, images, train_idx, rng):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = EPOCHS * (len(train_idx) * 4 // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for epoch in range(EPOCHS):
        clips, labels = clips_for(images, train_idx, 4, rng)
        order = rng.permutation(len(labels))
        model.train()
        total = 0.0
        for b in range(len(labels) // 64):
            sel = order[b * 64:(b + 1) * 64]
            loss = F.cross_entropy(model(to_input(clips[sel])), torch.from_numpy(labels[sel]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"epoch {epoch + 1}/{EPOCHS}: mean loss {total / (len(labels) // 64):.4f}", flush=True)


def save_weights(model, summary):
    state = {k: v.detach().float().contiguous().clone() if v.is_floating_point() else v.detach().clone()
             for k, v in model.state_dict().items()}
    metadata = {
        "resnet.labels": json.dumps(LABELS),
        "resnet.frames": str(FRAMES),
        "resnet.preprocess": json.dumps({"resize": SIZE, "crop": SIZE, "interp": "bilinear",
                                         "mean": [MEAN] * 3, "std": [STD] * 3}),
        "resnet.source": "torchvision-video",
        "resnet.description": (
            f"r3d (torchvision VideoResNet, BasicBlock + Conv3DSimple, layers [1,1,1,1], planes "
            f"{BASE_WIDTH}·[1,2,4,8]) trained on {FRAMES}-frame {SIZE}x{SIZE} clips of scikit-learn "
            f"load_digits digits moving in 8 directions (label = direction); held-out accuracy "
            f"{summary['heldout_accuracy']} ({summary['heldout_correct']}/{summary['heldout_clips']})"),
        "resnet.heldout_accuracy": summary["heldout_accuracy"],
    }
    path = os.path.join(ROOT, "weights", "default_video.safetensors")
    save_file(state, path, metadata=metadata)
    canonicalize_header(path)
    again = load_file(path)
    assert all(torch.equal(again[k], state[k]) for k in state)
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == metadata
    with open(os.path.join(ROOT, "weights", "default_video.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    return path


def write_samples_and_fixture(path, images, test_idx, test_clips, test_y):
    model64 = build_model().double()
    model64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in load_file(path).items()})
    model64.eval()
    out = os.path.join(ROOT, "samples_video")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    # The first held-out clip of each direction.
    chosen = [int(np.flatnonzero(test_y == d)[0]) for d in range(len(DIRECTIONS))]
    for j in chosen:
        frames = [Image.fromarray(f, mode="L") for f in test_clips[j]]
        name = f"{LABELS[test_y[j]]}_{test_idx[j]:04d}.gif"
        frames[0].save(os.path.join(out, name), save_all=True, append_images=frames[1:],
                       duration=125, loop=0, optimize=False)
    x = to_input(test_clips[chosen])
    with torch.no_grad():
        logits = model64(x.double()).float()
    fixtures = os.path.join(ROOT, "tests", "fixtures", "video")
    os.makedirs(fixtures, exist_ok=True)
    # The three channels are equal: stored once, (8, 1, T, H, W), to keep the fixture small.
    np.save(os.path.join(fixtures, "default_heldout.input.npy"), x[:, :1].contiguous().numpy())
    np.save(os.path.join(fixtures, "default_heldout.logits.npy"), logits.numpy())
    np.save(os.path.join(fixtures, "default_heldout.labels.npy"), test_y[chosen].astype(np.float32))
    pred = logits.argmax(1).numpy()
    print("samples:", [(LABELS[test_y[j]], LABELS[p]) for j, p in zip(chosen, pred)])


def main():
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    images, digit_labels = digits16()
    from sklearn.model_selection import train_test_split
    train_idx, test_idx = train_test_split(np.arange(len(images)), test_size=0.2, stratify=digit_labels,
                                           random_state=SEED % 2**32)
    test_idx = np.sort(test_idx)
    model = build_model()
    train(model, images, train_idx, rng)
    test_rng = np.random.default_rng(SEED + 1)
    test_clips, test_y = clips_for(images, test_idx, 1, test_rng)
    correct = evaluate(model, to_input(test_clips), torch.from_numpy(test_y))
    acc = f"{100.0 * correct / len(test_y):.2f}%"
    print(f"held-out accuracy {acc} ({correct}/{len(test_y)})")
    summary = {"heldout_accuracy": acc, "heldout_correct": correct, "heldout_clips": len(test_y),
               "train_digits": len(train_idx), "clips_per_digit_per_epoch": 4, "epochs": EPOCHS,
               "seed": SEED, "frames": FRAMES, "size": SIZE, "labels": LABELS,
               "torch": torch.__version__}
    path = save_weights(model, summary)
    write_samples_and_fixture(path, images, test_idx, test_clips, test_y)


if __name__ == "__main__":
    main()
