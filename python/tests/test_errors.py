"""Bad input raises ValueError in the library's words, never a crash."""

import numpy as np
import pytest

import resnet_wgpu
from conftest import FIXTURES, ROOT


@pytest.fixture(scope="module")
def tiny():
    return resnet_wgpu.Engine(FIXTURES / "tiny.safetensors")


@pytest.mark.parametrize(
    "x, words",
    [
        (np.zeros((2, 3, 23), np.float32), "expected (N, 3, H, W)"),
        (np.zeros((2, 1, 23, 29), np.float32), "input has 1 channels"),
        (np.zeros((2, 3, 23, 29), np.int64), "dtype is int64"),
        (np.zeros((2, 3, 23, 29), np.complex64), "dtype is complex64"),
        (np.zeros((1, 3, 4, 23, 29), np.float32), "expected (N, 3, H, W) images"),
        (np.zeros((0, 3, 23, 29), np.float32), "invalid input shape"),
        (np.zeros((1, 3, 0, 29), np.float32), "invalid input shape"),
        ([["not", "numbers"]], "dtype is str"),
    ],
)
def test_bad_arrays(tiny, x, words):
    with pytest.raises(ValueError) as e:
        tiny.run(x)
    assert words.lower() in str(e.value).lower()


def test_bad_weights(tmp_path):
    with pytest.raises(ValueError, match="no-such.safetensors"):
        resnet_wgpu.Engine(tmp_path / "no-such.safetensors")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        resnet_wgpu.Engine(b"\x00" * 32)
    with pytest.raises(ValueError, match="an ensemble's members are not lists"):
        resnet_wgpu.Engine([[str(FIXTURES / "tiny.safetensors")]])
    with pytest.raises(ValueError, match="weights must be a path, bytes, a list of them"):
        resnet_wgpu.Engine(3)
    with pytest.raises(ValueError, match="no GPU adapter matches"):
        resnet_wgpu.Engine(adapter="no adapter has this name")


def test_weights_from_bytes_equal_the_file():
    path = FIXTURES / "tiny.safetensors"
    x = np.load(FIXTURES / "tiny.input.npy")
    by_bytes = resnet_wgpu.Engine(path.read_bytes())
    assert np.array_equal(by_bytes.run(x), resnet_wgpu.Engine(str(path)).run(x))


def test_bad_images(default_engine, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cases = [
        ([str(tmp_path / "missing.png")], "missing.png"),
        ([str(broken)], "broken.png: cannot read image"),
        ([b""], "<image 0>: cannot read image: the file is empty"),
        ([b"GIF89a"], "<image 0>: cannot read image"),
        ([np.zeros((8, 8), np.uint8)], "expected (H, W, 3) uint8"),
        ([np.zeros((8, 8, 3), np.float32)], "dtype float32"),
        ([3.5], "expected a path, bytes, a PIL.Image"),
        (42, "images must be a list"),
    ]
    for images, words in cases:
        with pytest.raises(ValueError) as e:
            default_engine.classify(images)
        assert words in str(e.value)
    with pytest.raises(ValueError, match="top_k and batch_size must be at least 1"):
        default_engine.classify([str(ROOT / "samples" / "0_0020.png")], top_k=0)


def test_headless_weights_refuse_classify_but_give_features():
    path = FIXTURES / "family" / "hf_resnetmodel_bare"
    files = sorted(path.glob("*.safetensors"))
    assert files, f"{path}: no checkpoint"
    engine = resnet_wgpu.Engine(files[0])
    with pytest.raises(ValueError, match="no classification head"):
        engine.classify([str(ROOT / "samples" / "0_0020.png")])
    x = np.zeros((1, 3, 64, 64), np.float32)
    features = engine.features(x)
    assert features.shape == (1, engine.info["features"])
    assert np.array_equal(engine.run(x), features)
