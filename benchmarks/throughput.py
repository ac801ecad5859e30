"""Seconds per PCD iteration, and inference rows per second, at the paper's setup.

The paper's setup: 28x28x1 inputs, the 32-32-64-64 conv encoder, 128 latent dimensions,
60 SGLD steps per update; the batch size is 100 here, as in the reference measurement of
the speed issue. Each ``--precision`` is measured in turn, beside a probe of the
machine's matrix-product rate in that precision: the floating-point operations of one
iteration (counted by ``torch.utils.flop_counter``) divided by that rate is the time the
iteration would take if all of it ran at the rate of a large square matrix product, the
limit the measured time is compared with. Run::

    python benchmarks/throughput.py --iterations 10 --precision float32 bfloat16 \
        --output benchmarks/results/throughput.json
"""

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch
from _common import IMAGE_SHAPE, GraphedUpdates, TrainingClock, machine_info
from skorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from sklearn_cebm import CEBMEncoder


def _rows_per_second(function, X, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function(X)
        best = min(best, time.perf_counter() - start)
    return len(X) / best


def matrix_product_rate(dtype, device, size=2048, repeats=10):
    """Floating-point operations per second of a ``size`` square matrix product in ``dtype``."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, generator=generator, device=device).to(dtype)
    b = torch.randn(size, size, generator=generator, device=device).to(dtype)
    best = np.inf
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        a @ b
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _FlopCount(TorchDispatchMode):
    """Sums the operations of the matrix products and convolutions dispatched under it.

    torch's ``FlopCounterMode`` tracks modules with hooks that ``torch.autograd.grad``
    (SGLD's input gradient) refuses; its per-operation counts are used here without them.
    """

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


def iteration_flops(encoder, X):
    """Floating-point operations of one PCD iteration (SGLD and update) of a fitted encoder."""
    net = encoder.net_
    x = torch.as_tensor(X[: encoder.batch_size] / 127.5 - 1.0, dtype=torch.float32)
    with _FlopCount() as counter:
        net.train_step_single((x, None))
    net.optimizer_.zero_grad()
    return counter.flops


class CompiledEnergy(Callback):
    """Runs training's energy (the module's forward, and so its input gradient in SGLD)
    through ``torch.compile`` with ``mode``; inference afterwards runs eager again.

    ``mode='reduce-overhead'`` replays the compiled passes as CUDA graphs, which removes
    the launch overhead of the many small kernels of an SGLD step on a GPU.
    """

    def __init__(self, mode):
        self.mode = mode

    def on_train_begin(self, net, **kwargs):
        module = net.module_
        module.forward = torch.compile(module.forward, mode=self.mode)

    def on_train_end(self, net, **kwargs):
        del net.module_.forward  # back to the class's eager forward


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
    parser.add_argument(
        "--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16", "auto"]
    )
    parser.add_argument(
        "--matrix-size", type=int, default=2048, help="side of the probe's square matrices"
    )
    parser.add_argument(
        "--compile",
        default=None,
        choices=["default", "reduce-overhead", "max-autotune"],
        help="train with the energy under torch.compile in this mode (the first iterations, "
        "which compile, are not timed)",
    )
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="on CUDA, replay each PCD update as one CUDA graph (the eager updates before "
        "its capture, and the capture, are not timed)",
    )
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    results = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "sgld_steps": args.sgld_steps,
    }
    # One warm-up iteration, then the timed ones. Compiling takes the first iterations:
    # one graph for SGLD's frozen weights, one for the update's.
    # CUDA graphs: three eager updates, then the capture and the first replay.
    skipped = 3 if args.compile is not None else 5 if args.cuda_graphs else 1
    n_images = args.batch_size * (args.iterations + skipped)
    X = rng.uniform(0, 255, size=(n_images, 784)).astype(np.float32)
    results["compile"] = args.compile
    results["cuda_graphs"] = args.cuda_graphs
    for precision in args.precision:
        callbacks = [("clock", TrainingClock())]
        if args.compile is not None:
            callbacks.append(("compile", CompiledEnergy(args.compile)))
        if args.cuda_graphs:
            callbacks.append(("cuda_graphs", GraphedUpdates()))
        encoder = CEBMEncoder(
            image_shape=IMAGE_SHAPE,
            batch_size=args.batch_size,
            sgld_steps=args.sgld_steps,
            max_iter=1,
            callbacks=callbacks,
            device=args.device,
            precision=precision,
            random_state=0,
        ).fit(X)
        durations = dict(encoder.net_.callbacks_)["clock"].batch_seconds_[skipped:]
        median = float(np.median(durations))
        compute_dtype = torch.bfloat16 if encoder.precision_ == "bfloat16" else torch.float32
        rate = matrix_product_rate(compute_dtype, encoder.device_, size=args.matrix_size)
        flops = iteration_flops(encoder, X)
        results["device"] = str(encoder.device_)
        results[precision] = {
            "precision_": encoder.precision_,
            "seconds_per_iteration_median": median,
            "seconds_per_iteration_min": float(np.min(durations)),
            "sgld_steps_per_second": args.sgld_steps / median,
            "iteration_gflop": flops / 1e9,
            "matrix_product_gflop_per_second": rate / 1e9,
            "seconds_per_iteration_limit": flops / rate,
            "median_over_limit": median / (flops / rate),
            "transform_rows_per_second": _rows_per_second(encoder.transform, X),
            "score_samples_rows_per_second": _rows_per_second(encoder.score_samples, X),
        }
    results["peak_memory_mib"] = _peak_memory_mib(encoder.device_)
    results.update(machine_info())  # the CPU and its flags, threads and versions
    flat = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": entry for name, entry in value.items()})
        else:
            flat[key] = value
    width = max(map(len, flat))
    for key, value in flat.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
