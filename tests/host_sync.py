"""A guard that catches host synchronisations: reads of device values, data-dependent shapes.

On a GPU these make the host wait for the device, and they cannot be captured in a CUDA
graph. On the CPU nothing waits, so the guard catches the calls that would: the Python
methods that read a tensor's values (``item``, ``tolist``, ``cpu``, ``numpy``, ``bool``,
``float``, ``int``), and, through a dispatch mode, the operators whose output shape
depends on values (``nonzero``, ``masked_select``, ``unique``, boolean-mask indexing) and
``_local_scalar_dense``, which every scalar read ends in.
"""

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

READING_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")

_aten = torch.ops.aten
DATA_DEPENDENT_OPERATORS = {
    _aten._local_scalar_dense.default,
    _aten.nonzero.default,
    _aten.masked_select.default,
    _aten._unique2.default,
    _aten.unique_dim.default,
    _aten.unique_consecutive.default,
}
INDEXING_OPERATORS = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default}


class HostSyncError(AssertionError):
    """A host synchronisation happened where none may."""


def _mask_index(args):
    indices = args[1] if len(args) > 1 else ()
    return any(
        isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)
        for index in indices
    )


class _DataDependentOperators(TorchDispatchMode):
    def __init__(self, found):
        super().__init__()
        self.found = found

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in DATA_DEPENDENT_OPERATORS or (func in INDEXING_OPERATORS and _mask_index(args)):
            self.found(f"aten operator {func}")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def host_syncs(forbid=True):
    """Catch host synchronisations in the block: raise at the first, or list them all.

    Yields the list of what was caught (empty where ``forbid``, which raises instead).
    """
    caught = []

    def found(what):
        if forbid:
            raise HostSyncError(f"host synchronisation: {what}")
        caught.append(what)

    originals = {name: getattr(torch.Tensor, name) for name in READING_METHODS}

    def patched(name):
        original = originals[name]

        def method(self, *args, **kwargs):
            found(f"Tensor.{name}")
            return original(self, *args, **kwargs)

        return method

    try:
        for name in READING_METHODS:
            setattr(torch.Tensor, name, patched(name))
        with _DataDependentOperators(found):
            yield caught
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
