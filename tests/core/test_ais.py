"""Annealed importance sampling of log Z, against closed forms and numerical integration."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import truncnorm
from torch import nn

from sklearn_cebm._core.ais import annealed_importance_sampling, sigmoid_schedule
from sklearn_cebm._core.biases import SphericalGaussianBias
from sklearn_cebm._core.box_densities import TruncatedDiagonalGaussian, UniformBox
from sklearn_cebm._core.encoders import MLPEncoder, initialize_layers
from sklearn_cebm._core.exponential_family import _MIN_NEGATIVE_MAGNITUDE
from sklearn_cebm._core.model import ConjugateEnergyModel
from sklearn_cebm._core.sgld import frozen_parameters


class GaussianMarginalStatistics(nn.Module):
    """Statistics under which a CEBM's marginal is ``N(mean, diag(std**2))`` on the box.

    With the bias ``N(0, 1)`` on each of D latent dimensions (``lambda = (0, -1/2)``),
    ``t_1 = 0`` and ``t_2,k = -(softplus(u_k) + eps)``, the marginal energy (Eq. 21) is
    ``E(x) = sum_k log(1 + 2 softplus(u_k) + 2 eps) / 2``. Choosing
    ``softplus(u_k) = (exp(1 + q_k) - 1 - 2 eps) / 2`` with ``q_k = ((x_k - m_k) / s_k)**2``
    makes it ``sum_k (1 + q_k) / 2``: a Gaussian, whose normaliser on the box is
    ``exp(-D / 2) prod_k s_k sqrt(2 pi) (Phi(b_k) - Phi(a_k))``. The inverse softplus is
    taken in float64; ``q_k`` must stay below ~85 on the box (float32's exp).

    A zero parameter enters the output, so that an estimator can train the module (its
    gradient is zero: Adam leaves it, and the density, unchanged).
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64))
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        squared = ((x.to(torch.float64) - self.mean) / self.std) ** 2
        magnitude = (torch.expm1(1 + squared) - 2 * _MIN_NEGATIVE_MAGNITUDE) / 2
        unconstrained = magnitude + torch.log(-torch.expm1(-magnitude))  # softplus^-1
        statistic_1 = torch.zeros_like(unconstrained)
        raw = torch.cat([statistic_1, unconstrained], dim=1).to(x.dtype)
        return raw + 0.0 * self.unused

    def log_partition(self, low=-1.0, high=1.0):
        """The closed form ``log Z`` of the marginal on ``[low, high]^D``."""
        a, b = (low - self.mean) / self.std, (high - self.mean) / self.std
        mass = torch.special.ndtr(b) - torch.special.ndtr(a)
        per_dimension = -0.5 + torch.log(self.std * math.sqrt(2 * math.pi) * mass)
        return per_dimension.sum().item()


def gaussian_marginal_cebm(mean, std):
    statistics = GaussianMarginalStatistics(mean, std)
    model = ConjugateEnergyModel(statistics, SphericalGaussianBias(len(mean)), (len(mean),))
    return model.eval(), statistics.log_partition()


def _random_cebm(n_features, seed, sharpness):
    """A CEBM with random weights, its statistics multiplied to give it modes."""
    generator = torch.Generator().manual_seed(seed)
    encoder = MLPEncoder(n_features, (32, 32), 4)
    initialize_layers(encoder, generator)
    with torch.no_grad():
        encoder.layers[-1].weight.mul_(sharpness)
    return ConjugateEnergyModel(encoder, SphericalGaussianBias(2), (n_features,)).eval()


def _ais(energy, n_features, seed=0, n_chains=200, n_temperatures=400, start=None):
    start = UniformBox(n_features) if start is None else start
    with frozen_parameters(energy) if isinstance(energy, nn.Module) else _no_context():
        return annealed_importance_sampling(
            energy,
            start,
            n_chains=n_chains,
            n_temperatures=n_temperatures,
            generator=torch.Generator().manual_seed(seed),
        )


class _no_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _assert_within_error(estimate, truth, slack=0.02):
    """Within three standard errors and a small bias allowance, the error itself small."""
    assert estimate.standard_error < 0.1, estimate
    assert abs(estimate.log_partition - truth) < 3 * estimate.standard_error + slack, (
        estimate,
        truth,
    )


