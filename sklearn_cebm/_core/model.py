"""The conjugate energy-based model: an encoder of neural sufficient statistics and a bias."""

import torch
from torch import nn

from .encoders import encode_flat_batch
from .exponential_family import negative_precision_term

__all__ = ["INFERENCE_BATCH_SIZE", "ComponentEnergy", "ConjugateEnergyModel", "map_batches"]

# Rows per forward pass at inference: large enough to keep the kernels busy, small enough
# that a conv net's activations for 28x28 images stay well under a gigabyte.
INFERENCE_BATCH_SIZE = 1024


class ConjugateEnergyModel(nn.Module):
    """A CEBM ``p(x, z) proportional to exp(-E(x, z))`` with a conjugate bias (Eqs. 16-24).

    The encoder's output of width ``2 K`` is split into ``t_1(x)`` and an unconstrained
    ``u(x)``; ``t_2(x) = -(softplus(u(x)) + 1e-6)`` is strictly negative, so the posterior's
    second natural parameter ``lambda_2 + t_2(x)`` is negative for any input and any weights.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps a batch shaped ``(n, *input_shape)`` to ``(n, 2 * K)``.
    bias : torch.nn.Module
        A bias from :mod:`sklearn_cebm._core.biases` over ``K`` latent dimensions.
    input_shape : tuple of int
        Shape the encoder expects for one example; inputs arrive flat, ``(n, prod(shape))``.
    """

    def __init__(self, encoder, bias, input_shape):
        super().__init__()
        self.encoder = encoder
        self.bias = bias
        self.input_shape = tuple(input_shape)

    def sufficient_statistics(self, x):
        """Neural sufficient statistics ``(t_1(x), t_2(x))``, each of shape ``(n, K)``.

        Raises
        ------
        ValueError
            If the encoder's output is not of shape ``(n, 2 * K)``.
        """
        n_statistics = 2 * self.bias.natural_params()[0].shape[-1]
        raw = encode_flat_batch(
            self.encoder, x, self.input_shape, n_statistics, "two statistics per latent dimension"
        )
        statistic_1, unconstrained_2 = raw.chunk(2, dim=-1)
        return statistic_1, negative_precision_term(unconstrained_2)

    def forward(self, x):
        """Marginal energy ``E(x)`` of a flat batch, shape ``(n,)``."""
        return self.bias.energy(self.sufficient_statistics(x))

    def posterior_mean_std(self, x):
        """Mean and std of the conjugate posterior ``p(z | x)`` (Eq. 23)."""
        return self.bias.posterior_mean_std(self.sufficient_statistics(x))

    def bias_method(self, name):
        """``x -> bias.<name>(t(x))``: any statistic-to-output method of the bias applied to x.

        Lets callers reach what a particular bias offers beyond :meth:`forward` and
        :meth:`posterior_mean_std` (a mixture's ``responsibilities``, ``component_energy``)
        without a method here for each.
        """
        method = getattr(self.bias, name)

        def apply(x):
            return method(self.sufficient_statistics(x))

        return apply


class ComponentEnergy(nn.Module):
    """The energy ``E(x, y = component)`` of one mixture component, for SGLD on ``p(x | y)``.

    Wraps a :class:`ConjugateEnergyModel` whose bias has ``component_energy`` (see
    :class:`~sklearn_cebm._core.biases.GaussianMixtureBias`); the wrapped model's parameters
    are this module's, so :func:`~sklearn_cebm._core.sgld.frozen_parameters` freezes them.

    Parameters
    ----------
    model : ConjugateEnergyModel
    component : int
        Index of the mixture component.

    Raises
    ------
    ValueError
        If the mixture has no component ``component``.
    """

    def __init__(self, model, component):
        super().__init__()
        # The mixture as built, which a caller's own count of components may no longer match.
        n_components = model.bias.means.shape[0]
        if not 0 <= component < n_components:
            raise ValueError(
                f"component must be an integer in [0, {n_components}), the mixture's "
                f"components; got {component!r}."
            )
        self.model = model
        self.component = int(component)

    def forward(self, x):
        """``E(x, y = component)``, shape ``(n,)``."""
        energies = self.model.bias.component_energy(self.model.sufficient_statistics(x))
        return energies[:, self.component]


def map_batches(function, x, batch_size, device):
    """Apply ``function`` to ``x`` in batches under ``torch.inference_mode``.

    Parameters
    ----------
    function : callable
        Maps a tensor batch to a tensor or a tuple of tensors.
    x : numpy.ndarray or torch.Tensor
        Inputs, first axis the batch axis.
    batch_size : int
    device : torch.device

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        The outputs concatenated along the first axis, on the CPU.
    """
    x = torch.as_tensor(x)
    outputs = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size].to(device, torch.float32)
            result = function(batch)
            result = result if isinstance(result, tuple) else (result,)
            outputs.append(tuple(part.cpu() for part in result))
    joined = tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))
    return joined if len(joined) > 1 else joined[0]
