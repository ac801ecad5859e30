"""Algebra of the univariate Gaussian as an exponential family.

Every function works elementwise on tensors of any shape, so a spherical Gaussian over
``z`` in R^K is K independent copies of the same algebra. The sufficient statistics are
``eta(z) = (z, z**2)`` and the natural parameters ``(lambda_1, lambda_2)`` with
``lambda_2 < 0`` (Wu et al., 2021, Sec. 5).
"""

import torch

__all__ = [
    "gaussian_joint_energy",
    "gaussian_log_normalizer",
    "gaussian_marginal_energy",
    "mean_std_to_natural",
    "natural_to_mean_std",
    "negative_precision_term",
    "posterior_natural_params",
]

# softplus(x) underflows to exactly 0 in float32 for x < -88; this floor keeps the
# constrained statistic strictly negative for every finite input.
_MIN_NEGATIVE_MAGNITUDE = 1e-6


def negative_precision_term(unconstrained):
    """Map any real tensor to a strictly negative one.

    Used for the second neural sufficient statistic ``t_2(x)``: adding a negative number
    to the bias's ``lambda_2 < 0`` keeps the posterior's ``lambda_2 + t_2(x) < 0`` for every
    input and every weight, so its log-normaliser is always defined.

    Parameters
    ----------
    unconstrained : torch.Tensor
        Any finite values.

    Returns
    -------
    torch.Tensor
        ``-(softplus(unconstrained) + 1e-6)``, strictly below zero.
    """
    return -(torch.nn.functional.softplus(unconstrained) + _MIN_NEGATIVE_MAGNITUDE)


def mean_std_to_natural(mean, std):
    """Natural parameters of N(mean, std**2).

    ``lambda_1 = mean / std**2`` and ``lambda_2 = -1 / (2 std**2)`` (Sec. 5).

    Parameters
    ----------
    mean, std : torch.Tensor
        Broadcastable tensors, ``std > 0``.

    Returns
    -------
    natural_1, natural_2 : torch.Tensor
    """
    variance = std**2
    return mean / variance, -0.5 / variance


def natural_to_mean_std(natural_1, natural_2):
    """Mean and standard deviation from natural parameters.

    ``mean = -lambda_1 / (2 lambda_2)`` and ``std = sqrt(-1 / (2 lambda_2))``.

    Parameters
    ----------
    natural_1, natural_2 : torch.Tensor
        Broadcastable tensors, ``natural_2 < 0``.

    Returns
    -------
    mean, std : torch.Tensor
    """
    variance = -0.5 / natural_2
    return natural_1 * variance, torch.sqrt(variance)


def gaussian_log_normalizer(natural_1, natural_2):
    """Log-normaliser ``B(lambda)`` of the Gaussian in the paper's convention (Sec. 5).

    ``B(lambda) = -lambda_1**2 / (4 lambda_2) - log(-2 lambda_2) / 2``. The exact
    log-partition function ``log of the integral of exp(lambda_1 z + lambda_2 z**2) dz`` is
    ``B(lambda) + log(2 pi) / 2``; the constant cancels in every energy difference.

    Parameters
    ----------
    natural_1, natural_2 : torch.Tensor
        Broadcastable tensors, ``natural_2 < 0``.

    Returns
    -------
    torch.Tensor
        Elementwise log-normaliser.
    """
    return -(natural_1**2) / (4.0 * natural_2) - 0.5 * torch.log(-2.0 * natural_2)


def posterior_natural_params(prior_natural, statistics):
    """Posterior natural parameters ``lambda + t(x)`` (Eq. 23).

    Parameters
    ----------
    prior_natural : tuple of torch.Tensor
        ``(lambda_1, lambda_2)`` of the bias, broadcastable against the statistics.
    statistics : tuple of torch.Tensor
        Neural sufficient statistics ``(t_1(x), t_2(x))``.

    Returns
    -------
    tuple of torch.Tensor
        ``(lambda_1 + t_1(x), lambda_2 + t_2(x))``.
    """
    return prior_natural[0] + statistics[0], prior_natural[1] + statistics[1]


def gaussian_marginal_energy(prior_natural, statistics):
    """Marginal energy ``E(x) = sum_k [B(lambda_k) - B(lambda_k + t_k(x))]`` (Eqs. 21, 24).

    Parameters
    ----------
    prior_natural : tuple of torch.Tensor
        ``(lambda_1, lambda_2)``, each of shape ``(K,)``.
    statistics : tuple of torch.Tensor
        ``(t_1(x), t_2(x))``, each of shape ``(n, K)``.

    Returns
    -------
    torch.Tensor of shape (n,)
        ``-log p(x) - log Z``.
    """
    posterior = posterior_natural_params(prior_natural, statistics)
    difference = gaussian_log_normalizer(*prior_natural) - gaussian_log_normalizer(*posterior)
    return difference.sum(dim=-1)


def gaussian_joint_energy(prior_natural, statistics, z):
    """Joint energy ``E(x, z) = -<lambda + t(x), eta(z)> + B(lambda)`` (Eq. 19).

    Parameters
    ----------
    prior_natural : tuple of torch.Tensor
        ``(lambda_1, lambda_2)``, each of shape ``(K,)``.
    statistics : tuple of torch.Tensor
        ``(t_1(x), t_2(x))``, each of shape ``(..., K)``.
    z : torch.Tensor of shape (..., K)
        Latent values, broadcastable against the statistics.

    Returns
    -------
    torch.Tensor
        The energy summed over the K dimensions.
    """
    natural_1, natural_2 = posterior_natural_params(prior_natural, statistics)
    inner_product = natural_1 * z + natural_2 * z**2
    return (gaussian_log_normalizer(*prior_natural) - inner_product).sum(dim=-1)
