"""Ensembles (Engine([path, path, ...])): the blend of the members' probabilities or logits,
weighted, tied to PyTorch through the committed ResNet-18 fixture; classify equal to
`resnet classify --json` with several --weights; members that disagree refused.

PyTorch's outputs exist for each fixture on its own input only, so two members are derived
from the ResNet-18 fixture by changing its linear head: rows permuted (PyTorch's logits
permute the same way) and weights and bias scaled (the logits scale the same way). Their
PyTorch logits follow exactly from the committed ones.
"""

import json
import struct
import subprocess

import numpy as np
import pytest

import resnet_wgpu
from conftest import FIXTURES, ROOT, relative_error, sample_paths

PERMUTATION = [3, 7, 0, 9, 1, 5, 2, 8, 6, 4]
SCALE = 0.5


def rewrite_head(src, dst, change):
    """Copies a float32 safetensors file with `change(name, array)` applied to fc.*."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = bytearray(raw[8 + n :])
    for name in ("fc.weight", "fc.bias"):
        t = header[name]
        assert t["dtype"] == "F32"
        start, end = t["data_offsets"]
        a = np.frombuffer(bytes(data[start:end]), "<f4").reshape(t["shape"])
        data[start:end] = np.ascontiguousarray(change(name, a), "<f4").tobytes()
    dst.write_bytes(raw[: 8 + n] + bytes(data))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Three 10-class members and PyTorch's logits of each on the ResNet-18 input."""
    base = FIXTURES / "resnet18.safetensors"
    logits = np.load(FIXTURES / "resnet18.logits.npy").astype(np.float64)
    folder = tmp_path_factory.mktemp("ensemble")
    permuted, scaled = folder / "permuted.safetensors", folder / "scaled.safetensors"
    rewrite_head(base, permuted, lambda _, a: a[PERMUTATION])
    rewrite_head(base, scaled, lambda _, a: a * SCALE)
    paths = [str(base), str(permuted), str(scaled)]
    want = [logits, logits[:, PERMUTATION], logits * SCALE]
    return paths, want


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "combine,weights",
    [("probs", None), ("logits", None), ("probs", [2.0, 1.0, 0.5]), ("logits", [0.0, 3.0, 1.0])],
)
def test_run_blends_like_the_mean_of_pytorchs_members(members, combine, weights):
    paths, want = members
    x = np.load(FIXTURES / "resnet18.input.npy")
    engine = resnet_wgpu.Engine(paths, combine=combine, ensemble_weights=weights)
    got = engine.run(x)
    assert got.shape == (2, 10) and got.dtype == np.float32
    w = np.asarray(weights or [1.0, 1.0, 1.0])
    per_member = want if combine == "logits" else [softmax(z) for z in want]
    expected = sum(wi * m for wi, m in zip(w, per_member)) / w.sum()
    assert relative_error(got, expected) <= 1e-4
    # The members really differ: no one of them alone is the blend.
    assert all(relative_error(m, expected) > 1e-2 for m in per_member)


def test_info_lists_the_members_and_features_are_refused(members):
    paths, _ = members
    engine = resnet_wgpu.Engine(paths[:2], combine="logits", ensemble_weights=[1, 2])
    info = engine.info
    assert info["architecture"] == "ensemble"
    assert info["classes"] == 10 and info["combine"] == "logits"
    assert info["ensemble_weights"] == [1.0, 2.0]
    assert [m["weights"] for m in info["members"]] == paths[:2]
    assert all(m["architecture"].startswith("resnet18") for m in info["members"])
    assert "ensemble of 2" in repr(engine)
    with pytest.raises(ValueError, match="each member has its own embedding"):
        engine.features(np.load(FIXTURES / "resnet18.input.npy"))


def test_members_must_agree_on_classes_and_blend_arguments_must_fit():
    a, b = str(FIXTURES / "resnet18.safetensors"), str(FIXTURES / "resnet34.safetensors")
    with pytest.raises(ValueError) as e:
        resnet_wgpu.Engine([a, b])
    for part in (a, b, "10 classes", "37 classes"):
        assert part in str(e.value)
    with pytest.raises(ValueError, match="probs"):
        resnet_wgpu.Engine([a, a], combine="mean")
    with pytest.raises(ValueError, match="one non-negative weight per member"):
        resnet_wgpu.Engine([a, a], ensemble_weights=[1.0])
    with pytest.raises(ValueError, match="apply to an ensemble"):
        resnet_wgpu.Engine(a, combine="logits")
    with pytest.raises(ValueError, match="needs members"):
        resnet_wgpu.Engine([])
    with pytest.raises(ValueError, match="apply to a video network"):
        resnet_wgpu.Engine([a, a]).classify([str(ROOT / sample_paths()[0])], clips=2)


@pytest.mark.parametrize("combine", ["probs", "logits"])
def test_classify_equals_the_cli(cli, monkeypatch, combine):
    # The digits model (32x32 preset) and ResNet-18 (224x224 torchvision preset): each image
    # preprocessed for each member.
    monkeypatch.chdir(ROOT)
    weights = ["weights/default.safetensors", "tests/fixtures/resnet18.safetensors"]
    flags = ["--combine", combine, "--ensemble-weights", "1,2"]
    command = [str(cli), "classify", "--json", *sample_paths()[:6], "--batch", "4", *flags]
    for w in weights:
        command += ["--weights", w]
    want = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    engine = resnet_wgpu.Engine(weights, combine=combine, ensemble_weights=[1, 2])
    assert engine.classify(sample_paths()[:6], batch_size=4) == want
    # Bytes give the same (named "<image i>").
    blobs = [(ROOT / p).read_bytes() for p in sample_paths()[:2]]
    got = engine.classify(blobs)
    assert [p["top"] for p in got] == [p["top"] for p in want[:2]]
