"""The energy-based estimators' normalised likelihood: log Z by AIS, in the units of X."""

import math

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sklearn_cebm import CEBMEncoder, IGEBMEncoder

from ..conftest import CHEAP_SETTINGS
from ..core.test_ais import GaussianMarginalStatistics


def _trapezoid_log_integral(values, step):
    return math.log(np.trapezoid(values, dx=step))


def test_cebmencoder_log_partition_is_the_closed_form_of_a_gaussian_marginal_in_x_units():
    # Data in units 7 times the box's, shifted: the normaliser in X's units is the box's one
    # times the volume of the map, 7**2.
    mean, std = np.array([0.3, -0.2]), np.array([0.3, 0.4])
    statistics = GaussianMarginalStatistics(mean, std)
    rng = np.random.default_rng(0)
    X = np.vstack([[-1.0, -1.0], [1.0, 1.0], rng.uniform(-1, 1, (60, 2))]) * 7.0 + 3.0
    encoder = CEBMEncoder(
        **dict(CHEAP_SETTINGS, n_components=2, max_iter=1), encoder=statistics, random_state=0
    ).fit(X)
    np.testing.assert_allclose(encoder.input_scale_, [7.0, 7.0])
    encoder.estimate_log_partition(n_chains=200, n_temperatures=400)
    truth = statistics.log_partition() + 2 * math.log(7.0)
    assert encoder.log_partition_std_ < 0.1
    assert abs(encoder.log_partition_ - truth) < 3 * encoder.log_partition_std_ + 0.02
    # At the mean, in X's units, the density is the Gaussian's there, over its mass.
    at_mean = (mean * 7.0 + 3.0).reshape(1, -1)
    log_density = encoder.score(at_mean)
    expected = -1.0 - truth  # E = sum_k (1 + q_k) / 2 with q = 0 at the mean
    assert log_density == pytest.approx(expected, abs=3 * encoder.log_partition_std_ + 0.02)


def test_cebmencoder_log_partition_matches_numerical_integration_of_its_density_in_1d():
    X = np.random.default_rng(0).normal(5.0, 3.0, (200, 1))
    encoder = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    encoder.estimate_log_partition(n_chains=200, n_temperatures=400)
    grid = np.linspace(encoder.input_min_[0], encoder.input_max_[0], 20001)
    truth = _trapezoid_log_integral(
        np.exp(encoder.score_samples(grid.reshape(-1, 1))), grid[1] - grid[0]
    )
    assert abs(encoder.log_partition_ - truth) < 3 * encoder.log_partition_std_ + 0.02


def test_igebmencoder_log_partition_matches_numerical_integration_of_its_density_in_2d():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(0, 1, 200), rng.uniform(10, 30, 200)])
    encoder = IGEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    encoder.estimate_log_partition(n_chains=200, n_temperatures=400)
    first = np.linspace(encoder.input_min_[0], encoder.input_max_[0], 401)
    second = np.linspace(encoder.input_min_[1], encoder.input_max_[1], 401)
    grid = np.stack(np.meshgrid(first, second, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(encoder.score_samples(grid).astype(np.float64)).reshape(401, 401)
    inner = np.trapezoid(density, dx=second[1] - second[0], axis=1)
    truth = _trapezoid_log_integral(inner, first[1] - first[0])
    assert abs(encoder.log_partition_ - truth) < 3 * encoder.log_partition_std_ + 0.02


def test_cebmencoder_score_counts_a_row_outside_the_box_at_its_projection():
    X = np.random.default_rng(0).normal(size=(100, 2))
    encoder = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    encoder.estimate_log_partition(n_chains=20, n_temperatures=20)
    outside = X[:1] + np.array([[100.0, 0.0]])
    projected = np.clip(outside, encoder.input_min_, encoder.input_max_)
    assert encoder.score(outside) == pytest.approx(encoder.score(projected))
    assert np.isfinite(encoder.score(outside))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_chains": 1}, ValueError, "estimate_log_partition needs an integer n_chains >= 2"),
        ({"n_temperatures": 0}, ValueError, "n_temperatures >= 1"),
        ({"n_chains": 10.5}, TypeError, "estimate_log_partition needs an int n_chains"),
        ({"n_temperatures": "many"}, TypeError, "needs an int n_temperatures"),
    ],
)
def test_estimate_log_partition_rejects_bad_effort(kwargs, error, message):
    X = np.random.default_rng(0).normal(size=(50, 2))
    encoder = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    with pytest.raises(error, match=message):
        encoder.estimate_log_partition(**kwargs)
    assert not hasattr(encoder, "log_partition_")


@pytest.mark.slow
def test_unsupervised_grid_search_ranks_by_the_normalised_likelihood():
    X = np.random.default_rng(0).normal(size=(90, 2))
    grid = {"energy_l2": [0.0, 5e-3]}
    search = GridSearchCV(CEBMEncoder(**CHEAP_SETTINGS, random_state=0), grid, cv=2).fit(X)
    # The first fold trains on the second half; its score is score's, log Z and all.
    candidate = CEBMEncoder(**CHEAP_SETTINGS, random_state=0, energy_l2=0.0)
    expected = candidate.fit(X[45:]).score(X[:45])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(expected)
