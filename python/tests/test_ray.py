"""The Ray examples on a local Ray (2 CPUs): the batch job's predictions equal the CLI's, and
the Serve deployment answers a POSTed image with its top-k JSON on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, sample_paths

EXAMPLES = ROOT / "examples"


def local_env():
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    return env


def test_batch_job_predictions_equal_the_cli(tmp_path, cli_samples_json):
    output = tmp_path / "preds.jsonl"
    job = [sys.executable, str(EXAMPLES / "ray_batch.py"), "samples", "--output", str(output)]
    job += ["--actors", "2", "--batch-size", "5", "--num-cpus", "2"]
    subprocess.run(job, cwd=ROOT, env=local_env(), check=True, timeout=900)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(lines, key=lambda p: p["image"]) == cli_samples_json


def test_batch_job_on_a_video_folder_equals_the_cli(tmp_path, cli):
    # samples_video/ holds animated GIFs: the embedded default video model, as the CLI picks.
    output = tmp_path / "videos.jsonl"
    job = [sys.executable, str(EXAMPLES / "ray_batch.py"), "samples_video", "--output", str(output)]
    job += ["--actors", "1", "--batch-size", "4", "--num-cpus", "2", "--clips", "2"]
    subprocess.run(job, cwd=ROOT, env=local_env(), check=True, timeout=900)
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    want = subprocess.run(
        [str(cli), "classify", "--json", "--clips", "2", "samples_video"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    assert sorted(lines, key=lambda p: p["image"]) == json.loads(want.stdout)
    assert len(lines) == 8


@pytest.fixture(scope="module")
def serve_url():
    import ray
    from ray import serve

    # Replicas import the deployment's module by name: put examples/ on their path too.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(EXAMPLES))
    import ray_serve

    os.environ.pop("RAY_ADDRESS", None)
    ray.init(num_cpus=2, include_dashboard=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(ray_serve.build_app(top_k=3, max_batch_size=4))
    yield f"http://127.0.0.1:{port}/"
    serve.shutdown()
    ray.shutdown()


def post(url, body):
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_answers_a_posted_image(serve_url, default_engine, cli_samples_json):
    status, answer = post(serve_url + "?name=0_0020.png", (ROOT / sample_paths()[0]).read_bytes())
    assert status == 200
    assert answer == {"image": "0_0020.png", "top": cli_samples_json[0]["top"][:3]}


def test_serve_batches_concurrent_requests_and_refuses_bad_ones(serve_url, cli_samples_json):
    bodies = [(ROOT / p).read_bytes() for p in sample_paths()[:7]] + [b"not an image"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda b: post(serve_url, b), bodies))
    for (status, answer), want in zip(answers[:7], cli_samples_json):
        assert status == 200
        assert [s["class"] for s in answer["top"]] == [s["class"] for s in want["top"][:3]]
        for got, expected in zip(answer["top"], want["top"]):
            assert got["prob"] == pytest.approx(expected["prob"], rel=1e-4, abs=1e-6)
    status, answer = answers[7]
    assert status == 400
    assert "cannot read image" in answer["error"]
