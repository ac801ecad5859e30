"""The ``accelerator`` parameter: one estimator trained on several processes or GPUs.

The estimators that take it mix :class:`DataParallelMixin` in; the training itself is
:func:`~sklearn_cebm._training.data_parallel.data_parallel`'s, on skorch's ``AccelerateMixin``.
"""

import numpy as np
import torch
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import _num_samples

from .._training.checkpoint import EpochCheckpoint
from .._training.data_parallel import check_accelerator, data_parallel

__all__ = ["ACCELERATOR_DOC", "DataParallelMixin"]

# The entry of the estimators' Parameters sections (see docstrings.fill_docstring),
# indented as the entries it is appended to.
ACCELERATOR_DOC = """
    accelerator : accelerate.Accelerator or None
        Train one model on the processes of a Hugging Face ``Accelerator`` (skorch's
        ``AccelerateMixin``): run the same script with ``accelerate launch --num_processes
        N``, and each process takes ``batch_size`` rows per update (the global batch is
        ``N * batch_size``) and ``buffer_size / N`` of the chains, while the gradients are
        averaged over all. After fit every process holds the same model; save it from
        ``accelerator.is_main_process``. ``device`` must be 'auto' or the accelerator's
        device, its ``mixed_precision`` 'no' (``precision`` sets it) and its gradient
        accumulation 1. Not pickled: a model trained on N processes loads with
        ``accelerator=None``. See the Scaling up guide.
"""


class DataParallelMixin:
    """Adds the ``accelerator`` parameter to an energy estimator trained by a net of
    :mod:`sklearn_cebm._training.nets`.

    Stands left of the estimator's base; the estimator lists ``accelerator`` in its
    ``__init__`` and merges :attr:`_accelerator_constraints` into its constraints.
    """

    _accelerator_constraints = {
        "accelerator": [None, HasMethods(["prepare", "unwrap_model", "gather", "reduce"])]
    }

    def _training_device(self):
        """The accelerator's device where there is one (this process's GPU, or the CPU)."""
        if self.accelerator is None:
            return super()._training_device()
        check_accelerator(self.accelerator)
        device = torch.device(self.accelerator.device)
        if device.type == "cpu":  # accelerate's 'cpu:0' would tag the pickled weights so
            device = torch.device("cpu")  # that a plain process cannot load them
        if not (isinstance(self.device, str) and self.device == "auto"):
            if torch.device(self.device) != device:
                raise ValueError(
                    f"device={self.device!r} differs from the accelerator's device "
                    f"{str(device)!r}: with an accelerator, leave device='auto'."
                )
        return device

    def _train(self, X_unit, epochs):
        if self.accelerator is None:
            return super()._train(X_unit, epochs)
        if any(isinstance(callback, EpochCheckpoint) for _, callback in self.net_.callbacks_):
            raise ValueError(
                "EpochCheckpoint is not supported with an accelerator: every process "
                "would write the file. Use accelerator=None, or save the fitted model "
                "from the main process."
            )
        with data_parallel(self.net_, self.accelerator):
            super()._train(X_unit, epochs)

    def _record_training_score_extremes(self, X):
        """Each process scores its share of the rows, and the extremes are combined: the
        pass over X after training is as parallel as training was."""
        accelerator = self.accelerator
        n_rows = _num_samples(X)
        if accelerator is None or not 1 < accelerator.num_processes <= n_rows:
            return super()._record_training_score_extremes(X)
        rows = np.arange(accelerator.process_index, n_rows, accelerator.num_processes)
        super()._record_training_score_extremes(_safe_indexing(X, rows))
        local = [-self.lowest_training_score_, self.highest_training_gradient_norm_]
        local = torch.tensor([local], dtype=torch.float64, device=accelerator.device)
        highest = accelerator.gather(local).max(dim=0).values.tolist()
        self.lowest_training_score_ = -highest[0]
        self.highest_training_gradient_norm_ = highest[1]

    def __getstate__(self):
        # The accelerator belongs to the processes that trained, not to the model.
        state = dict(super().__getstate__())  # a copy: it may be the live __dict__
        if state.get("accelerator") is not None:
            state["accelerator"] = None
        built = state.get("_params_at_build")
        if built is not None and built.get("accelerator") is not None:
            state["_params_at_build"] = dict(built, accelerator=None)
        return state
