"""The typicality of a model's statistics (sklearn_cebm._outliers.typicality)."""

import joblib
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from sklearn_cebm import CEBMEncoder, IGEBMEncoder, StatisticsTypicality, VAEEncoder
from sklearn_cebm._outliers.typicality import (
    TypicalityTest,
    fit_code_density,
    fit_statistics_density,
    input_complexity,
    model_statistics,
    statistics_matrix,
)
from sklearn_cebm.evaluation import ood_auroc

from ..conftest import CHEAP_SETTINGS


class StandardGaussianModel(BaseEstimator):
    """The exact density N(0, I) as a fitted model: ``log p(x) = -||x||^2 / 2`` up to a
    constant, gradient norm ``||x||``, the identity as its posterior mean and unit stds."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def score_samples(self, X):
        return -0.5 * np.sum(np.square(X), axis=1)

    def score_gradient_norm(self, X):
        return np.linalg.norm(X, axis=1)

    def transform(self, X, return_std=False):
        return (X, np.ones_like(X)) if return_std else X


def test_statistics_matrix_columns():
    codes = np.array([[3.0, 4.0], [0.0, 0.0]])
    std = np.array([[np.e, np.e**3], [1.0, 1.0]])
    statistics = statistics_matrix(np.array([-1.0, 2.0]), np.array([np.e, 0.0]), codes, std)
    assert statistics.shape == (2, 4)
    np.testing.assert_allclose(statistics[:, 0], [-1.0, 2.0])
    # A zero norm is floored, so that it stays finite and below every other.
    np.testing.assert_allclose(statistics[0, 1:], [1.0, np.log(5.0), 2.0])
    assert np.all(np.isfinite(statistics)) and statistics[1, 1] < -60
    assert statistics_matrix(np.zeros(2), np.ones(2), codes).shape == (2, 3)


def test_statistics_matrix_appends_the_complexity_last():
    codes = np.ones((2, 2))
    statistics = statistics_matrix(
        np.zeros(2), np.ones(2), codes, np.ones((2, 2)), complexity=np.array([0.5, -2.0])
    )
    assert statistics.shape == (2, 5)
    np.testing.assert_array_equal(statistics[:, 4], [0.5, -2.0])
    assert statistics_matrix(np.zeros(2), np.ones(2), codes, complexity=np.zeros(2)).shape == (
        2,
        4,
    )


def test_input_complexity_is_the_log_mean_difference_of_neighbouring_pixels():
    # A 2x3 image with rows (0, 1, 3) and (2, 2, 2): vertical differences 2, 1, 1 (mean
    # 4/3), horizontal 1, 2, 0, 0 (mean 3/4).
    image = np.array([[0.0, 1.0, 3.0, 2.0, 2.0, 2.0]])
    np.testing.assert_allclose(input_complexity(image, (1, 2, 3)), np.log(4 / 3 + 3 / 4))
    # Channels are averaged, not mixed: the second channel's jump to the first is no
    # neighbour. A constant channel halves the first's complexity.
    two_channels = np.hstack([image, np.full((1, 6), 7.0)])
    np.testing.assert_allclose(
        input_complexity(two_channels, (2, 2, 3)), np.log((4 / 3 + 3 / 4) / 2)
    )
    # Scale-equivariant: scaling the pixels shifts the statistic by the log of the scale.
    np.testing.assert_allclose(
        input_complexity(10 * image, (1, 2, 3)), np.log(10) + np.log(4 / 3 + 3 / 4)
    )


def test_input_complexity_of_a_constant_image_is_finite_and_below_any_other():
    rng = np.random.default_rng(0)
    images = np.vstack([np.full((1, 16), 0.3), rng.uniform(size=(300, 16))])
    complexity = input_complexity(images, (1, 4, 4))
    assert np.all(np.isfinite(complexity))
    assert complexity[0] < -60 and complexity[0] < complexity[1:].min() - 50
    # Rows beyond one block are computed as the rows within it.
    many = np.repeat(images[1:2], 3000, axis=0)
    np.testing.assert_allclose(input_complexity(many, (1, 4, 4)), complexity[1])


def test_input_complexity_rejects_a_shape_of_other_size():
    with pytest.raises(ValueError, match=r"image_shape=\(1, 3, 3\) holds 9 pixels; X has 16"):
        input_complexity(np.zeros((2, 16)), (1, 3, 3))


def test_input_complexity_takes_height_width_as_one_channel():
    image = np.array([[0.0, 1.0, 3.0, 2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(
        input_complexity(image, (2, 3)), input_complexity(image, (1, 2, 3))
    )


@pytest.mark.parametrize("image_shape", [(6,), (1, 1, 2, 3)])
def test_input_complexity_rejects_a_shape_without_height_and_width(image_shape):
    match = r"needs image_shape=\(height, width\) or \(channels, height, width\)"
    with pytest.raises(ValueError, match=match):
        input_complexity(np.zeros((2, 6)), image_shape)


def test_typicality_test_rejects_statistics_it_was_not_fitted_on():
    rng = np.random.default_rng(0)
    test = TypicalityTest(
        rng.normal(size=(200, 3)), rng.normal(size=(200, 2)), rng.normal(size=(200, 2)), 0
    )
    with pytest.raises(ValueError, match="fitted on 3 statistics per input and got 4"):
        test.score(rng.normal(size=(5, 4)), rng.normal(size=(5, 2)))


def test_one_component_density_is_the_gaussian_of_the_standardised_statistics():
    rng = np.random.default_rng(0)
    statistics = rng.normal(size=(400, 3)) @ np.array([[2.0, 0, 0], [1, 1, 0], [0, 0, 0.1]])
    density = fit_statistics_density(statistics, max_components=1, random_state=0)
    standardised = (statistics - statistics.mean(0)) / statistics.std(0)
    # GaussianMixture's maximum-likelihood covariance (divided by n) and its reg_covar.
    covariance = np.cov(standardised.T, bias=True) + 1e-6 * np.eye(3)
    expected = multivariate_normal(standardised.mean(0), covariance).logpdf(standardised)
    np.testing.assert_allclose(density.score_samples(statistics), expected, rtol=1e-8)


def test_bic_chooses_two_components_for_two_clusters_and_one_for_one():
    rng = np.random.default_rng(0)
    one = rng.normal(size=(500, 2))
    two = np.vstack([one[:250], one[250:] + 10.0])
    assert fit_statistics_density(one, 5, random_state=0)[-1].n_components == 1
    assert fit_statistics_density(two, 5, random_state=0)[-1].n_components == 2
    # Few rows: one component per 50.
    assert fit_statistics_density(two[::10], 5, random_state=0)[-1].n_components == 1


def test_typicality_flags_the_likeliest_inputs_that_likelihood_prefers():
    # The known answer of Nalisnick et al. (2019): in 50 dimensions N(0, I) puts its
    # samples at a norm near 7, and inputs near its mode (N(0, 0.1^2 I)) have a higher
    # density than every sample but are nothing like them.
    rng = np.random.default_rng(0)
    X_reference, X_in = rng.normal(size=(500, 50)), rng.normal(size=(500, 50))
    X_out = 0.1 * rng.normal(size=(500, 50))
    model = StandardGaussianModel().fit(X_reference)
    assert ood_auroc(model, X_in, X_out) == 0.0
    typicality = StatisticsTypicality(model, random_state=0).fit(X_reference)
    assert ood_auroc(typicality, X_in, X_out) == 1.0
    # The codes (x itself) are likelier at the mode too: the statistics' test flags them.
    test = typicality.test_
    codes_only = test.code_density.score_samples(X_out).min()
    assert codes_only > np.median(test.code_density.score_samples(X_in))


class StandardGaussianImageModel(StandardGaussianModel):
    """The same density over 4x4 images (``image_shape`` set), as the package's image
    estimators declare them."""

    image_shape = (1, 4, 4)


def test_typicality_of_images_flags_inputs_simpler_than_the_data():
    # Images of random +-a pixels against constant images of +-a, a drawn alike for both:
    # under N(0, I) they have norms of one distribution, so the same log-density, gradient
    # norm and code norm, and their codes (x itself) are scaled vertices of the same
    # hypercube. Only the images' own complexity tells them apart: the statistics of an
    # image model include it, those of a table do not.
    rng = np.random.default_rng(0)

    def scaled(signs):
        return rng.uniform(0.5, 1.5, size=(len(signs), 1)) * signs

    X_reference, X_in = (scaled(rng.choice([-1.0, 1.0], size=(800, 16))) for _ in range(2))
    X_out = scaled(np.repeat(rng.choice([-1.0, 1.0], size=(800, 1)), 16, axis=1))
    as_images = StatisticsTypicality(StandardGaussianImageModel().fit(X_reference), random_state=0)
    as_table = StatisticsTypicality(StandardGaussianModel().fit(X_reference), random_state=0)
    assert as_images.fit(X_reference).test_.statistics_density[0].n_features_in_ == 5
    assert ood_auroc(as_images, X_in, X_out) == 1.0
    assert ood_auroc(as_table.fit(X_reference), X_in, X_out) < 0.8


def test_typicality_is_the_lower_of_two_robustly_standardised_densities():
    rng = np.random.default_rng(0)
    statistics, codes = rng.normal(size=(400, 3)), rng.normal(size=(400, 2))
    test = TypicalityTest(statistics, codes, rng.normal(size=(2000, 2)), random_state=0)
    by_statistics = test.statistics_density.score_samples(statistics)
    by_codes = test.code_density.score_samples(codes)
    # On the calibration rows each standardised density has median 0 and IQR 1.
    for scores, location, scale in [
        (by_statistics, test.statistics_location, test.statistics_scale),
        (by_codes, test.code_location, test.code_scale),
    ]:
        standardised = (scores - location) / scale
        assert np.median(standardised) == pytest.approx(0.0, abs=1e-12)
        q1, q3 = np.percentile(standardised, [25, 75])
        assert q3 - q1 == pytest.approx(1.0)
    expected = np.minimum(
        (by_statistics - test.statistics_location) / test.statistics_scale,
        (by_codes - test.code_location) / test.code_scale,
    )
    np.testing.assert_allclose(test.score(statistics, codes), expected)


def test_code_density_is_the_gaussian_of_standardised_codes_on_few_rows():
    # Under 2,000 rows: one component, the maximum-likelihood Gaussian (plus reg_covar).
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(600, 2)) @ np.array([[1.0, 0.5], [0.0, 2.0]])
    density = fit_code_density(codes, random_state=0)
    assert density[-1].n_components == 1
    standardised = (codes - codes.mean(0)) / codes.std(0)
    covariance = np.cov(standardised.T, bias=True) + 1e-6 * np.eye(2)
    expected = multivariate_normal(np.zeros(2), covariance).logpdf(standardised)
    np.testing.assert_allclose(density.score_samples(codes), expected, rtol=1e-8)


@pytest.mark.parametrize(
    "estimator, n_statistics",
    [
        (CEBMEncoder(**CHEAP_SETTINGS), 4),
        (VAEEncoder(n_components=4, hidden_layer_sizes=(16,), max_iter=2), 4),
        (IGEBMEncoder(**CHEAP_SETTINGS), 3),
    ],
    ids=["CEBMEncoder", "VAEEncoder", "IGEBMEncoder"],
)
def test_every_estimator_has_statistics_and_a_typicality(estimator, n_statistics):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    fitted = estimator.set_params(random_state=0).fit(X[:80])
    statistics, codes = model_statistics(fitted, X[80:])
    assert statistics.shape == (40, n_statistics) and np.all(np.isfinite(statistics))
    np.testing.assert_allclose(statistics[:, 0], fitted.score_samples(X[80:]), rtol=1e-6)
    np.testing.assert_allclose(codes, fitted.transform(X[80:]), rtol=1e-6)
    typicality = StatisticsTypicality(fitted, random_state=0).fit(X[80:], X_train=X[:80])
    scores = typicality.score_samples(X)
    assert scores.shape == (120,) and np.all(np.isfinite(scores))
    again = StatisticsTypicality(fitted, random_state=0).fit(X[80:], X_train=X[:80])
    np.testing.assert_array_equal(again.score_samples(X), scores)


def test_typicality_persists(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    fitted = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X[:80])
    typicality = StatisticsTypicality(fitted, random_state=0).fit(X[80:])
    joblib.dump(typicality, tmp_path / "typicality.joblib")
    loaded = joblib.load(tmp_path / "typicality.joblib")
    np.testing.assert_array_equal(loaded.score_samples(X), typicality.score_samples(X))


def test_typicality_needs_a_fitted_estimator_and_a_fit():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(NotFittedError):
        StatisticsTypicality(CEBMEncoder()).fit(X)
    with pytest.raises(NotFittedError):
        StatisticsTypicality(StandardGaussianModel().fit(X)).score_samples(X)
    with pytest.raises(ValueError, match="max_components"):
        StatisticsTypicality(StandardGaussianModel().fit(X), max_components=0).fit(X)
