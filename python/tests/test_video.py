"""Video networks through Engine.classify: the embedded default video model (video=True) on
samples_video/ gives `resnet classify --json samples_video`'s JSON; clip arguments as the
CLI's; images and image arguments refused where they do not apply."""

import json
import subprocess

import numpy as np
import pytest

import resnet_wgpu
from conftest import FIXTURES, ROOT

VIDEOS = ROOT / "samples_video"


def video_paths():
    return [f"samples_video/{p.name}" for p in sorted(VIDEOS.iterdir()) if p.suffix == ".gif"]


def cli_json(cli, *args):
    out = subprocess.run(
        [str(cli), "classify", "--json", *args], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def video_engine():
    return resnet_wgpu.Engine(video=True)


def test_default_video_model_gives_the_cli_json(video_engine, cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert video_engine.info["classes"] == 8
    assert video_engine.classify(video_paths()) == cli_json(cli, "samples_video")
    two = video_paths()[:2]
    got = video_engine.classify(two, clips=2, frame_stride=2, batch_size=1, top_k=3)
    assert got == cli_json(cli, *two, "--clips", "2", "--frame-stride", "2", "--top-k", "3")


def test_video_arguments_are_checked(video_engine, default_engine):
    with pytest.raises(ValueError, match="video network classifies videos given by path"):
        video_engine.classify([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="apply to a video network"):
        default_engine.classify(["samples/0_0020.png"], clips=2)
    with pytest.raises(ValueError, match="weights=None"):
        resnet_wgpu.Engine(str(FIXTURES / "resnet18.safetensors"), video=True)
