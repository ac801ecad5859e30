"""The VAE baseline: mirrored decoders, the Gaussian model and its evidence lower bound.

The encoder is one of :mod:`sklearn_cebm._core.encoders` with ``2 K`` outputs, read as the
mean and the (softplus-transformed) std of a diagonal Gaussian posterior ``q(z | x)``. The
prior is a module: the standard normal here, or the mixture of
:mod:`sklearn_cebm._core.mixture_prior`.
"""

import math

import torch
from torch import nn
from torch.nn import functional

from .encoders import (
    PAPER_CONV_CHANNELS,
    PAPER_CONV_KERNELS,
    PAPER_CONV_STRIDES,
    gaussian_code,
    initialize_layers,
    silu_layers,
)

__all__ = [
    "ConvDecoder",
    "MLPDecoder",
    "StandardNormalPrior",
    "VariationalAutoencoder",
    "gaussian_kl_to_standard_normal",
    "gaussian_log_likelihood",
]

# Keeps the likelihood from collapsing to a point mass.
_MIN_OBSERVATION_STD = 1e-3


def gaussian_kl_to_standard_normal(mean, std):
    """``KL(N(mean, diag(std**2)) || N(0, I))`` per row, in closed form.

    ``KL = 1/2 sum_k (mean_k**2 + std_k**2 - 1 - 2 log std_k)``.

    Parameters
    ----------
    mean, std : torch.Tensor of shape (n, K)

    Returns
    -------
    torch.Tensor of shape (n,)
    """
    return 0.5 * (mean**2 + std**2 - 1.0 - 2.0 * torch.log(std)).sum(dim=-1)


def gaussian_log_likelihood(x, mean, std):
    """``log N(x; mean, std**2 I)`` summed over the last axis; ``std`` broadcasts.

    Parameters
    ----------
    x, mean : torch.Tensor of shape (..., D)
    std : torch.Tensor, broadcastable to ``x``

    Returns
    -------
    torch.Tensor of shape (...)
    """
    std = torch.broadcast_to(std, x.shape)
    log_density = -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return log_density.sum(dim=-1)


class StandardNormalPrior(nn.Module):
    """The prior ``p(z) = N(0, I)`` over ``K`` dimensions; it has no parameters.

    Parameters
    ----------
    n_latent : int
        Dimension K.
    """

    def __init__(self, n_latent):
        super().__init__()
        self.n_latent = int(n_latent)

    def kl_divergence(self, mean, std):
        """``KL(q(z | x) || N(0, I))`` per row, ``(n,)``: :func:`gaussian_kl_to_standard_normal`."""
        return gaussian_kl_to_standard_normal(mean, std)

    def sample(self, n_samples, generator):
        """``n_samples`` draws ``(n_samples, K)`` from ``generator``, on the CPU."""
        return torch.randn((n_samples, self.n_latent), generator=generator)


