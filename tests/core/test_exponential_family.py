"""The Gaussian exponential-family algebra against closed forms and numerical integration."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sklearn_cebm._core.exponential_family import (
    gaussian_joint_energy,
    gaussian_log_normalizer,
    gaussian_marginal_energy,
    mean_std_to_natural,
    natural_to_mean_std,
    negative_precision_term,
    posterior_natural_params,
)

# The standard-normal bias of the paper (Sec. 5, item 1): lambda = (0, -1/2).
_STANDARD_PRIOR = (
    torch.tensor([0.0], dtype=torch.float64),
    torch.tensor([-0.5], dtype=torch.float64),
)
_LOG_TWO_PI = math.log(2.0 * math.pi)


def _as_tensors(*values):
    return tuple(torch.tensor(value, dtype=torch.float64) for value in values)


def _prior(n_components, mean=0.0, std=1.0):
    return mean_std_to_natural(
        torch.full((n_components,), mean, dtype=torch.float64),
        torch.full((n_components,), std, dtype=torch.float64),
    )


def _random_statistics(n_samples, n_components, seed):
    """``t_1`` standard normal, ``t_2`` uniform on (-2, 0): the posteriors stay well spread."""
    generator = torch.Generator().manual_seed(seed)
    statistic_1 = torch.randn(n_samples, n_components, generator=generator, dtype=torch.float64)
    statistic_2 = -2.0 * torch.rand(
        n_samples, n_components, generator=generator, dtype=torch.float64
    )
    return statistic_1, statistic_2


@pytest.mark.parametrize(
    "natural_1, natural_2", [(0.0, -0.5), (1.5, -0.5), (-3.0, -2.0), (0.2, -0.05), (4.0, -10.0)]
)
def test_log_normalizer_matches_closed_form_and_integral(natural_1, natural_2):
    log_normalizer = gaussian_log_normalizer(*_as_tensors(natural_1, natural_2)).item()

    closed_form = -(natural_1**2) / (4 * natural_2) - 0.5 * math.log(-2 * natural_2)
    assert log_normalizer == pytest.approx(closed_form, rel=1e-12, abs=1e-12)

    # The integrand is a Gaussian bump centred at -l1 / (2 l2); quad on the whole line is
    # accurate to ~1e-10 relative, far below the tolerance.
    center = -natural_1 / (2 * natural_2)
    integral, _ = integrate.quad(
        lambda z: math.exp(
            natural_1 * z + natural_2 * z**2 - natural_1 * center - natural_2 * center**2
        ),
        -np.inf,
        np.inf,
    )
    log_partition = math.log(integral) + natural_1 * center + natural_2 * center**2
    assert log_partition == pytest.approx(log_normalizer + 0.5 * _LOG_TWO_PI, rel=1e-8, abs=1e-8)


def test_natural_parameters_round_trip_mean_std():
    generator = torch.Generator().manual_seed(0)
    mean = 3.0 * torch.randn(50, generator=generator, dtype=torch.float64)
    std = torch.exp(torch.randn(50, generator=generator, dtype=torch.float64))

    natural_1, natural_2 = mean_std_to_natural(mean, std)
    torch.testing.assert_close(natural_1, mean / std**2)
    torch.testing.assert_close(natural_2, -0.5 / std**2)
    assert (natural_2 < 0).all()
    recovered_mean, recovered_std = natural_to_mean_std(natural_1, natural_2)
    torch.testing.assert_close(recovered_mean, mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(recovered_std, std, rtol=1e-12, atol=1e-12)
    again_1, again_2 = mean_std_to_natural(recovered_mean, recovered_std)
    torch.testing.assert_close(again_1, natural_1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again_2, natural_2, rtol=1e-12, atol=1e-12)


def test_posterior_is_product_of_prior_and_gaussian_likelihood():
    # exp(t_1 z + t_2 z**2) is, in z, a Gaussian "likelihood" with precision -2 t_2 and
    # centre t_1 / (-2 t_2). Its product with N(0, 1) is the textbook precision-weighted
    # combination: precision 1 + (-2 t_2), mean (precision_lik * centre) / precision.
    statistic_1, statistic_2 = _random_statistics(40, 3, seed=1)
    prior = _prior(3)

    posterior = posterior_natural_params(prior, (statistic_1, statistic_2))
    mean, std = natural_to_mean_std(*posterior)

    likelihood_precision = -2.0 * statistic_2
    likelihood_center = statistic_1 / likelihood_precision
    precision = 1.0 + likelihood_precision
    torch.testing.assert_close(std**2, 1.0 / precision, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        mean, likelihood_precision * likelihood_center / precision, rtol=1e-12, atol=1e-12
    )


def test_posterior_with_non_standard_prior_adds_natural_parameters():
    prior = _prior(2, mean=1.5, std=0.5)
    statistics = _random_statistics(10, 2, seed=2)
    natural_1, natural_2 = posterior_natural_params(prior, statistics)
    mean, std = natural_to_mean_std(natural_1, natural_2)

    prior_precision = 1.0 / 0.5**2
    likelihood_precision = -2.0 * statistics[1]
    precision = prior_precision + likelihood_precision
    expected_mean = (prior_precision * 1.5 + statistics[0]) / precision
    torch.testing.assert_close(std, precision.rsqrt(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mean, expected_mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_negative_precision_term_strictly_negative_for_extreme_inputs(dtype):
    extremes = torch.tensor(
        [-1e4, -1e3, -100.0, -88.0, -20.0, 0.0, 20.0, 100.0, 1e4, 1e30], dtype=dtype
    )
    constrained = negative_precision_term(extremes)

    assert not torch.isnan(constrained).any()
    assert torch.isfinite(constrained).all()
    assert (constrained < 0).all()
    # Large positive inputs pass through softplus almost unchanged.
    assert constrained[-2].item() == pytest.approx(-1e4, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_posterior_log_normalizer_finite_for_any_raw_statistic(dtype):
    raw = torch.tensor([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4], dtype=dtype)
    statistic_1 = torch.tensor([-1e3, -5.0, 0.0, 0.5, 5.0, 1e3, 0.0], dtype=dtype)
    prior = tuple(part.to(dtype) for part in _STANDARD_PRIOR)

    natural_1, natural_2 = posterior_natural_params(
        prior, (statistic_1, negative_precision_term(raw))
    )
    assert (natural_2 < 0).all()
    assert torch.isfinite(gaussian_log_normalizer(natural_1, natural_2)).all()
    energy = gaussian_marginal_energy(
        prior, (statistic_1[:, None], negative_precision_term(raw)[:, None])
    )
    assert torch.isfinite(energy).all()


def test_conjugacy_marginal_energy_is_integral_of_joint_one_dimension():
    # -E(x) = log of the integral of exp(-E(x, z)) dz - log(2 pi) / 2 (Eqs. 19-21): the
    # constant is the one the paper's B(lambda) leaves out, the same for every x.
    prior = _prior(1)
    statistic_1, statistic_2 = _random_statistics(6, 1, seed=3)
    energy = gaussian_marginal_energy(prior, (statistic_1, statistic_2))

    for row in range(6):
        statistics = (statistic_1[row : row + 1], statistic_2[row : row + 1])

        def joint_density(z, statistics=statistics):
            z_tensor = torch.tensor([[z]], dtype=torch.float64)
            return math.exp(-gaussian_joint_energy(prior, statistics, z_tensor).item())

        integral, _ = integrate.quad(joint_density, -np.inf, np.inf)
        assert -energy[row].item() == pytest.approx(
            math.log(integral) - 0.5 * _LOG_TWO_PI, rel=1e-8, abs=1e-8
        )


def test_conjugacy_marginal_energy_is_integral_of_joint_two_dimensions():
    # On a float64 grid the trapezoid rule for a Gaussian integrand converges spectrally;
    # posterior stds are at most 1 and means within a few units of 0, so [-12, 12] with
    # spacing 0.02 integrates to ~1e-12 relative.
    prior = _prior(2, mean=0.3, std=1.2)
    statistic_1, statistic_2 = _random_statistics(5, 2, seed=4)
    energy = gaussian_marginal_energy(prior, (statistic_1, statistic_2))

    axis = torch.linspace(-12.0, 12.0, 1201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1)  # (G, G, 2)
    spacing = (axis[1] - axis[0]).item()
    log_integrals = []
    for row in range(5):
        statistics = (statistic_1[row], statistic_2[row])
        log_density = -gaussian_joint_energy(prior, statistics, grid)
        log_integrals.append(
            torch.logsumexp(log_density.flatten(), dim=0).item() + 2 * math.log(spacing)
        )

    constants = np.array(log_integrals) + energy.numpy()
    np.testing.assert_allclose(constants, _LOG_TWO_PI, rtol=0, atol=1e-8)


def test_joint_energy_factorises_into_marginal_and_posterior():
    # E(x, z) = E(x) - log N(z; posterior mean, posterior std) - K log(2 pi) / 2 (Eq. 20).
    n_components = 3
    prior = _prior(n_components)
    statistics = _random_statistics(8, n_components, seed=5)
    z = torch.randn(
        8, n_components, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )

    mean, std = natural_to_mean_std(*posterior_natural_params(prior, statistics))
    log_posterior = torch.distributions.Normal(mean, std).log_prob(z).sum(dim=-1)
    joint = gaussian_joint_energy(prior, statistics, z)
    marginal = gaussian_marginal_energy(prior, statistics)

    constant = joint - marginal + log_posterior
    torch.testing.assert_close(
        constant, torch.full_like(constant, -0.5 * n_components * _LOG_TWO_PI), rtol=0, atol=1e-10
    )


def test_marginal_energy_zero_for_zero_statistics():
    # t(x) = 0 leaves the posterior equal to the bias: B(lambda) - B(lambda) = 0 (Eq. 21).
    prior = _prior(4, mean=-0.7, std=2.0)
    zeros = torch.zeros(3, 4, dtype=torch.float64)
    torch.testing.assert_close(
        gaussian_marginal_energy(prior, (zeros, zeros)), torch.zeros(3, dtype=torch.float64)
    )
