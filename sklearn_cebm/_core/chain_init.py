"""Where SGLD chains start: uniform noise on the sampler's box, or a Gaussian fitted to data.

Short-run chains (a few SGLD steps per update) stay close to where they start. Starting
them from a Gaussian fitted to the training data instead of uniform noise (Yang & Ji,
2021, "JEM++") puts them near the data from the first step, so the few steps refine
images rather than carve them out of noise.
"""

import torch

__all__ = ["GaussianChainInit", "UniformChainInit", "fit_chain_init"]

# Above this many features a full covariance (features**2 floats, a cubic Cholesky) is
# too costly to fit on every training call; the Gaussian then keeps its diagonal.
MAX_FULL_COVARIANCE_FEATURES = 4096
# The moments come from at most this many evenly spaced rows: plenty for the 784 pixels
# of Fashion-MNIST, and no random draw that would have to be seeded.
MAX_FIT_ROWS = 10_000
# Relative ridge on the covariance: it stays positive definite with fewer samples than
# features, or with constant pixels (a border that is always 0).
COVARIANCE_RIDGE = 1e-3


class UniformChainInit:
    """Uniform noise on ``[low, high)`` in every coordinate.

    Parameters
    ----------
    sample_shape : tuple of int
        Shape of one sample.
    low, high : float, default=(-1.0, 1.0)
    """

    def __init__(self, sample_shape, low=-1.0, high=1.0):
        self.sample_shape = tuple(sample_shape)
        self.low = low
        self.high = high

    def draw(self, n_samples, generator):
        """``(n_samples, *sample_shape)`` draws on the generator's device."""
        shape = (n_samples, *self.sample_shape)
        noise = torch.rand(shape, generator=generator, device=generator.device)
        return self.low + (self.high - self.low) * noise

    def to(self, device):
        """Nothing to move; returns ``self``."""
        return self


class GaussianChainInit:
    """A Gaussian ``N(mean, L L^T)`` clamped to the sampler's box.

    Parameters
    ----------
    mean : torch.Tensor of shape sample_shape
    scale : torch.Tensor of shape (d, d) or (d,)
        Lower Cholesky factor ``L`` of the covariance, or the per-coordinate std when the
        covariance is diagonal; ``d`` is the number of coordinates of a sample.
    bounds : tuple of float, default=(-1.0, 1.0)

    Notes
    -----
    Pickles with its tensors on the CPU; :meth:`to` moves them back.
    """

    def __init__(self, mean, scale, bounds=(-1.0, 1.0)):
        self.mean = mean
        self.scale = scale
        self.bounds = bounds

    @property
    def sample_shape(self):
        return tuple(self.mean.shape)

    def draw(self, n_samples, generator):
        """``(n_samples, *sample_shape)`` draws on the generator's device."""
        flat_mean = self.mean.reshape(-1)
        standard = torch.randn(
            (n_samples, flat_mean.numel()),
            generator=generator,
            device=generator.device,
            dtype=flat_mean.dtype,
        )
        offsets = standard @ self.scale.T if self.scale.dim() == 2 else standard * self.scale
        samples = (flat_mean + offsets).clamp_(*self.bounds)
        return samples.reshape(n_samples, *self.sample_shape)

    def to(self, device):
        """Move the mean and scale to ``device``; returns ``self``."""
        self.mean, self.scale = self.mean.to(device), self.scale.to(device)
        return self

    def __getstate__(self):
        return {**self.__dict__, "mean": self.mean.cpu(), "scale": self.scale.cpu()}


def fit_chain_init(kind, X, bounds=(-1.0, 1.0)):
    """The start ``kind`` ('uniform' or 'gaussian') for data ``X`` of shape ``(n, ...)``.

    The Gaussian has the sample mean and covariance of ``X`` (of at most
    ``MAX_FIT_ROWS`` evenly spaced rows, in float64, with a ridge of
    ``COVARIANCE_RIDGE`` times the mean variance plus 1e-8); beyond
    ``MAX_FULL_COVARIANCE_FEATURES`` coordinates only the variances are kept.

    Returns
    -------
    UniformChainInit or GaussianChainInit
        On ``X``'s device.

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    sample_shape = tuple(X.shape[1:])
    if kind == "uniform":
        return UniformChainInit(sample_shape, *bounds)
    if kind != "gaussian":
        raise ValueError(f"chain start must be 'uniform' or 'gaussian', got {kind!r}.")
    rows = X[:: max(1, len(X) // MAX_FIT_ROWS)]
    flat = rows.reshape(len(rows), -1).to(torch.float64)
    mean = flat.mean(dim=0)
    centred = flat - mean
    variances = centred.pow(2).sum(dim=0) / max(len(rows) - 1, 1)
    ridge = COVARIANCE_RIDGE * variances.mean() + 1e-8
    if flat.shape[1] > MAX_FULL_COVARIANCE_FEATURES:
        scale = (variances + ridge).sqrt()
    else:
        covariance = centred.T @ centred / max(len(rows) - 1, 1)
        covariance.diagonal().add_(ridge)
        scale = torch.linalg.cholesky(covariance)
    dtype = X.dtype if X.dtype.is_floating_point else torch.float32
    return GaussianChainInit(mean.to(dtype).reshape(sample_shape), scale.to(dtype), bounds)
