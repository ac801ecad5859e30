"""The IGEBM baseline (Du & Mordatch, 2019): a network with a scalar energy output."""

import torch
from torch import nn
from torch.nn import functional

from .encoders import initialize_layers
from .precision import run_in_precision

__all__ = ["ScalarEnergyModel"]


class ScalarEnergyModel(nn.Module):
    """An energy ``E(x) = w^T silu(f(x)) + b`` with a linear head on a feature network ``f``.

    The paper's IGEBM baseline: the CEBM's network, but whose last layer is read as hidden
    features ``h(x) = silu(f(x))`` of width ``H``, followed by a linear map to one scalar
    energy, without a latent variable. Its representation is ``h(x)`` (the paper's
    footnote 4: "features from the last layer of the energy function").

    Parameters
    ----------
    encoder : torch.nn.Module
        The feature network ``f``: maps a batch shaped ``(n, *input_shape)`` to ``(n, H)``.
    n_hidden : int
        Width ``H`` of the last hidden layer.
    input_shape : tuple of int
        Shape the encoder expects for one example; inputs arrive flat, ``(n, prod(shape))``.
    generator : torch.Generator, optional
        Draws the head's initial weights; the head is built on the meta device first, so
        building draws nothing from torch's global generator.

    Attributes
    ----------
    compute_dtype : torch.dtype or None
        The dtype the encoder's products run in under autocast in training mode
        (``torch.bfloat16``), or None for float32 throughout; the features and the head,
        and the whole model in eval mode, are float32 (as in
        :class:`~sklearn_cebm._core.model.ConjugateEnergyModel`).
    """

    # A class default, so that models pickled before it existed load as float32.
    compute_dtype = None

    def __init__(self, encoder, n_hidden, input_shape, generator=None):
        super().__init__()
        self.encoder = encoder
        with torch.device("meta"):
            head = nn.Linear(n_hidden, 1)
        self.head = head.to_empty(device="cpu")
        initialize_layers(self.head, generator)
        self.input_shape = tuple(input_shape)

    def features(self, x):
        """Activations ``silu(f(x))`` of the last hidden layer, shape ``(n, H)``.

        Raises
        ------
        ValueError
            If the encoder's output is not of shape ``(n, H)``.
        """
        compute_dtype = self.compute_dtype if self.training else None
        raw = run_in_precision(
            self.encoder, x.reshape(x.shape[0], *self.input_shape), compute_dtype
        )
        expected = (x.shape[0], self.head.in_features)
        if raw.ndim != 2 or tuple(raw.shape) != expected:
            raise ValueError(
                f"The encoder must return a tensor of shape (n_samples, {expected[1]}); it "
                f"returned {tuple(raw.shape)}."
            )
        return functional.silu(raw)

    def forward(self, x):
        """Energy ``E(x)`` of a flat batch, shape ``(n,)``."""
        return self.head(self.features(x)).squeeze(-1)
