"""The committed PyTorch fixtures (scripts/make_fixtures.py) through the package: logits within
1e-4 relative of PyTorch's, from every input dtype and memory order."""

import numpy as np
import pytest

import resnet_wgpu
from conftest import FIXTURES, manifest, relative_error

CASES = manifest()


@pytest.fixture(scope="module", params=CASES, ids=[c["name"] for c in CASES])
def case(request):
    c = request.param
    engine = resnet_wgpu.Engine(str(FIXTURES / c["file"]))
    x = np.load(FIXTURES / c["input"])
    want = np.load(FIXTURES / c["logits"])
    return c, engine, x, want


def test_logits_match_pytorch(case):
    c, engine, x, want = case
    assert x.shape == (c["batch"], 3, c["height"], c["width"])
    got = engine.run(x)
    assert got.dtype == np.float32
    assert got.shape == (c["batch"], c["classes"])
    assert relative_error(got, want) <= 1e-4


def test_float64_and_any_strides_give_the_same_logits(case):
    _, engine, x, _ = case
    x = x.astype(np.float32)
    base = engine.run(x)
    # float64 of float32 values converts back exactly.
    assert np.array_equal(engine.run(x.astype(np.float64)), base)
    assert np.array_equal(engine.run(np.asfortranarray(x)), base)
    wide = np.zeros(x.shape[:3] + (2 * x.shape[3],), np.float32)
    wide[..., ::2] = x
    assert not wide[..., ::2].flags.c_contiguous
    assert np.array_equal(engine.run(wide[..., ::2]), base)


def test_float16_input_is_widened(case):
    _, engine, x, _ = case
    half = x.astype(np.float16)
    assert np.array_equal(engine.run(half), engine.run(half.astype(np.float32)))


def test_features_are_the_pooled_penultimate_layer(case):
    c, engine, x, _ = case
    features = engine.features(x)
    assert features.dtype == np.float32
    assert features.shape == (c["batch"], engine.info["features"])
    # The pool follows a ReLU: no feature is negative.
    assert (features >= 0).all()


def test_info_describes_the_checkpoint(case):
    c, engine, _, _ = case
    info = engine.info
    assert info["classes"] == c["classes"] == len(info["labels"])
    assert info["weights"].endswith(c["file"])
    assert info["adapter"]["name"]
    assert set(info["preprocess"]) >= {"resize", "crop", "interp", "mean", "std"}


def video_cases():
    import json

    cases = json.loads((FIXTURES / "video" / "manifest.json").read_text())
    # pytorchvideo's head pools cover only the model zoo's clip size; the torchvision
    # models pool adaptively, so their fixtures run as stored.
    return [c for c in cases if c["head_pool"] is None]


@pytest.mark.parametrize("c", video_cases(), ids=lambda c: c["name"])
def test_video_logits_match_pytorch(c):
    engine = resnet_wgpu.Engine(str(FIXTURES / "video" / c["weights"]))
    x = np.load(FIXTURES / "video" / c["input"])
    assert x.shape == (c["batch"], 3, c["frames"], c["height"], c["width"])
    got = engine.run(x)
    want = np.load(FIXTURES / "video" / c["logits"])
    assert got.shape == (c["batch"], c["classes"])
    assert relative_error(got, want) <= 1e-4
    # A video network takes clips, never images.
    with pytest.raises(ValueError, match="video network"):
        engine.run(x[:, :, 0])
