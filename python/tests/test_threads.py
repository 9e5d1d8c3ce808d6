"""One Engine shared by several Python threads, with the GIL released while the GPU works."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import resnet_wgpu
from conftest import FIXTURES


def test_threads_share_one_engine():
    engine = resnet_wgpu.Engine(FIXTURES / "resnet18.safetensors")
    x = np.load(FIXTURES / "resnet18.input.npy")
    # Two input sizes, so two plans run at once besides several callers of one plan.
    crops = [x, np.ascontiguousarray(x[:, :, :64, :64])]
    want = [engine.run(c) for c in crops]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda i: (i % 2, engine.run(crops[i % 2])), range(24)))
    for which, logits in got:
        assert np.array_equal(logits, want[which])


def test_the_gil_is_released_while_the_gpu_works():
    engine = resnet_wgpu.Engine(FIXTURES / "resnet50.safetensors")
    x = np.repeat(np.load(FIXTURES / "resnet50.input.npy"), 16, axis=0)
    engine.run(x)  # plan and pipelines made once, outside the measurement
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.01)
    before, start = ticks, time.perf_counter()
    engine.run(x)
    seconds, during = time.perf_counter() - start, ticks - before
    done.set()
    counter.join()
    # With the GIL held the counter could not tick at all during the call (the caller never
    # gives it up inside Rust); released, it ticks about once a millisecond.
    assert seconds > 0.05, f"the run took {seconds:.3f} s, too short to tell"
    assert during >= max(5, 0.1 * seconds / 0.001), (during, seconds)