def _conv_sizes(size, kernels, strides, padding=1):
    """Spatial size before each of the encoder's convolutions, and after the last."""
    sizes = [size]
    for kernel, stride in zip(kernels, strides, strict=True):
        sizes.append((sizes[-1] + 2 * padding - kernel) // stride + 1)
    return sizes


class ConvDecoder(nn.Module):
    """The mirror of :class:`~sklearn_cebm._core.encoders.ConvEncoder`.

    A linear layer to the encoder's last feature map, then transposed SiLU convolutions with
    the encoder's kernels and strides in reverse (output padding restores each size), the
    last one to the image's channels with no activation.

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)`` of one output.
    n_latent : int
        Dimension K of the input code.
    channels, kernel_sizes, strides : tuple of int
        The encoder's convolutions; defaults are the paper's.
    """

    def __init__(
        self,
        image_shape,
        n_latent,
        channels=PAPER_CONV_CHANNELS,
        kernel_sizes=PAPER_CONV_KERNELS,
        strides=PAPER_CONV_STRIDES,
    ):
        super().__init__()
        heights = _conv_sizes(image_shape[1], kernel_sizes, strides)
        widths = _conv_sizes(image_shape[2], kernel_sizes, strides)
        if heights[-1] < 1 or widths[-1] < 1:
            raise ValueError(
                f"image_shape={tuple(image_shape)} is too small for the convolutional decoder."
            )
        self.map_shape = (channels[-1], heights[-1], widths[-1])
        self.head = nn.Linear(n_latent, math.prod(self.map_shape))
        layers = []
        out_channels = (image_shape[0], *channels[:-1])
        for index in reversed(range(len(channels))):
            kernel, stride = kernel_sizes[index], strides[index]
            padding = tuple(
                size[index] - ((size[index + 1] - 1) * stride - 2 + kernel)
                for size in (heights, widths)
            )
            layers.append(
                nn.ConvTranspose2d(
                    channels[index],
                    out_channels[index],
                    kernel,
                    stride,
                    padding=1,
                    output_padding=padding,
                )
            )
            layers.append(nn.SiLU())
        self.layers = nn.Sequential(*layers[:-1])

    def forward(self, z):
        """Output means, flattened to ``(n, channels * height * width)``."""
        feature_map = functional.silu(self.head(z)).reshape(z.shape[0], *self.map_shape)
        if feature_map.device.type == "cpu":
            # oneDNN's transposed convolutions run faster on channels-last maps: on 28x28
            # outputs, 1.8x the rows per second in inference and 1.4x in training (two
            # cores), the same values to float32 rounding.
            feature_map = feature_map.contiguous(memory_format=torch.channels_last)
        return self.layers(feature_map).flatten(start_dim=1)


class MLPDecoder(nn.Module):
    """The mirror of :class:`~sklearn_cebm._core.encoders.MLPEncoder`: hidden widths reversed.

    Parameters
    ----------
    n_features : int
        Output width.
    hidden_layer_sizes : tuple of int
        The encoder's hidden widths (used in reverse).
    n_latent : int
        Dimension K of the input code.
    """

    def __init__(self, n_features, hidden_layer_sizes, n_latent):
        super().__init__()
        hidden = reversed(tuple(hidden_layer_sizes))
        self.layers = nn.Sequential(*silu_layers(n_latent, hidden, n_features))

    def forward(self, z):
        return self.layers(z)


def build_decoder(image_shape, hidden_layer_sizes, n_features, n_latent, generator):
    """A :class:`ConvDecoder` for ``image_shape``, else an :class:`MLPDecoder`, initialised.

    Built on the meta device and initialised from ``generator``, so building draws nothing
    from torch's global generator.
    """
    with torch.device("meta"):
        if image_shape is not None:
            decoder = ConvDecoder(tuple(image_shape), n_latent)
        else:
            decoder = MLPDecoder(n_features, hidden_layer_sizes, n_latent)
    decoder = decoder.to_empty(device="cpu")
    initialize_layers(decoder, generator)
    return decoder


class VariationalAutoencoder(nn.Module):
    """A VAE with a Gaussian likelihood (Kingma & Welling, 2014), by default on ``N(0, I)``.

    ``p(z) = N(0, I)`` unless another ``prior`` is given,
    ``p(x | z) = N(decoder(z), sigma**2 I)`` with one learned ``sigma``; the posterior
    ``q(z | x) = N(mu(x), diag(s(x)**2))`` takes ``mu`` and ``softplus`` of the other half
    of the encoder's ``2 K`` outputs. The evidence lower bound

        ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)) <= log p(x)

    has its KL term in closed form (the prior's ``kl_divergence``) and its first term
    estimated with reparameterised draws ``z = mu + s * eps``.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps a batch shaped ``(n, *input_shape)`` to ``(n, 2 * K)``.
    decoder : torch.nn.Module
        Maps codes ``(m, K)`` to flat means ``(m, prod(input_shape))``.
    input_shape : tuple of int
        Shape the encoder expects for one example; inputs arrive flat.
    n_latent : int
        Dimension K.
    score_noise : torch.Tensor of shape (S, K), optional
        The draws ``eps`` :meth:`forward` uses, the same for every row, so that it is a
        deterministic function of each row alone; ``None`` for one draw at zero (the mean).
    prior : torch.nn.Module, optional
        Offers ``kl_divergence(mean, std) -> (n,)``, the ELBO's KL term for the posterior
        ``N(mean, diag(std**2))``, and ``sample(n, generator, ...) -> (n, K)``; ``None`` for
        the :class:`StandardNormalPrior`.
    """

    def __init__(self, encoder, decoder, input_shape, n_latent, score_noise=None, prior=None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.input_shape = tuple(input_shape)
        self.n_latent = int(n_latent)
        self.observation_std_raw = nn.Parameter(torch.zeros(()))
        if score_noise is None:
            score_noise = torch.zeros(1, self.n_latent)
        self.register_buffer("score_noise", torch.as_tensor(score_noise, dtype=torch.float32))
        self.prior = StandardNormalPrior(self.n_latent) if prior is None else prior

    def observation_std(self):
        """The likelihood's std ``sigma``, above a small floor."""
        return functional.softplus(self.observation_std_raw) + _MIN_OBSERVATION_STD

    def posterior_mean_std(self, x):
        """Mean and std of ``q(z | x)``, each ``(n, K)``.

        Raises
        ------
        ValueError
            If the encoder's output is not of shape ``(n, 2 * K)``.
        """
        return gaussian_code(self.encoder, x, self.input_shape, self.n_latent)

    def decode(self, z):
        """Means of ``p(x | z)`` for codes ``(m, K)``, flat ``(m, D)``."""
        return self.decoder(z)

    def expected_log_likelihood(self, x, mean, std, noise):
        """Monte Carlo ``E_q[log p(x | z)]`` over the draws ``z = mean + std * noise``.

        Parameters
        ----------
        x : torch.Tensor of shape (n, D)
        mean, std : torch.Tensor of shape (n, K)
        noise : torch.Tensor of shape (S, n, K) or (S, 1, K)

        Returns
        -------
        torch.Tensor of shape (n,)
        """
        z = mean + std * noise
        n_draws = z.shape[0]
        means = self.decode(z.reshape(-1, self.n_latent)).reshape(n_draws, x.shape[0], -1)
        return gaussian_log_likelihood(x, means, self.observation_std()).mean(dim=0)

    def elbo(self, x, noise):
        """The evidence lower bound of each row of a flat batch ``x``, shape ``(n,)``.

        Parameters
        ----------
        x : torch.Tensor of shape (n, D)
        noise : torch.Tensor of shape (S, n, K) or (S, 1, K)
            Standard normal draws for the reparameterisation.
        """
        mean, std = self.posterior_mean_std(x)
        reconstruction = self.expected_log_likelihood(x, mean, std, noise)
        return reconstruction - self.prior.kl_divergence(mean, std)

    def prior_method(self, name):
        """``x -> prior.<name>(mean, std)`` at the posterior ``q(z | x)`` of x.

        Lets callers reach what a particular prior offers (a mixture's
        ``responsibilities``) without a method here for each.
        """
        method = getattr(self.prior, name)

        def apply(x):
            return method(*self.posterior_mean_std(x))

        return apply

    def forward(self, x):
        """Negative ELBO with the fixed ``score_noise``, an energy-like ``(n,)`` tensor."""
        return -self.elbo(x, self.score_noise.unsqueeze(1))
