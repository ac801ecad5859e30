"""Reduced precision for the networks: bfloat16 matrix products where the hardware has them.

A network runs under ``torch.autocast`` with a lower ``compute_dtype``, so that its
convolutions and matrix products take bfloat16 inputs and accumulate in float32, and its
output is cast back to float32. What follows the network stays in float32: the log-normaliser
sums and the energies' reductions of the models, the SGLD states and their small steps,
the parameters and the optimiser's moments.
"""

import contextlib
import platform

import torch

__all__ = ["compute_dtype_for", "float32_products", "has_native_bfloat16", "run_in_precision"]

# CPU flags of instructions that compute bfloat16 products natively: AVX512-BF16 and AMX
# on x86 (/proc/cpuinfo), the BF16 extension on Arm (Features).
NATIVE_BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags, from Linux's ``/proc/cpuinfo``; empty where it cannot be read."""
    try:
        with open(path) as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name.strip().lower() in {"flags", "features"}:
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def has_native_bfloat16(device):
    """Whether ``device`` computes bfloat16 matrix products in hardware.

    On a CPU, one whose flags include AVX512-BF16, AMX-BF16 or Arm's BF16 (Linux; other
    systems say False); on CUDA, a GPU of compute capability 8.0 or more. Elsewhere
    bfloat16 is emulated, at no gain over float32, and this says False.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    bool
    """
    if device.type == "cpu":
        if platform.system() != "Linux":
            return False
        return bool(NATIVE_BFLOAT16_CPU_FLAGS & cpu_flags())
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return False


def compute_dtype_for(precision, device):
    """The networks' ``compute_dtype`` for a ``precision`` setting on ``device``.

    Parameters
    ----------
    precision : {'auto', 'float32', 'bfloat16'}
        'auto' is bfloat16 where :func:`has_native_bfloat16` says the device has it, and
        float32 elsewhere.
    device : torch.device

    Returns
    -------
    torch.dtype or None
        ``torch.bfloat16``, or None for float32.
    """
    if precision == "auto":
        precision = "bfloat16" if has_native_bfloat16(device) else "float32"
    return torch.bfloat16 if precision == "bfloat16" else None


def run_in_precision(network, x, compute_dtype):
    """``network(x)`` under autocast to ``compute_dtype``, its output(s) in float32.

    Parameters
    ----------
    network : callable
        Maps a tensor to a tensor.
    x : torch.Tensor
    compute_dtype : torch.dtype or None
        ``torch.bfloat16`` for autocast; None runs the network as it is.

    Returns
    -------
    torch.Tensor
        The output in float32.
    """
    if compute_dtype is None:
        return network(x)
    with torch.autocast(x.device.type, dtype=compute_dtype):
        output = network(x)
    return output.float()


@contextlib.contextmanager
def float32_products(module):
    """Within the block, run the networks of ``module`` in float32, whatever their
    ``compute_dtype``, and give each its own back after it.

    Parameters
    ----------
    module : torch.nn.Module
        A model whose submodules may carry a ``compute_dtype``.
    """
    reduced = [m for m in module.modules() if getattr(m, "compute_dtype", None) is not None]
    saved = [m.compute_dtype for m in reduced]
    for m in reduced:
        m.compute_dtype = None
    try:
        yield
    finally:
        for m, dtype in zip(reduced, saved, strict=True):
            m.compute_dtype = dtype
