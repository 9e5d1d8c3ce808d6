#!/usr/bin/env python3
"""Batch inference over a folder of images or videos with Ray Data and resnet_wgpu.

    python examples/ray_batch.py INPUT_DIR --output preds.jsonl [--actors N] [--batch-size B]

Ray Data reads the image files (recursively: png, jpg, jpeg, webp, bmp, jfif), and
`map_batches` sends them to a pool of actors, each holding one `resnet_wgpu.Engine`; with GPUs
in the cluster every actor takes one. Each image becomes one JSON line in the shape of
`resnet classify --json`: {"image": path, "top": [{"class", "label", "prob"}]}, named by its
path under INPUT_DIR as given, as the CLI names it. Lines come in the order batches finish.

Videos: when INPUT_DIR holds video files (mp4, webm, mkv, avi, mov, gif, m4v, mpg, mpeg;
recursively), each is one line, classified as `resnet classify INPUT_DIR` does (the embedded
default video model unless --weights; --frames, --clips, --frame-stride as the CLI's); with
--frame-folders each folder directly under INPUT_DIR is one video of its images, as
`resnet classify --weights W INPUT_DIR/*/` does. Ray Data spreads the paths, the actors
decode them (through ffmpeg), so on a cluster INPUT_DIR must be on a shared filesystem.

Without RAY_ADDRESS a local Ray starts on this machine; with it (e.g. RAY_ADDRESS=auto on a
cluster node, or ray://head:10001) the job joins that cluster, whose workers need
resnet_wgpu installed and INPUT_DIR readable (a shared filesystem, or an s3:// / gs:// URI).
"""

import argparse
import json
import os
import sys
import time

import ray

import resnet_wgpu

IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "bmp", "jfif"]
# As the library's `video::is_video_file` (animated GIFs count as videos).
VIDEO_EXTENSIONS = ["mp4", "webm", "mkv", "avi", "mov", "gif", "m4v", "mpg", "mpeg"]


class Classifier:
    """One Engine per actor, loaded once and reused for every batch the actor gets."""

    def __init__(self, weights, top_k, adapter):
        self.engine = resnet_wgpu.Engine(weights, adapter=adapter)
        self.top_k = top_k

    def __call__(self, batch):
        images = list(batch["bytes"])
        predictions = self.engine.classify(images, top_k=self.top_k, batch_size=len(images))
        return {
            "path": batch["path"],
            "top": [json.dumps(p["top"]) for p in predictions],
        }


class VideoClassifier:
    """One Engine per actor for a video network; a batch is a list of video paths."""

    def __init__(self, weights, top_k, adapter, clip_args):
        self.engine = resnet_wgpu.Engine(weights, adapter=adapter, video=weights is None)
        self.top_k = top_k
        self.clip_args = clip_args

    def __call__(self, batch):
        paths = [str(p) for p in batch["path"]]
        predictions = self.engine.classify(paths, top_k=self.top_k, **self.clip_args)
        return {"path": batch["path"], "top": [json.dumps(p["top"]) for p in predictions]}


def video_inputs(input_dir, frame_folders):
    """The videos under INPUT_DIR as absolute paths, sorted: its video files (recursively),
    or with `frame_folders` its subfolders; an empty list for a folder of images."""
    root = os.path.abspath(input_dir)
    if frame_folders:
        return sorted(e.path for e in os.scandir(root) if e.is_dir())
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        found += [os.path.join(folder, f) for f in files if f.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS]
    return sorted(found)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir", help="folder of images (or a URI Ray Data reads)")
    parser.add_argument("--output", required=True, help="JSON Lines file to write")
    parser.add_argument("--actors", type=int, default=1, help="actors, one Engine each")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch")
    parser.add_argument("--weights", help="safetensors checkpoint (default: embedded model)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--adapter", help="part of the GPU's name to pick")
    parser.add_argument("--frames", type=int, help="videos: frames per clip (default: the weights')")
    parser.add_argument("--clips", type=int, default=1, help="videos: clips per video")
    parser.add_argument("--frame-stride", type=int, default=1, help="videos: keep every S-th frame")
    parser.add_argument(
        "--frame-folders",
        action="store_true",
        help="each folder directly under INPUT_DIR is one video of its images",
    )
    parser.add_argument(
        "--num-cpus", type=int, help="CPUs of the local Ray (ignored when joining a cluster)"
    )
    args = parser.parse_args(argv)
    for name in ("actors", "batch_size", "top_k", "clips", "frame_stride"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def image_name(path, input_dir):
    """The path as `resnet classify INPUT_DIR` prints it: under INPUT_DIR as given (Ray
    reports local files by their absolute path)."""
    if "://" in input_dir:
        return path
    return os.path.join(input_dir, os.path.relpath(path, os.path.abspath(input_dir)))


def classify_folder(args):
    """Runs the pipeline; returns how many images it wrote."""
    resources = ray.cluster_resources()
    has_gpus = resources.get("GPU", 0) > 0
    # Without GPUs the actors compute on the CPU adapter, but each reserving a whole CPU could
    # take every one and starve the file reads the actors wait for (a deadlock on a small
    # machine): leave one whole CPU to the reads, which reserve one per task.
    spare = max(resources.get("CPU", 1) - 1, 0)
    cpus_per_actor = 1 if has_gpus else min(1.0, spare / args.actors)
    weights = os.path.abspath(args.weights) if args.weights else None
    constructor = {"weights": weights, "top_k": args.top_k, "adapter": args.adapter}
    videos = [] if "://" in args.input_dir else video_inputs(args.input_dir, args.frame_folders)
    if videos:
        # Paths, not bytes: the videos are decoded where they are classified.
        ds = ray.data.from_items([{"path": p} for p in videos])
        actor = VideoClassifier
        constructor["clip_args"] = {
            "frames": args.frames,
            "clips": args.clips,
            "frame_stride": args.frame_stride,
            "batch_size": args.batch_size,
        }
    elif args.frame_folders:
        raise SystemExit(f"{args.input_dir}: no folders of frames in it")
    else:
        ds = ray.data.read_binary_files(
            args.input_dir, include_paths=True, file_extensions=IMAGE_EXTENSIONS
        )
        actor = Classifier
    predictions = ds.map_batches(
        actor,
        fn_constructor_kwargs=constructor,
        batch_size=args.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        num_gpus=1 if has_gpus else 0,
        num_cpus=cpus_per_actor,
    )
    count = 0
    with open(args.output, "w") as out:
        for row in predictions.iter_rows():
            line = {"image": image_name(row["path"], args.input_dir), "top": json.loads(row["top"])}
            out.write(json.dumps(line) + "\n")
            count += 1
    return count


def main(argv=None):
    args = parse_args(argv)
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(num_cpus=args.num_cpus)
    ray.data.DataContext.get_current().enable_progress_bars = False
    start = time.perf_counter()
    count = classify_folder(args)
    seconds = time.perf_counter() - start
    print(
        f"{count} images in {seconds:.2f} s ({count / seconds:.1f} images/s) "
        f"with {args.actors} actor(s), batch {args.batch_size} -> {args.output}",
        file=sys.stderr,
    )
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main())
