"""Scratch probe (2026-12-02, issue 14): one SGLD step's SiLU work at the paper's setup,
against the machine's copy bandwidth. Two torch threads; from the repository root:

    python benchmarks/results/throughput_silu_floor.py
"""

import time

import numpy as np
import torch

# The conv net's four activations for a batch of 100 28x28 images.
SHAPES = [(100, 32, 28, 28), (100, 32, 14, 14), (100, 64, 7, 7), (100, 64, 3, 3)]


def median_seconds(function, repeats=20):
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    torch.set_num_threads(2)
    source = torch.empty(64 * 2**20)
    target = torch.empty_like(source)
    seconds = median_seconds(lambda: target.copy_(source), repeats=10)
    bandwidth = 2 * source.numel() * 4 / seconds / 1e9
    print(f"copy bandwidth (read + write) {bandwidth:.1f} GB/s")
    for dtype in (torch.bfloat16, torch.float32):
        total_seconds = total_bytes = 0
        for shape in SHAPES:
            x = torch.randn(shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
            grad = torch.randn_like(x)
            forward = median_seconds(lambda x=x: torch.nn.functional.silu(x))
            backward = median_seconds(lambda x=x, g=grad: torch.ops.aten.silu_backward(g, x))
            # Forward: read x, write y. Backward: read x and the gradient, write the result.
            moved = x.numel() * x.element_size() * (2 + 3)
            total_seconds += forward + backward
            total_bytes += moved
            rate = moved / (forward + backward) / 1e9
            print(
                f"{dtype} silu {shape}: forward {1e3 * forward:.3f} ms, backward "
                f"{1e3 * backward:.3f} ms, {rate:.1f} GB/s"
            )
        print(
            f"{dtype} all four: {1e3 * total_seconds:.2f} ms per SGLD step (at the copy "
            f"bandwidth {1e3 * total_bytes / bandwidth / 1e9:.2f} ms); 60 steps "
            f"{60 * total_seconds:.3f} s"
        )


if __name__ == "__main__":
    main()
