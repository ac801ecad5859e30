"""Where SGLD chains start: uniform noise, or a Gaussian fitted to the data (JEM++)."""

import pickle

import pytest
import torch

from sklearn_cebm._core import chain_init
from sklearn_cebm._core.chain_init import GaussianChainInit, UniformChainInit, fit_chain_init
from sklearn_cebm._core.sgld import uniform_noise


def _correlated_gaussian_data(n_samples, seed):
    """Rows of N(mean, C) with a full covariance, well inside the box [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor([0.2, -0.1, 0.0], dtype=torch.float64)
    factor = torch.tensor([[0.10, 0.0, 0.0], [0.06, 0.08, 0.0], [-0.03, 0.02, 0.05]])
    factor = factor.to(torch.float64)
    standard = torch.randn((n_samples, 3), generator=generator, dtype=torch.float64)
    return mean + standard @ factor.T, mean, factor @ factor.T


def test_uniform_start_draws_what_uniform_noise_draws():
    # Same stream as before chain starts existed, so seeded fits do not change.
    start = fit_chain_init("uniform", torch.zeros(5, 2, 3))
    drawn = start.draw(7, torch.Generator().manual_seed(0))
    expected = uniform_noise(7, (2, 3), torch.Generator().manual_seed(0), "cpu")

    assert isinstance(start, UniformChainInit) and start.sample_shape == (2, 3)
    torch.testing.assert_close(drawn, expected)
    assert start.to("cpu") is start


def test_gaussian_start_recovers_mean_and_covariance():
    X, mean, covariance = _correlated_gaussian_data(20_000, seed=0)
    start = fit_chain_init("gaussian", X)
    draws = start.draw(20_000, torch.Generator().manual_seed(1))

    assert isinstance(start, GaussianChainInit) and draws.shape == (20_000, 3)
    # Entries of the covariance are ~1e-2; the sample estimate's error is ~1e-2 / sqrt(n)
    # per estimate, two estimates (fit, then draws) deep: 1e-3 is over 5 standard errors.
    torch.testing.assert_close(start.mean, mean, atol=3e-3, rtol=0)
    torch.testing.assert_close(start.scale @ start.scale.T, covariance, atol=1e-3, rtol=0)
    torch.testing.assert_close(draws.mean(dim=0), mean, atol=3e-3, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), covariance, atol=1e-3, rtol=0)


def test_gaussian_start_clamps_to_the_box_and_keeps_the_sample_shape():
    generator = torch.Generator().manual_seed(2)
    X = 0.9 + 0.5 * torch.randn((500, 2, 2), generator=generator)
    start = fit_chain_init("gaussian", X)
    draws = start.draw(1000, generator)

    assert draws.shape == (1000, 2, 2)
    assert draws.min() >= -1.0 and draws.max() <= 1.0
    assert (draws == 1.0).float().mean() > 0.3  # mean 0.9, std 0.5: much of it is clamped


def test_gaussian_start_with_fewer_rows_than_features_and_constant_pixels():
    # The ridge keeps the covariance positive definite: 5 rows of 50 pixels, 10 of them 0.
    X = torch.rand((5, 50), generator=torch.Generator().manual_seed(3))
    X[:, :10] = 0.0
    start = fit_chain_init("gaussian", X)

    draws = start.draw(100, torch.Generator().manual_seed(4))
    assert torch.isfinite(draws).all()
    assert draws[:, :10].abs().max() < 0.05  # constant pixels stay (nearly) constant


def test_gaussian_start_keeps_only_variances_beyond_the_full_covariance_limit(monkeypatch):
    monkeypatch.setattr(chain_init, "MAX_FULL_COVARIANCE_FEATURES", 2)
    X, _, covariance = _correlated_gaussian_data(20_000, seed=5)
    start = fit_chain_init("gaussian", X)

    assert start.scale.shape == (3,)
    torch.testing.assert_close(start.scale**2, covariance.diagonal(), atol=1e-3, rtol=0)
    draws = start.draw(20_000, torch.Generator().manual_seed(6))
    off_diagonal = torch.cov(draws.T) - torch.diag(torch.cov(draws.T).diagonal())
    assert off_diagonal.abs().max() < 1e-3  # the data's correlation (6e-3) is dropped


def test_gaussian_start_fits_on_evenly_spaced_rows(monkeypatch):
    monkeypatch.setattr(chain_init, "MAX_FIT_ROWS", 2)
    X = torch.tensor([[0.0], [0.5], [0.2], [0.5], [0.4], [0.5]])
    # Rows 0, 3: 0.0 and 0.5.
    torch.testing.assert_close(fit_chain_init("gaussian", X).mean, torch.tensor([0.25]))


def test_gaussian_start_pickles_on_the_cpu_and_draws_the_same():
    X, _, _ = _correlated_gaussian_data(100, seed=7)
    start = fit_chain_init("gaussian", X.float())
    restored = pickle.loads(pickle.dumps(start))

    assert restored.mean.device.type == "cpu" and restored.mean.dtype == torch.float32
    torch.testing.assert_close(
        restored.draw(4, torch.Generator().manual_seed(8)),
        start.draw(4, torch.Generator().manual_seed(8)),
    )


def test_unknown_chain_init_raises():
    with pytest.raises(ValueError, match="chain start must be 'uniform' or 'gaussian'"):
        fit_chain_init("data", torch.zeros(3, 2))
