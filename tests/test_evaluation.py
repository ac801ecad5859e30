"""The paper's evaluation protocols: OOD AUROC, neighbour agreement, aggregate-posterior KL/MI."""

from functools import partial

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from sklearn_cebm import CEBMEncoder
from sklearn_cebm.evaluation import (
    _pairwise_gaussian_log_density,
    aggregate_posterior_kl_and_mi,
    gaussian_mixture_log_density,
    nearest_neighbour_agreement,
    ood_auroc,
)

from .conftest import CHEAP_SETTINGS


class _FirstFeatureDensity:
    """A stand-in density model: log p(x) = -|x_0|, so ||d log p / dx|| = 1 off zero."""

    def score_samples(self, X):
        return -np.abs(np.asarray(X)[:, 0])


class _FirstFeatureGradient(_FirstFeatureDensity):
    def score_gradient_norm(self, X):
        return np.abs(np.asarray(X)[:, 0])


# ----------------------------------------------------------------- ood_auroc
def test_ood_auroc_of_a_perfect_and_a_reversed_score():
    near, far = np.array([[0.1], [-0.2], [0.3]]), np.array([[5.0], [-6.0]])
    assert ood_auroc(_FirstFeatureDensity(), near, far) == 1.0
    assert ood_auroc(_FirstFeatureDensity(), far, near) == 0.0


def test_ood_auroc_gradient_norm_treats_small_norms_as_in_distribution():
    small, large = np.array([[0.1], [0.2]]), np.array([[3.0], [4.0], [-5.0]])
    assert ood_auroc(_FirstFeatureGradient(), small, large, score="gradient_norm") == 1.0
    assert ood_auroc(_FirstFeatureGradient(), large, small, score="gradient_norm") == 0.0


def test_ood_auroc_of_indistinguishable_sets_is_one_half():
    same = np.array([[1.0], [2.0], [3.0]])
    assert ood_auroc(_FirstFeatureDensity(), same, same) == 0.5


@pytest.mark.parametrize(
    "estimator, score, error, match",
    [
        (_FirstFeatureDensity(), "likelihood", ValueError, "score must be one of"),
        (_FirstFeatureDensity(), "gradient_norm", TypeError, "score_gradient_norm"),
        (object(), "log_density", TypeError, "score_samples"),
    ],
)
def test_ood_auroc_rejects_bad_scores_and_estimators(estimator, score, error, match):
    with pytest.raises(error, match=match):
        ood_auroc(estimator, [[0.0]], [[1.0]], score=score)


def test_ood_auroc_rejects_non_finite_scores():
    with pytest.raises(ValueError, match="must be finite"):
        ood_auroc(_FirstFeatureDensity(), [[0.0]], [[np.inf]])


def _three_blobs(n_samples, rng):
    centers = np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 2.0, -2.0]])
    return centers[rng.integers(0, 3, size=n_samples)] + 0.3 * rng.standard_normal((n_samples, 3))


@pytest.mark.slow
def test_ood_auroc_of_a_trained_cebm_tells_held_out_data_from_noise():
    rng = np.random.default_rng(0)
    X, held_out = _three_blobs(300, rng), _three_blobs(200, rng)
    noise = rng.uniform(X.min(axis=0), X.max(axis=0), size=(200, 3))
    # Langevin's own noise level, sqrt(2 * step size), as in
    # tests/representation/test_encoder.py. AUROC over seeds 0-2: 0.37 to 0.57 untrained
    # (learning_rate=1e-7), 0.74 to 0.88 after one epoch, 0.87 to 0.92 after five, 0.96 to
    # 0.97 after these thirty.
    settings = {**CHEAP_SETTINGS, "hidden_layer_sizes": (32,), "max_iter": 30}
    settings.update(sgld_steps=20, sgld_step_size=0.01, sgld_noise=np.sqrt(0.02))
    settings.update(buffer_size=256, learning_rate=1e-2)
    encoder = CEBMEncoder(**settings, random_state=0).fit(X)
    assert ood_auroc(encoder, held_out, noise) > 0.94

    # Each score ranks the two sets as the estimator's own method does, outliers high.
    is_outlier, both = np.r_[np.zeros(200), np.ones(200)], np.r_[held_out, noise]
    outlyingness = {
        "log_density": -encoder.score_samples(both),
        "gradient_norm": encoder.score_gradient_norm(both),
    }
    for score, values in outlyingness.items():
        expected = roc_auc_score(is_outlier, values)
        assert ood_auroc(encoder, held_out, noise, score=score) == pytest.approx(expected)


