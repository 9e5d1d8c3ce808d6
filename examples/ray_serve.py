#!/usr/bin/env python3
"""Online inference with Ray Serve and resnet_wgpu: POST an image, get its top-k classes.

    python examples/ray_serve.py [--weights W] [--replicas N] [--host 127.0.0.1] [--port 8000]
    curl --data-binary @samples/0_0020.png 'http://127.0.0.1:8000/?name=0_0020.png'

Each replica holds one Engine (and one GPU when the cluster has GPUs); `@serve.batch` gathers
concurrent requests into one GPU batch. The answer is one object in the shape of
`resnet classify --json`: {"image": name, "top": [{"class", "label", "prob"}]}, the name from
the `name` query parameter ("<upload>" without it). An image that cannot be decoded gets
HTTP 400 with the reason; the other requests of its batch are answered as usual.
Without RAY_ADDRESS a local Ray starts; with it the deployment goes to that cluster.
"""

import argparse
import asyncio
import os
import sys

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

import resnet_wgpu


@serve.deployment
class Classifier:
    def __init__(self, weights=None, top_k=5, max_batch_size=16, batch_wait_timeout_s=0.01):
        self.engine = resnet_wgpu.Engine(weights)
        self.top_k = top_k
        self.classify_batch.set_max_batch_size(max_batch_size)
        self.classify_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def classify_batch(self, images):
        """Top-k of each image's bytes; a ValueError in place of one that is refused."""
        try:
            return await asyncio.to_thread(self.engine.classify, images, self.top_k, len(images))
        except ValueError:
            # One bad upload must not fail its neighbours: retry them one by one.
            return [await asyncio.to_thread(self._one, image) for image in images]

    def _one(self, image):
        try:
            return self.engine.classify([image], self.top_k)[0]
        except ValueError as e:
            return e

    async def __call__(self, request: Request):
        body = await request.body()
        if not body:
            return JSONResponse({"error": "POST the bytes of an image file"}, status_code=400)
        result = await self.classify_batch(body)
        if isinstance(result, ValueError):
            return JSONResponse({"error": str(result)}, status_code=400)
        result["image"] = request.query_params.get("name", "<upload>")
        return JSONResponse(result)


def build_app(weights=None, top_k=5, max_batch_size=16, replicas=1):
    """The Serve application: `replicas` copies of the deployment, one GPU each if any."""
    has_gpus = ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0
    options = {"num_replicas": replicas, "ray_actor_options": {"num_gpus": 1 if has_gpus else 0}}
    return Classifier.options(**options).bind(
        weights=weights, top_k=top_k, max_batch_size=max_batch_size
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="safetensors checkpoint (default: embedded model)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    ray.init(address=os.environ.get("RAY_ADDRESS"))
    serve.start(http_options={"host": args.host, "port": args.port})
    weights = os.path.abspath(args.weights) if args.weights else None
    app = build_app(weights, args.top_k, args.max_batch_size, args.replicas)
    serve.run(app, blocking=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
