"""An exponential moving average of a network's weights over the updates of training.

The average starts as the weights after the first update. Each later update moves it
towards the new weights by ``1 - d``, with ``d = min(decay, (1 + n) / (10 + n))`` after
``n`` updates (the warm-up of TensorFlow's ``ExponentialMovingAverage``): its window, about
a tenth of the updates so far, grows to ``1 / (1 - decay)`` updates, so that a short run's
average does not reach back to its first, poorly fitted weights.
"""

import torch
from torch.optim.swa_utils import get_ema_multi_avg_fn

__all__ = ["WeightAverage", "copy_parameters"]


class WeightAverage:
    """The moving average of a module's parameters, kept as a list of tensors.

    Parameters
    ----------
    decay : float
        Share of the average kept at each update once warmed up, in [0, 1).

    Attributes
    ----------
    weights : list of torch.Tensor or None
        The averaged parameters, in the module's order; None before the first update.
    n_updates : int
        Updates averaged so far.
    """

    def __init__(self, decay):
        self.decay = decay
        self.weights = None
        self.n_updates = 0

    def update(self, module):
        """Take the module's current parameters into the average."""
        current = [parameter.detach() for parameter in module.parameters()]
        if self.weights is None:
            self.weights = [parameter.clone() for parameter in current]
            self.n_updates = 1
            return
        decay = min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))
        get_ema_multi_avg_fn(decay)(self.weights, current, None)
        self.n_updates += 1

    def copy_to(self, module):
        """Write the averaged parameters into ``module``'s."""
        copy_parameters(self.weights, module)


def copy_parameters(weights, module):
    """Write ``weights``, a list in the order of ``module.parameters()``, into the module."""
    with torch.no_grad():
        for parameter, weight in zip(module.parameters(), weights, strict=True):
            parameter.copy_(weight)