# ----------------------------------------------------------------- score_gradient_norm
def test_cebm_score_gradient_norm_matches_finite_differences_in_callers_units(blobs):
    X, _ = blobs
    # Columns on very different scales, so the chain rule through input_scale_ matters.
    X = X * np.array([1.0, 100.0, 0.01])
    encoder = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    points = X[:5]
    steps = 1e-2 * encoder.input_scale_
    gradient = np.empty_like(points)
    for feature in range(X.shape[1]):
        shift = np.zeros(X.shape[1])
        shift[feature] = steps[feature]
        difference = encoder.score_samples(points + shift) - encoder.score_samples(points - shift)
        gradient[:, feature] = difference / (2 * steps[feature])
    np.testing.assert_allclose(
        encoder.score_gradient_norm(points), np.linalg.norm(gradient, axis=1), rtol=2e-2
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cebm_score_gradient_norm_dtype_follows_the_input_not_the_values(blobs, dtype):
    X = blobs[0]
    encoder = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    norms = encoder.score_gradient_norm(X.astype(dtype))
    assert norms.shape == (len(X),) and norms.dtype == dtype and np.all(np.isfinite(norms))
    # The model computes in float32 either way: only the input's rounding differs.
    np.testing.assert_allclose(norms, encoder.score_gradient_norm(X), rtol=1e-5)


# ----------------------------------------------------------------- nearest_neighbour_agreement
def test_nearest_neighbour_agreement_on_hand_made_points():
    features = [[0.0], [0.3], [5.0], [5.1], [5.3], [0.4]]
    labels = ["a", "a", "b", "b", "b", "b"]
    agreement, confusion = nearest_neighbour_agreement(features, labels)
    # Neighbours: 0.3, 0.4, 5.1, 5.0, 5.1, 0.3 -> labels a, b, b, b, b, a.
    assert agreement == pytest.approx(4 / 6)
    np.testing.assert_allclose(confusion, [[0.5, 0.5], [0.25, 0.75]])


def test_nearest_neighbour_agreement_is_one_on_separated_classes(blobs):
    X, y = blobs
    agreement, confusion = nearest_neighbour_agreement(X, y)
    assert agreement == 1.0
    np.testing.assert_array_equal(confusion, np.eye(3))


def test_nearest_neighbour_agreement_excludes_self_but_not_duplicates():
    # Two copies of one point with different labels: each one's neighbour is the other.
    features = [[0.0, 0.0], [0.0, 0.0], [9.0, 9.0], [9.5, 9.0]]
    agreement, confusion = nearest_neighbour_agreement(features, [0, 1, 1, 1])
    assert agreement == pytest.approx(2 / 4)
    np.testing.assert_allclose(confusion, [[0.0, 1.0], [1 / 3, 2 / 3]])
    np.testing.assert_allclose(confusion.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "features, labels, match",
    [
        ([[0.0], [1.0]], [0, 1, 1], "inconsistent numbers of samples"),
        ([[0.0]], [0], "at least 2 samples"),
    ],
)
def test_nearest_neighbour_agreement_rejects_bad_input(features, labels, match):
    with pytest.raises(ValueError, match=match):
        nearest_neighbour_agreement(features, labels)


# ----------------------------------------------------------------- aggregate posterior
def test_pairwise_gaussian_log_density_matches_scipy():
    rng = np.random.default_rng(0)
    z, mean = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    std = rng.uniform(0.1, 2.0, size=(5, 3))
    expected = norm.logpdf(z[:, None, :], mean[None], std[None]).sum(axis=2)
    np.testing.assert_allclose(_pairwise_gaussian_log_density(z, mean, std), expected)


def test_aggregate_posterior_of_posteriors_equal_to_the_prior_has_no_kl_nor_mi():
    kl, mi = aggregate_posterior_kl_and_mi(np.zeros((1500, 4)), np.ones((1500, 4)), random_state=0)
    assert kl == pytest.approx(0.0, abs=1e-10)
    assert mi == pytest.approx(0.0, abs=1e-10)


def test_aggregate_posterior_kl_and_mi_against_the_closed_form_for_gaussian_means():
    # q(z|x_n) = N(mu_n, s^2 I) with mu_n ~ N(0, (1 - s^2) I): q(z) = N(0, I) = p(z), so
    # KL = 0 and I(x; z) = E_n KL(q(z|x_n) || N(0, I)) = -K/2 log s^2.
    n_samples, n_components, std = 4000, 2, 0.5
    rng = np.random.default_rng(0)
    mean = rng.normal(scale=np.sqrt(1 - std**2), size=(n_samples, n_components))
    stds = np.full_like(mean, std)
    kl, mi = aggregate_posterior_kl_and_mi(mean, stds, batch_size=1000, random_state=0)
    assert kl == pytest.approx(0.0, abs=0.05)
    assert mi == pytest.approx(-n_components / 2 * np.log(std**2), abs=0.1)
    # The two add up to the average KL from each posterior to the prior, known exactly.
    per_sample_kl = 0.5 * np.sum(stds**2 + mean**2 - 1 - np.log(stds**2), axis=1)
    assert kl + mi == pytest.approx(per_sample_kl.mean(), abs=0.05)


def test_aggregate_posterior_mi_of_separated_sharp_posteriors_reaches_log_n():
    # Each z identifies its x_n: I(x; z) = log N, above the log(batch_size) a plain
    # batch-mixture estimate could reach; the stratified weights recover it.
    n_samples = 3000
    mean = np.random.default_rng(1).normal(size=(n_samples, 4))
    _, mi = aggregate_posterior_kl_and_mi(
        mean, np.full_like(mean, 1e-4), batch_size=1000, random_state=0
    )
    assert mi == pytest.approx(np.log(n_samples), abs=1e-3)
    assert mi > np.log(1000)


def test_aggregate_posterior_kl_uses_the_given_prior():
    mean, std = np.full((2000, 3), 2.0), np.ones((2000, 3))

    def shifted_prior(z):
        return norm.logpdf(z, loc=2.0).sum(axis=1)

    kl_shifted, _ = aggregate_posterior_kl_and_mi(
        mean, std, prior_log_density=shifted_prior, random_state=0
    )
    kl_standard, _ = aggregate_posterior_kl_and_mi(mean, std, random_state=0)
    assert kl_shifted == pytest.approx(0.0, abs=1e-10)
    # KL(N(2, 1) || N(0, 1)) = 2 nats per dimension.
    assert kl_standard == pytest.approx(6.0, abs=0.3)


def test_aggregate_posterior_kl_and_mi_is_reproducible():
    rng = np.random.default_rng(2)
    mean, std = rng.normal(size=(300, 2)), rng.uniform(0.2, 1.0, size=(300, 2))
    first = aggregate_posterior_kl_and_mi(mean, std, batch_size=100, random_state=5)
    assert first == aggregate_posterior_kl_and_mi(mean, std, batch_size=100, random_state=5)
    assert first != aggregate_posterior_kl_and_mi(mean, std, batch_size=100, random_state=6)


def _kl_and_mi_on_a_grid(mean, std, prior_log_density=None, half_width=8.0, step=0.02):
    """KL(q || p) and I(x; z) of the posteriors' exact aggregate, by a Riemann sum on a grid.

    ``q(z) = 1/N sum_n N(z; mu_n, std**2 I)`` in 1-D or 2-D, summed over the distinct means
    with their counts as weights. With one std, ``I(x; z) = H(q) - d/2 log(2 pi e std**2)``.
    """
    points, counts = np.unique(mean, axis=0, return_counts=True)
    n_dims = mean.shape[1]
    axis = np.arange(-half_width, half_width + step / 2, step)
    grid = np.stack(np.meshgrid(*[axis] * n_dims, indexing="ij"), axis=-1).reshape(-1, n_dims)
    components = norm.logpdf(grid[:, None, :], points, std).sum(axis=2)
    log_q = logsumexp(components, b=counts / counts.sum(), axis=1)
    mass = np.exp(log_q) * step**n_dims
    assert mass.sum() == pytest.approx(1.0, abs=1e-9)  # the grid holds all of q
    log_p = norm.logpdf(grid).sum(axis=1) if prior_log_density is None else prior_log_density(grid)
    entropy = -np.sum(mass * log_q)
    return np.sum(mass * (log_q - log_p)), entropy - n_dims / 2 * np.log(2 * np.pi * np.e * std**2)


def _four_points(n_samples):
    points = np.array([[-2.0, 1.0], [1.5, 1.5], [0.5, -2.0], [3.0, -1.0]])
    return points[np.random.default_rng(0).choice(4, size=n_samples, p=[0.4, 0.3, 0.2, 0.1])]


# One z per posterior: at these settings the Monte Carlo standard error is at most 0.7% of
# each answer, so 2% is three standard errors (at std 0.6, or means near 0, the KL's is 1-3%
# at N = 4000). The target is the finite mixture of the N posteriors given, not its limit.
@pytest.mark.parametrize("batch_size", [1000, None])
def test_aggregate_posterior_kl_and_mi_of_four_point_means_matches_integration(batch_size):
    mean = _four_points(4000)
    std = np.full_like(mean, 0.3)
    kl, mi = aggregate_posterior_kl_and_mi(mean, std, batch_size=batch_size, random_state=0)
    exact_kl, exact_mi = _kl_and_mi_on_a_grid(mean, 0.3)
    assert kl == pytest.approx(exact_kl, rel=0.02)  # 2.81 nats
    assert mi == pytest.approx(exact_mi, rel=0.02)  # 1.27 nats


@pytest.mark.parametrize("batch_size", [1000, None])
def test_aggregate_posterior_kl_to_a_mixture_prior_matches_integration(batch_size):
    mean = _four_points(4000)
    std = np.full_like(mean, 0.3)
    prior = partial(
        gaussian_mixture_log_density,
        means=[[-1.0, 1.0], [1.5, -1.0]],
        stds=[[1.0, 0.8], [1.2, 1.0]],
        weights=[0.5, 0.5],
    )
    kl, _ = aggregate_posterior_kl_and_mi(
        mean, std, batch_size=batch_size, prior_log_density=prior, random_state=1
    )
    exact_kl, _ = _kl_and_mi_on_a_grid(mean, 0.3, prior_log_density=prior)
    assert kl == pytest.approx(exact_kl, rel=0.02)  # 2.05 nats


@pytest.mark.parametrize("batch_size", [1000, None])
def test_aggregate_posterior_kl_and_mi_of_continuous_means_matches_integration(batch_size):
    # 6,000 distinct means: q(z) is near N(2, 1.04), but the target is the finite mixture.
    mean = np.random.default_rng(1).normal(2.0, 1.0, size=(6000, 1))
    std = np.full_like(mean, 0.2)
    kl, mi = aggregate_posterior_kl_and_mi(mean, std, batch_size=batch_size, random_state=1)
    exact_kl, exact_mi = _kl_and_mi_on_a_grid(mean, 0.2, step=0.01)
    assert kl == pytest.approx(exact_kl, rel=0.02)  # 2.04 nats
    assert mi == pytest.approx(exact_mi, rel=0.02)  # 1.63 nats


def test_aggregate_posterior_batches_bias_the_kl_down_and_the_mi_up():
    # The log of the batch's unbiased estimate of q(z_n) errs low on average (Jensen): where
    # the batch misses most of the posteriors near z_n, the KL comes out low and the MI high
    # by the same amount; summing q(z) whole (batch_size=None) does not.
    rng = np.random.default_rng(2)
    mean = rng.normal(scale=np.sqrt(0.75), size=(2000, 8))
    std = np.full_like(mean, 0.5)
    kl_batches, mi_batches = aggregate_posterior_kl_and_mi(
        mean, std, batch_size=200, random_state=0
    )
    kl_exact, mi_exact = aggregate_posterior_kl_and_mi(mean, std, batch_size=None, random_state=0)
    assert kl_batches < kl_exact - 0.1
    assert mi_batches > mi_exact + 0.1
    assert kl_batches + mi_batches == pytest.approx(kl_exact + mi_exact, abs=0.1)


def test_aggregate_posterior_whole_sum_equals_one_batch_of_all():
    rng = np.random.default_rng(3)
    mean, std = rng.normal(size=(300, 3)), rng.uniform(0.3, 1.0, size=(300, 3))
    whole = aggregate_posterior_kl_and_mi(mean, std, batch_size=None, random_state=4)
    # One batch of all is also exact; the two draw z in different orders.
    batch = aggregate_posterior_kl_and_mi(mean, std, batch_size=300, random_state=4)
    assert whole == pytest.approx(batch, abs=0.15)
    noise = np.random.RandomState(4).standard_normal(mean.shape)
    z = mean + std * noise
    log_q = np.log(np.mean(np.exp(norm.logpdf(z[:, None], mean, std).sum(axis=2)), axis=1))
    log_p = norm.logpdf(z).sum(axis=1)
    assert whole[0] == pytest.approx(np.mean(log_q - log_p), rel=1e-10)


@pytest.mark.parametrize(
    "mean, std, batch_size, match",
    [
        (np.zeros((5, 2)), np.ones((5, 3)), 1000, "same shape"),
        (np.zeros((5, 2)), np.zeros((5, 2)), 1000, "strictly positive"),
        (np.zeros((1, 2)), np.ones((1, 2)), 1000, "at least 2 samples"),
        (np.zeros((5, 2)), np.ones((5, 2)), 1, "batch_size must be None or an integer >= 2"),
        (np.zeros((5, 2)), np.ones((5, 2)), 2.5, "batch_size must be None or an integer >= 2"),
    ],
)
def test_aggregate_posterior_kl_and_mi_rejects_bad_input(mean, std, batch_size, match):
    with pytest.raises(ValueError, match=match):
        aggregate_posterior_kl_and_mi(mean, std, batch_size=batch_size)


# ----------------------------------------------------------------- gaussian_mixture_log_density
def test_gaussian_mixture_of_one_component_is_the_diagonal_gaussian():
    rng = np.random.default_rng(3)
    z, mean = rng.normal(size=(6, 4)), rng.normal(size=(1, 4))
    std = rng.uniform(0.2, 3.0, size=(1, 4))
    expected = norm.logpdf(z, mean, std).sum(axis=1)
    np.testing.assert_allclose(gaussian_mixture_log_density(z, mean, std, [1.0]), expected)


def test_gaussian_mixture_log_density_matches_the_weighted_sum_of_components():
    rng = np.random.default_rng(4)
    z, means = rng.normal(size=(5, 2)), rng.normal(size=(3, 2))
    stds, weights = rng.uniform(0.5, 2.0, size=(3, 2)), np.array([0.2, 0.3, 0.5])
    components = norm.pdf(z[:, None, :], means, stds).prod(axis=2)
    np.testing.assert_allclose(
        gaussian_mixture_log_density(z, means, stds, weights), np.log(components @ weights)
    )


def test_gaussian_mixture_density_integrates_to_one_and_ignores_empty_components():
    mixture = dict(means=[[-2.0], [1.0], [50.0]], stds=[[0.5], [2.0], [1.0]])

    def density(x):
        return np.exp(gaussian_mixture_log_density([[x]], weights=[0.3, 0.7, 0.0], **mixture))[0]

    assert quad(density, -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-8)
    assert np.isfinite(gaussian_mixture_log_density([[50.0]], weights=[0.3, 0.7, 0.0], **mixture))


def test_aggregate_posterior_kl_to_a_mixture_prior_of_the_posteriors_is_zero():
    # Three posteriors at one component and one at the other, weights 3/4 and 1/4: with the
    # whole data in one batch the aggregate posterior is the prior exactly.
    means, stds = np.array([[0.0, 1.0], [4.0, -2.0]]), np.array([[1.0, 0.5], [0.3, 2.0]])
    members = [0, 0, 0, 1]
    prior = partial(gaussian_mixture_log_density, means=means, stds=stds, weights=[0.75, 0.25])
    kl, _ = aggregate_posterior_kl_and_mi(
        means[members], stds[members], batch_size=4, prior_log_density=prior, random_state=0
    )
    assert kl == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "z, means, stds, weights, match",
    [
        ([[0.0]], [[0.0], [1.0]], [[1.0]], [0.5, 0.5], "same shape"),
        ([[0.0]], [[0.0], [1.0]], [[1.0], [1.0]], [1.0], "one entry per row"),
        ([[0.0, 0.0]], [[0.0]], [[1.0]], [1.0], "columns"),
        ([[0.0]], [[0.0]], [[0.0]], [1.0], "strictly positive"),
        ([[0.0]], [[0.0], [1.0]], [[1.0], [1.0]], [0.5, 0.6], "sum to 1"),
        ([[0.0]], [[0.0], [1.0]], [[1.0], [1.0]], [1.5, -0.5], "non-negative"),
    ],
)
def test_gaussian_mixture_log_density_rejects_bad_parameters(z, means, stds, weights, match):
    with pytest.raises(ValueError, match=match):
        gaussian_mixture_log_density(z, means, stds, weights)
