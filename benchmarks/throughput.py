"""Seconds per PCD iteration, and inference rows per second, at the paper's setup.

The paper's setup: 28x28x1 inputs, the 32-32-64-64 conv encoder, 128 latent dimensions,
60 SGLD steps per update; the batch size is 100 here, as in the reference measurement of
the speed issue. Run::

    python benchmarks/throughput.py --iterations 10 --output benchmarks/results/throughput_cpu.json
"""

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch
from _common import IMAGE_SHAPE, TrainingClock, machine_info

from sklearn_cebm import CEBMEncoder


def _rows_per_second(function, X, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function(X)
        best = min(best, time.perf_counter() - start)
    return len(X) / best


def _peak_memory_mib(device):
    """Peak resident memory of this process (CPU) or peak allocated CUDA memory, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--sgld-steps", type=int, default=60)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    # One warm-up iteration, then the timed ones.
    n_images = args.batch_size * (args.iterations + 1)
    X = rng.uniform(0, 255, size=(n_images, 784)).astype(np.float32)
    encoder = CEBMEncoder(
        image_shape=IMAGE_SHAPE,
        batch_size=args.batch_size,
        sgld_steps=args.sgld_steps,
        max_iter=1,
        callbacks=[("clock", TrainingClock())],
        device=args.device,
        random_state=0,
    ).fit(X)
    durations = dict(encoder.net_.callbacks_)["clock"].batch_seconds_[1:]
    results = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(encoder.device_),
        "batch_size": args.batch_size,
        "sgld_steps": args.sgld_steps,
        "seconds_per_iteration_median": float(np.median(durations)),
        "seconds_per_iteration_min": float(np.min(durations)),
        "sgld_steps_per_second": args.sgld_steps / float(np.median(durations)),
        "transform_rows_per_second": _rows_per_second(encoder.transform, X),
        "score_samples_rows_per_second": _rows_per_second(encoder.score_samples, X),
    }
    results["peak_memory_mib"] = _peak_memory_mib(encoder.device_)
    results.update(machine_info())  # the CPU and its flags, threads and versions
    width = max(map(len, results))
    for key, value in results.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
