"""The default model on samples/: the same JSON as `resnet classify --json`, from paths,
bytes, PIL images and arrays."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, sample_paths


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    # The CLI ran from the root and names images `samples/NAME`; so do these paths.
    monkeypatch.chdir(ROOT)


def test_paths_give_the_cli_json(default_engine, cli_samples_json):
    got = default_engine.classify(sample_paths())
    assert got == cli_samples_json
    assert len(got) == 16 and all(len(p["top"]) == 5 for p in got)


def test_top1_is_the_label_in_the_file_name(default_engine):
    # Trained to 98.9 % held-out accuracy; 15 of the 16 samples are right (weights/default.json).
    got = default_engine.classify(sample_paths(), top_k=1)
    right = sum(p["top"][0]["label"] == p["image"].split("/")[1][0] for p in got)
    assert right == 15


def test_bytes_pil_and_arrays_agree_with_paths(default_engine):
    paths = sample_paths()[:4]
    by_path = default_engine.classify(paths)
    blobs = [(ROOT / p).read_bytes() for p in paths]
    pils = [Image.open(io.BytesIO(b)) for b in blobs]
    arrays = [np.asarray(Image.open(ROOT / p).convert("RGB")) for p in paths]
    for other in (blobs, [bytearray(b) for b in blobs], pils, arrays):
        got = default_engine.classify(other)
        assert [p["top"] for p in got] == [p["top"] for p in by_path]
        assert [p["image"] for p in got] == [f"<image {i}>" for i in range(4)]
    # A PIL image opened from a file keeps the file's name.
    opened = default_engine.classify([Image.open(paths[0])])
    assert opened[0]["image"] == paths[0]


def test_a_single_image_and_any_batch_size(default_engine, cli_samples_json):
    one = default_engine.classify(sample_paths()[0], top_k=2)
    assert one == [{**cli_samples_json[0], "top": cli_samples_json[0]["top"][:2]}]
    for batch_size in (1, 5):
        got = default_engine.classify(sample_paths(), batch_size=batch_size)
        assert [[s["class"] for s in p["top"]] for p in got] == [
            [s["class"] for s in p["top"]] for p in cli_samples_json
        ]
        for g, c in zip(got, cli_samples_json):
            for gs, cs in zip(g["top"], c["top"]):
                assert gs["prob"] == pytest.approx(cs["prob"], rel=1e-4, abs=1e-6)


def test_strided_array_images(default_engine):
    rgb = np.asarray(Image.open(ROOT / sample_paths()[0]).convert("RGB"))
    # The same pixels stored column by column: a view that is not C-contiguous.
    transposed = np.ascontiguousarray(rgb.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert not transposed.flags.c_contiguous
    assert default_engine.classify([transposed])[0]["top"] == default_engine.classify([rgb])[0]["top"]


def test_info_of_the_default_model(default_engine):
    info = default_engine.info
    assert info["classes"] == 10
    assert info["labels"] == [str(d) for d in range(10)]
    assert info["weights"] == "<embedded default model>"
    json.dumps(info)
    assert "Engine(" in repr(default_engine)