def test_gaussian_marginal_statistics_make_the_cebm_energy_that_quadratic():
    mean, std = torch.tensor([0.2, -0.4]), torch.tensor([0.3, 0.5])
    model, _ = gaussian_marginal_cebm(mean, std)
    x = torch.rand(50, 2) * 2 - 1
    expected = (1 + ((x - mean) / std) ** 2).sum(dim=1) / 2
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_ais_matches_the_closed_form_log_partition_of_a_cebm_with_gaussian_marginal():
    # Six dimensions, some Gaussians cut off by the box (std 0.6 at 0.5): the truncation counts.
    mean = torch.tensor([0.5, -0.3, 0.0, 0.2, -0.5, 0.1])
    std = torch.tensor([0.6, 0.25, 0.4, 0.3, 0.5, 0.35])
    model, truth = gaussian_marginal_cebm(mean, std)
    _assert_within_error(_ais(model, 6), truth)


def test_ais_from_a_truncated_gaussian_start_matches_the_closed_form():
    mean = torch.tensor([0.5, -0.3, 0.0, 0.2])
    std = torch.tensor([0.6, 0.25, 0.4, 0.3])
    model, truth = gaussian_marginal_cebm(mean, std)
    start = TruncatedDiagonalGaussian(torch.zeros(4), torch.full((4,), 0.5))
    _assert_within_error(_ais(model, 4, start=start), truth)


def test_ais_matches_numerical_integration_in_one_dimension():
    model = _random_cebm(1, seed=0, sharpness=4.0)
    grid = torch.linspace(-1, 1, 20001).reshape(-1, 1)
    with torch.no_grad():
        density = torch.exp(-model(grid).to(torch.float64))
    truth = math.log(torch.trapezoid(density, dx=2 / 20000).item())
    _assert_within_error(_ais(model, 1), truth)


def test_ais_matches_numerical_integration_in_two_dimensions():
    model = _random_cebm(2, seed=1, sharpness=4.0)
    axis = torch.linspace(-1, 1, 601)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        density = torch.exp(-model(grid).to(torch.float64)).reshape(601, 601)
    step = 2 / 600
    truth = math.log(torch.trapezoid(torch.trapezoid(density, dx=step), dx=step).item())
    _assert_within_error(_ais(model, 2), truth)


def test_ais_is_deterministic_given_the_generator_seed():
    model = _random_cebm(2, seed=1, sharpness=4.0)
    first = _ais(model, 2, seed=3, n_chains=20, n_temperatures=50)
    assert _ais(model, 2, seed=3, n_chains=20, n_temperatures=50) == first
    assert _ais(model, 2, seed=4, n_chains=20, n_temperatures=50) != first


def test_ais_leaves_the_weights_of_the_model_frozen_and_unchanged():
    model = _random_cebm(2, seed=1, sharpness=4.0)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    _ais(model, 2, n_chains=10, n_temperatures=20)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name])
    assert all(parameter.grad is None for parameter in model.parameters())


def test_sigmoid_schedule_runs_from_zero_to_one_increasing():
    betas = sigmoid_schedule(100)
    assert betas[0] == 0 and betas[-1] == 1 and len(betas) == 101
    assert torch.all(torch.diff(betas) > 0)


def test_truncated_diagonal_gaussian_has_scipys_density_and_draws_it():
    mean, std = torch.tensor([0.7, -0.2]), torch.tensor([0.5, 0.1])
    density = TruncatedDiagonalGaussian(mean, std)
    exact = [
        truncnorm((-1 - m) / s, (1 - m) / s, loc=m, scale=s)
        for m, s in zip(mean.tolist(), std.tolist(), strict=True)
    ]
    points = torch.rand(100, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = sum(exact[k].logpdf(points[:, k].numpy()) for k in range(2))
    np.testing.assert_allclose(density.log_density(points).numpy(), expected, rtol=1e-10)
    draws = density.draw(20000, torch.Generator().manual_seed(0)).numpy()
    assert np.all(np.abs(draws) <= 1)
    for k in range(2):
        assert draws[:, k].mean() == pytest.approx(exact[k].mean(), abs=0.01)
        assert draws[:, k].std() == pytest.approx(exact[k].std(), rel=0.03)


def test_uniform_box_log_density_is_minus_the_log_volume():
    box = UniformBox(3)
    x = box.draw(5, torch.Generator().manual_seed(0))
    assert torch.all((x >= -1) & (x <= 1))
    torch.testing.assert_close(
        box.log_density(x), torch.full((5,), -3 * math.log(2.0), dtype=torch.float64)
    )
