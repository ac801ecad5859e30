"""The contrastive-divergence surrogate and its gradient (Sec. 2.1, Eq. 2)."""

import math

import pytest
import torch
from torch import nn

from sklearn_cebm._core.losses import (
    ContrastiveDivergenceLoss,
    DenoisingScoreMatchingLoss,
    cluster_balance_divergence,
    denoising_score_matching_loss,
    neighbour_consistency_loss,
    scaled_energy_gradient,
)


def _tiny_energy(seed):
    generator = torch.Generator().manual_seed(seed)
    module = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1), nn.Flatten(0)).double()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return module


def _energy_and_batches(seed, n_data, n_model, draw_model=torch.randn):
    """A tiny energy and a data and a model batch of three features, all from ``seed``."""
    generator = torch.Generator().manual_seed(seed + 1)
    x_data = torch.randn(n_data, 3, generator=generator, dtype=torch.float64)
    x_model = draw_model(n_model, 3, generator=generator, dtype=torch.float64)
    return _tiny_energy(seed), x_data, x_model


@pytest.mark.parametrize("energy_l2", [0.0, 0.1, 2.0])
def test_loss_value_matches_hand_computation(energy_l2):
    energy_data = torch.tensor([1.0, -2.0, 0.5, 2.5], dtype=torch.float64)
    energy_model = torch.tensor([3.0, 1.0], dtype=torch.float64)
    # Means 0.5 and 2; mean squares (1 + 4 + 0.25 + 6.25) / 4 = 2.875 and (9 + 1) / 2 = 5.
    expected = 0.5 - 2.0 + energy_l2 * (2.875 + 5.0)

    loss = ContrastiveDivergenceLoss(energy_l2)(energy_data, energy_model)

    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_default_loss_has_no_magnitude_penalty():
    energy_data, energy_model = torch.tensor([10.0, 20.0]), torch.tensor([-5.0])
    assert ContrastiveDivergenceLoss()(energy_data, energy_model).item() == pytest.approx(20.0)


def test_loss_gradient_is_contrastive_divergence_gradient():
    # With energy_l2 = 0 the surrogate's weight gradient is the negated log-likelihood
    # gradient of Sec. 2.1: mean grad E(data) - mean grad E(model samples).
    energy, x_data, x_model = _energy_and_batches(0, 6, 4, draw_model=torch.rand)
    parameters = list(energy.parameters())

    loss = ContrastiveDivergenceLoss(0.0)(energy(x_data), energy(x_model))
    gradient = torch.autograd.grad(loss, parameters)

    def mean_gradient(x):
        per_sample = [torch.autograd.grad(energy(row[None]).sum(), parameters) for row in x]
        return [torch.stack(parts).mean(dim=0) for parts in zip(*per_sample, strict=True)]

    expected = [
        data - model
        for data, model in zip(mean_gradient(x_data), mean_gradient(x_model), strict=True)
    ]
    for actual, wanted in zip(gradient, expected, strict=True):
        torch.testing.assert_close(actual, wanted, rtol=1e-10, atol=1e-12)


def test_loss_gradient_with_penalty_adds_energy_weighted_term():
    # d/dtheta [alpha (mean E_d**2 + mean E_m**2)] = alpha (mean 2 E_d grad E_d + ...).
    energy, x_data, x_model = _energy_and_batches(2, 5, 5)
    weight = next(energy.parameters())
    alpha = 0.3

    (with_penalty,) = torch.autograd.grad(
        ContrastiveDivergenceLoss(alpha)(energy(x_data), energy(x_model)), weight
    )
    (without,) = torch.autograd.grad(
        ContrastiveDivergenceLoss(0.0)(energy(x_data), energy(x_model)), weight
    )

    def weighted_gradient(x):
        total = torch.zeros_like(weight)
        for row in x:
            value = energy(row[None]).sum()
            (grad,) = torch.autograd.grad(value, weight)
            total += 2 * value.detach() * grad
        return total / x.shape[0]

    expected = without + alpha * (weighted_gradient(x_data) + weighted_gradient(x_model))
    torch.testing.assert_close(with_penalty, expected, rtol=1e-10, atol=1e-12)


def test_cluster_balance_divergence_matches_hand_computation():
    responsibilities = torch.tensor([[0.5, 0.5, 0.0], [0.1, 0.3, 0.6]], dtype=torch.float64)
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    # Batch average q = (0.3, 0.4, 0.3); KL(q || pi) = sum q log(q / pi).
    expected = 0.3 * math.log(0.3 / 0.2) + 0.4 * math.log(0.4 / 0.3) + 0.3 * math.log(0.3 / 0.5)

    divergence = cluster_balance_divergence(responsibilities.log(), weights.log())

    assert divergence.ndim == 0
    assert divergence.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_clusters", [1, 2, 5])
def test_cluster_balance_divergence_is_zero_for_balanced_responsibilities(n_clusters):
    # Each cluster used as often as pi says, whether the rows are hard or soft.
    hard = torch.eye(n_clusters, dtype=torch.float64).repeat(3, 1)
    soft = torch.full((4, n_clusters), 1.0 / n_clusters, dtype=torch.float64)
    log_uniform = torch.full((n_clusters,), -math.log(n_clusters), dtype=torch.float64)
    for responsibilities in (hard, soft):
        divergence = cluster_balance_divergence(responsibilities.log(), log_uniform)
        assert divergence.item() == pytest.approx(0.0, abs=1e-12)


