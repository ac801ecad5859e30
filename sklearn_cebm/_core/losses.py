"""Training objectives for the marginal energy ``E(x)``, and the clustering objectives."""

import math

import torch
from torch import nn

__all__ = [
    "ContrastiveDivergenceLoss",
    "DenoisingScoreMatchingLoss",
    "cluster_balance_divergence",
    "denoising_score_matching_loss",
    "neighbour_consistency_loss",
    "scaled_energy_gradient",
]


class ContrastiveDivergenceLoss(nn.Module):
    """The PCD surrogate whose gradient is the maximum-likelihood gradient (Sec. 2.1).

    ``mean E(x_data) - mean E(x_model) + energy_l2 * (mean E(x_data)**2 + mean E(x_model)**2)``.
    Its gradient in the weights estimates ``-grad log p(x_data)`` with model samples standing
    in for the expectation of Eq. 2; the L2 term on the energies (Du & Mordatch, 2019) keeps
    their magnitudes from drifting, which the likelihood alone does not fix.

    Parameters
    ----------
    energy_l2 : float, default=0.0
        Weight ``alpha`` of the energy-magnitude penalty.
    """

    def __init__(self, energy_l2=0.0):
        super().__init__()
        self.energy_l2 = energy_l2

    def forward(self, energy_data, energy_model):
        """Scalar loss from the energies of a data batch and a model batch."""
        contrast = energy_data.mean() - energy_model.mean()
        magnitude = (energy_data**2).mean() + (energy_model**2).mean()
        return contrast + self.energy_l2 * magnitude


class DenoisingScoreMatchingLoss(nn.Module):
    """Denoising score matching as a regression: ``0.5 * mean_n ||prediction_n - noise_n||**2``.

    The prediction is the model's scaled score on the noised data, ``noise_std *
    grad_x E(x + noise_std * noise)`` (:func:`scaled_energy_gradient`), the target the noise
    itself; see :func:`denoising_score_matching_loss` for why this learns the energy.
    Written as a loss of a prediction and a target, it is what a skorch criterion is.
    """

    def forward(self, scaled_gradient, noise):
        """Scalar loss: half the squared residual summed per example, averaged over them."""
        residual = scaled_gradient - noise
        return 0.5 * residual.flatten(1).pow(2).sum(dim=1).mean()


def scaled_energy_gradient(energy, x_noisy, noise_std):
    """``noise_std * grad_x E(x_noisy)`` with its graph kept, and the energies ``E(x_noisy)``.

    The prediction of denoising score matching (:class:`DenoisingScoreMatchingLoss`). The
    gradient is taken with ``create_graph=True``, so a loss on it backpropagates into the
    energy's weights.

    Parameters
    ----------
    energy : callable
        Maps a batch ``(n, *shape)`` to energies ``(n,)``.
    x_noisy : torch.Tensor of shape (n, *shape)
        Noised data; a copy that requires grad is differentiated, not ``x_noisy`` itself.
    noise_std : float

    Returns
    -------
    scaled_gradient : torch.Tensor of shape (n, *shape)
    energies : torch.Tensor of shape (n,)
    """
    x_noisy = x_noisy.detach().requires_grad_(True)
    energies = energy(x_noisy)
    (gradient,) = torch.autograd.grad(energies.sum(), x_noisy, create_graph=True)
    return noise_std * gradient, energies


def denoising_score_matching_loss(energy, x, noise_std, generator=None):
    """Denoising score matching (Vincent, 2011) of the energy's score on Gaussian-noised data.

    With ``x_noisy = x + noise_std * eps``, the score of the noising kernel is
    ``-eps / noise_std``, and the model's score is ``-grad_x E(x_noisy)``. The loss is
    their squared distance weighted by ``noise_std**2``, averaged over the batch:
    ``0.5 * mean_n || noise_std * grad_x E(x_noisy_n) - eps_n ||**2``. Its minimiser over
    all energies is the score of the data convolved with the noise, so the energy is
    learned without sampling from the model, at the price of a smoothed density.

    Parameters
    ----------
    energy : callable
        Maps a batch ``(n, *shape)`` to energies ``(n,)``.
    x : torch.Tensor of shape (n, *shape)
        Clean data.
    noise_std : float
        Std ``sigma`` of the Gaussian noise.
    generator : torch.Generator, default=None
        Draws the noise.

    Returns
    -------
    loss : torch.Tensor
        A non-negative scalar that backpropagates into the energy's weights.
    energies : torch.Tensor of shape (n,)
        ``E(x_noisy)``, for diagnostics.
    """
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    scaled_gradient, energies = scaled_energy_gradient(energy, x + noise_std * noise, noise_std)
    return DenoisingScoreMatchingLoss()(scaled_gradient, noise), energies


def cluster_balance_divergence(log_responsibilities, log_weights):
    """``KL(mean_n p(y | x_n) || pi)``: how far a batch's cluster usage is from ``pi``.

    The batch average ``q(y) = 1/n sum_n p(y | x_n)`` of the responsibilities estimates the
    model's marginal ``p(y)`` under the data; the divergence
    ``sum_l q_l (log q_l - log pi_l)`` is zero when the batch uses the clusters in the
    proportions ``pi`` and grows to ``-log pi_l`` when one cluster ``l`` takes every
    sample. With uniform ``pi`` it is ``log L - H(q)``, the marginal-entropy term of deep
    clustering objectives (e.g. Hu et al., 2017, "Learning discrete representations via
    information maximizing self-augmented training").

    ``log q`` is taken as a log-sum-exp of the log-responsibilities, so the value and its
    gradient stay finite when responsibilities underflow to 0 (``x log x`` has an infinite
    slope there).

    Parameters
    ----------
    log_responsibilities : torch.Tensor of shape (n, L)
        ``log p(y | x_n)``; each row's exponentials sum to one.
    log_weights : torch.Tensor of shape (L,)
        ``log pi``.

    Returns
    -------
    torch.Tensor
        A non-negative scalar.
    """
    n_samples = log_responsibilities.shape[0]
    log_marginal = torch.logsumexp(log_responsibilities, dim=0) - math.log(n_samples)
    # An unused cluster (log q = -inf) contributes 0 log 0 = 0, not 0 * -inf = nan.
    log_marginal = log_marginal.clamp_min(torch.finfo(log_marginal.dtype).min)
    return (log_marginal.exp() * (log_marginal - log_weights)).sum()


def neighbour_consistency_loss(log_responsibilities, neighbour_log_responsibilities):
    """``-mean_n log sum_l p(l | x_n) p(l | x'_n)``: how often neighbours part ways.

    The cluster assumption says that the class is constant on a connected region of high
    density, so a sample ``x_n`` and its near neighbour ``x'_n`` should share a cluster.
    ``sum_l p(l | x_n) p(l | x'_n)`` is the probability that independent draws of their
    clusters agree; its negative log is zero when both are certain of the same cluster
    and grows without bound when they are certain of different ones. This is the
    consistency term of SCAN (Van Gansbeke et al., 2020, "SCAN: Learning to classify
    images without labels"); alone it is minimised by putting every sample in one
    cluster, which :func:`cluster_balance_divergence` counters.

    Parameters
    ----------
    log_responsibilities, neighbour_log_responsibilities : torch.Tensor of shape (n, L)
        ``log p(y | x_n)`` and ``log p(y | x'_n)``; each row's exponentials sum to one.

    Returns
    -------
    torch.Tensor
        A non-negative scalar (up to rounding).
    """
    agreement = torch.logsumexp(log_responsibilities + neighbour_log_responsibilities, dim=-1)
    return -agreement.mean()
