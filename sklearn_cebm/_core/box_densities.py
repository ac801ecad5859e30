"""Normalised densities on the sampler's box ``[-1, 1]^D``: where annealing starts.

Annealed importance sampling (:mod:`sklearn_cebm._core.ais`) estimates the normaliser of
a model from that of a distribution it can draw from exactly and whose normaliser is known.
Both here live on the box the models are defined on: the uniform density (the paper's
chain start), and a diagonal Gaussian truncated to the box (the diagonal of the Gaussian
chain start of :mod:`sklearn_cebm._core.chain_init`, truncated rather than clamped, so
that it has a density), which starts much closer to a model of data.
"""

import math

import torch

__all__ = ["TruncatedDiagonalGaussian", "UniformBox"]


class UniformBox:
    """The uniform density on ``[low, high]^D``.

    Parameters
    ----------
    n_features : int
        D.
    low, high : float, default=(-1.0, 1.0)
    """

    def __init__(self, n_features, low=-1.0, high=1.0):
        self.n_features = int(n_features)
        self.low, self.high = float(low), float(high)

    def preconditioner(self):
        """Per-coordinate scale of a proposal: ones (every coordinate spans the same range)."""
        return torch.ones(self.n_features, dtype=torch.float64)

    def log_density(self, x):
        """``-D log(high - low)`` for every row of ``x`` ``(n, D)`` in the box; shape ``(n,)``."""
        value = -self.n_features * math.log(self.high - self.low)
        return torch.full((x.shape[0],), value, dtype=torch.float64, device=x.device)

    def draw(self, n_samples, generator):
        """``(n_samples, D)`` draws in float64 on the generator's device."""
        shape = (n_samples, self.n_features)
        noise = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
        return self.low + (self.high - self.low) * noise


def _log_ndtr_difference(lower, upper):
    """``log(Phi(upper) - Phi(lower))`` for ``lower < upper``, without cancellation.

    In the upper tail both ``Phi`` are near one; by symmetry the difference is that of the
    mirrored bounds, computed where ``Phi`` is small.
    """
    mirror = lower > 0
    lower, upper = torch.where(mirror, -upper, lower), torch.where(mirror, -lower, upper)
    log_upper, log_lower = torch.special.log_ndtr(upper), torch.special.log_ndtr(lower)
    return log_upper + torch.log1p(-torch.exp(log_lower - log_upper))


class TruncatedDiagonalGaussian:
    """``N(mean, diag(std**2))`` truncated to the box ``[low, high]^D``.

    Its normaliser is the product of the one-dimensional ``Phi((high - mean) / std) -
    Phi((low - mean) / std)``, and it is drawn from exactly by inverting each coordinate's
    truncated distribution function, in float64.

    Parameters
    ----------
    mean, std : torch.Tensor of shape (D,)
        ``std > 0``.
    low, high : float, default=(-1.0, 1.0)
    """

    def __init__(self, mean, std, low=-1.0, high=1.0):
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = torch.as_tensor(std, dtype=torch.float64)
        self.low, self.high = float(low), float(high)
        self._lower = (self.low - self.mean) / self.std
        self._upper = (self.high - self.mean) / self.std
        self._log_mass = _log_ndtr_difference(self._lower, self._upper)

    @classmethod
    def fit(cls, X, min_std, low=-1.0, high=1.0):
        """The truncated Gaussian with the mean and std of the rows of ``X`` ``(n, D)``.

        Each std is at least ``min_std``: a coordinate constant in ``X`` still has a
        density to start from.
        """
        X = torch.as_tensor(X, dtype=torch.float64)
        std = X.std(dim=0, correction=0) if len(X) > 1 else torch.zeros(X.shape[1:])
        return cls(X.mean(dim=0).clamp(low, high), std.clamp(min=min_std), low, high)

    def preconditioner(self):
        """Per-coordinate scale of a proposal: the stds, at most the box's half-width."""
        return self.std.clamp(max=(self.high - self.low) / 2)

    def log_density(self, x):
        """Log-density (normalised on the box) of each row of ``x`` ``(n, D)``; ``(n,)``."""
        standard = (x.to(torch.float64) - self.mean.to(x.device)) / self.std.to(x.device)
        log_normal = (
            -0.5 * standard**2 - torch.log(self.std.to(x.device)) - 0.5 * math.log(2 * math.pi)
        )
        return (log_normal - self._log_mass.to(x.device)).sum(dim=-1)

    def draw(self, n_samples, generator):
        """``(n_samples, D)`` exact draws in float64 on the generator's device."""
        device = generator.device
        shape = (n_samples, self.mean.numel())
        uniform = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
        lower = torch.special.ndtr(self._lower.to(device))
        upper = torch.special.ndtr(self._upper.to(device))
        standard = torch.special.ndtri(lower + uniform * (upper - lower))
        x = self.mean.to(device) + self.std.to(device) * standard
        # Where a bound lies far in a tail Phi rounds to 0 or 1 and ndtri to an infinity.
        return torch.nan_to_num(x).clamp(self.low, self.high)