def test_cluster_balance_divergence_of_one_cluster_taking_everything():
    # q is one-hot on cluster l: KL = -log pi_l; the clusters whose responsibilities
    # underflow to 0 add 0 log 0 = 0, and the gradient stays finite.
    weights = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    logits = torch.tensor([[-1e4, -1e4, 0.0]] * 4, dtype=torch.float64, requires_grad=True)

    divergence = cluster_balance_divergence(torch.log_softmax(logits, dim=1), weights.log())
    divergence.backward()

    assert divergence.item() == pytest.approx(-math.log(0.3), rel=1e-12)
    assert torch.isfinite(logits.grad).all()
    hard = torch.tensor([[0.0, 0.0, 1.0]] * 4, dtype=torch.float64).log()  # log 0 = -inf
    assert cluster_balance_divergence(hard, weights.log()).item() == pytest.approx(-math.log(0.3))


class _Quadratic(nn.Module):
    """``E(x) = a/2 * ||x||**2``: the energy of N(0, 1/a) in every coordinate."""

    def __init__(self, precision):
        super().__init__()
        self.precision = nn.Parameter(torch.tensor(float(precision), dtype=torch.float64))

    def forward(self, x):
        return 0.5 * self.precision * x.pow(2).sum(dim=1)


def test_score_matching_loss_matches_its_closed_form_on_gaussian_data():
    # With x ~ N(0, s**2) per coordinate and E = a x**2 / 2, sigma * E'(x + sigma eps) - eps
    # is sigma a x + (sigma**2 a - 1) eps, so the loss per coordinate is
    # (sigma**2 a**2 s**2 + (sigma**2 a - 1)**2) / 2.
    generator = torch.Generator().manual_seed(0)
    s, sigma, a, dims = 0.7, 0.3, 1.5, 4
    x = s * torch.randn(200_000, dims, generator=generator, dtype=torch.float64)

    loss, energies = denoising_score_matching_loss(_Quadratic(a), x, sigma, generator)

    expected = dims * 0.5 * (sigma**2 * a**2 * s**2 + (sigma**2 * a - 1) ** 2)
    assert energies.shape == (200_000,)
    assert loss.item() == pytest.approx(expected, rel=0.01)


def test_score_matching_is_minimised_by_the_noised_data_density():
    # The closed form above is smallest at a = 1 / (s**2 + sigma**2): the precision of the
    # data convolved with the noise.
    generator = torch.Generator().manual_seed(1)
    s, sigma = 0.5, 0.4
    x = s * torch.randn(20_000, 2, generator=generator, dtype=torch.float64)
    energy = _Quadratic(1.0)
    optimizer = torch.optim.Adam(energy.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss, _ = denoising_score_matching_loss(energy, x, sigma, generator)
        loss.backward()
        optimizer.step()

    assert energy.precision.item() == pytest.approx(1 / (s**2 + sigma**2), rel=0.05)


def test_score_matching_criterion_is_the_regression_of_the_scaled_score_on_the_noise():
    # The skorch criterion regresses sigma * dE/dx at the noised data onto the noise; with
    # the same noise it gives the loss of denoising_score_matching_loss.
    s, sigma, a = 0.7, 0.3, 1.5
    x = s * torch.randn(500, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    energy = _Quadratic(a)
    expected, _ = denoising_score_matching_loss(energy, x, sigma, torch.Generator().manual_seed(3))

    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    scaled_gradient, energies = scaled_energy_gradient(energy, x + sigma * noise, sigma)
    torch.testing.assert_close(scaled_gradient, sigma * a * (x + sigma * noise))
    torch.testing.assert_close(energies, energy(x + sigma * noise))
    assert DenoisingScoreMatchingLoss()(scaled_gradient, noise).item() == expected.item()


def _log(probabilities):
    return torch.tensor(probabilities, dtype=torch.float64).log()


def test_neighbour_consistency_loss_matches_hand_computation():
    # Pair 1 agrees with probability 0.5 * 0.25 + 0.5 * 0.75 = 0.5; pair 2 with
    # 0.9 * 0.9 + 0.1 * 0.1 = 0.82.
    anchors = _log([[0.5, 0.5], [0.9, 0.1]])
    neighbours = _log([[0.25, 0.75], [0.9, 0.1]])
    expected = -(math.log(0.5) + math.log(0.82)) / 2
    assert neighbour_consistency_loss(anchors, neighbours).item() == pytest.approx(expected)


@pytest.mark.parametrize("n_clusters", [2, 5])
def test_neighbour_consistency_loss_limits(n_clusters):
    certain = torch.eye(n_clusters, dtype=torch.float64)
    # Certain and agreeing: zero. Uniform: log L, whatever the neighbour says.
    assert neighbour_consistency_loss(certain.log(), certain.log()).item() == 0.0
    uniform = torch.full((n_clusters, n_clusters), 1.0 / n_clusters, dtype=torch.float64)
    value = neighbour_consistency_loss(uniform.log(), certain.log()).item()
    assert value == pytest.approx(math.log(n_clusters))
    # Nearly certain of different clusters: large, and its gradient finite.
    sure = _log([[1 - 1e-9, 1e-9]]).requires_grad_(True)
    other = _log([[1e-9, 1 - 1e-9]])
    loss = neighbour_consistency_loss(sure, other)
    loss.backward()
    assert loss.item() > 19 and torch.isfinite(sure.grad).all()
