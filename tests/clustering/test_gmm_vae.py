"""GMMVAEClusterer: its cluster posterior, ELBO, mixture placement, clusters and samples.

What every estimator must do (persistence, determinism, bad input, not-fitted errors,
fit_predict against fit().predict, scikit-learn's tools) is tested over all of them in
tests/test_common.py, where this estimator is one of the variants.
"""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state

from sklearn_cebm import GMMVAEClusterer

from ..conftest import allow_empty_clusters
from ..estimators import test_docstrings as docstring_tests

SETTINGS = dict(
    n_clusters=3, n_components=2, hidden_layer_sizes=(16,), max_iter=3, warmup_iter=1, batch_size=32
)


@pytest.fixture
def fitted(X):
    return GMMVAEClusterer(**SETTINGS, random_state=0).fit(X)


def _expected_log_joint(clusterer, X):
    """``log pi_y + E_q[log N(z; mu_y, sigma_y**2)]`` in numpy from the public outputs."""
    mean, std = clusterer.transform(X, return_std=True)
    means, stds = clusterer.cluster_means_, clusterer.cluster_stds_
    squared = (mean[:, None, :] - means) ** 2 + std[:, None, :] ** 2
    log_density = -0.5 * (squared / stds**2 + np.log(2 * np.pi * stds**2)).sum(axis=-1)
    return log_density + np.log(clusterer.weights_)


def test_gmm_vae_fitted_attributes_have_their_shapes(fitted, X):
    assert fitted.cluster_means_.shape == fitted.cluster_stds_.shape == (3, 2)
    assert fitted.weights_.shape == (3,)
    assert np.all(fitted.cluster_stds_ > 0)
    assert fitted.weights_.sum() == pytest.approx(1.0)
    assert fitted.labels_.shape == (len(X),) and fitted.labels_.dtype == np.int64


def test_gmm_vae_predict_proba_is_the_closed_form_cluster_posterior(fitted, X):
    # q(y | x) proportional to pi_y exp(E_q(z|x)[log N(z; mu_y, sigma_y**2)]), from the
    # encoder's posterior and the fitted components.
    log_joint = _expected_log_joint(fitted, X)
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba, softmax(log_joint, axis=1), atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fitted.predict(X), log_joint.argmax(axis=1))


def test_gmm_vae_score_samples_is_the_elbo_with_the_mixture_kl(fitted, X):
    # ELBO = E_q[log p(x | z)] - KL, KL = -H[q(z|x)] - logsumexp_y(expected log joint).
    mean, std = fitted.transform(X, return_std=True)
    entropy = (np.log(std) + 0.5 * np.log(2 * np.pi * np.e)).sum(axis=1)
    kl = -entropy - logsumexp(_expected_log_joint(fitted, X), axis=1)
    module = fitted.net_.module_
    x_unit = torch.as_tensor((X - fitted.input_center_) / fitted.input_scale_, dtype=torch.float32)
    noise = module.score_noise.unsqueeze(1)
    with torch.no_grad():
        reconstruction = module.expected_log_likelihood(
            x_unit, torch.as_tensor(mean).float(), torch.as_tensor(std).float(), noise
        ).numpy()
    np.testing.assert_allclose(fitted.score_samples(X), reconstruction - kl, rtol=1e-4, atol=1e-3)


def test_gmm_vae_transform_is_the_encoders_posterior(fitted, X):
    mean, std = fitted.transform(X, return_std=True)
    np.testing.assert_array_equal(mean, fitted.transform(X))
    assert mean.shape == std.shape == (len(X), 2)
    assert np.all(std > 0)


@pytest.fixture
def fitted_on_blobs():
    """A fit on three well-separated blobs in 8 dimensions, and their labels.

    In 2 or 3 dimensions, scaled into [-1, 1], a VAE this small explains much of the data as
    observation noise and its codes hardly separate the blobs; in 8 they do.
    """
    X, y = make_blobs(n_samples=300, centers=3, n_features=8, random_state=0)
    settings = dict(SETTINGS, learning_rate=1e-2, max_iter=20, warmup_iter=5)
    return GMMVAEClusterer(**settings, random_state=0).fit(X), y


def test_gmm_vae_clusters_well_separated_blobs(fitted_on_blobs):
    clusterer, y = fitted_on_blobs
    assert adjusted_rand_score(y, clusterer.labels_) > 0.9


def test_gmm_vae_component_samples_fall_in_their_cluster(fitted_on_blobs):
    clusterer, _ = fitted_on_blobs
    for component in range(3):
        samples = clusterer.sample(50, component=component, random_state=1)
        assert samples.shape == (50, 8)
        assert np.mean(clusterer.predict(samples) == component) > 0.9


def test_gmm_vae_sample_draws_clusters_by_the_weights(fitted):
    # The labels are drawn from pi, so a seed gives other samples than fixing a component.
    mixed = fitted.sample(6, random_state=2)
    np.testing.assert_array_equal(mixed, fitted.sample(6, random_state=2))
    assert not np.allclose(mixed, fitted.sample(6, component=0, random_state=2))


@pytest.mark.parametrize("component", [-1, 3, 1.0, "0"])
def test_gmm_vae_sample_rejects_a_bad_component(fitted, component):
    with pytest.raises(ValueError, match=r"component must be an integer in \[0, 3\)"):
        fitted.sample(2, component=component)


def test_gmm_vae_sample_component_needs_a_fit(X):
    with pytest.raises(NotFittedError):
        GMMVAEClusterer(**SETTINGS).sample(2, component=0)


def test_gmm_vae_components_are_identical_until_placed(X):
    # Before the placement the prior is n_clusters copies of one Gaussian: a VAE's prior,
    # which training moves but cannot split, and q(y | x) is uniform.
    clusterer = GMMVAEClusterer(**dict(SETTINGS, warmup_iter=3), random_state=0)
    clusterer.partial_fit(X).partial_fit(X)
    prior = clusterer.net_.module_.prior
    means, stds = prior.means.detach().numpy(), prior.component_stds().detach().numpy()
    # Equal up to rounding: each component's gradient is a reduction that vector units
    # may sum in another order per row (1e-7 apart on an Intel Xeon with AMX).
    np.testing.assert_allclose(means, np.broadcast_to(means[0], means.shape), rtol=1e-6)
    np.testing.assert_allclose(stds, np.broadcast_to(stds[0], stds.shape), rtol=1e-6)
    np.testing.assert_allclose(clusterer.predict_proba(X), 1 / 3, rtol=1e-6)
    clusterer.partial_fit(X)
    assert not np.allclose(clusterer.predict_proba(X), 1 / 3)


@allow_empty_clusters
@pytest.mark.parametrize("learn_weights", [False, True])
def test_gmm_vae_gmm_placement_is_a_gaussian_mixture_on_the_posterior_means(X, learn_weights):
    # Placed after the last epoch, so the fitted components are the placement's: a diagonal
    # GaussianMixture on the posterior means, its variances widened by q's mean variance.
    settings = dict(SETTINGS, max_iter=2, warmup_iter=2, learn_weights=learn_weights)
    clusterer = GMMVAEClusterer(**settings, random_state=0).fit(X)
    codes, stds = clusterer.transform(X, return_std=True)
    mixture = GaussianMixture(
        3, covariance_type="diag", init_params="k-means++", random_state=0
    ).fit(codes)
    np.testing.assert_allclose(clusterer.cluster_means_, mixture.means_, rtol=1e-5, atol=1e-6)
    widened = np.sqrt(mixture.covariances_ + (stds.astype(np.float32) ** 2).mean(axis=0))
    np.testing.assert_allclose(clusterer.cluster_stds_, widened, rtol=1e-5)
    weights = mixture.weights_ if learn_weights else np.full(3, 1 / 3)
    np.testing.assert_allclose(clusterer.weights_, weights, rtol=1e-5)


def test_gmm_vae_kmeans_plusplus_places_means_on_the_codes(X):
    settings = dict(SETTINGS, max_iter=2, warmup_iter=2, init_params="k-means++")
    clusterer = GMMVAEClusterer(**settings, random_state=0).fit(X)
    codes = clusterer.transform(X)
    seeds, _ = kmeans_plusplus(codes, 3, random_state=check_random_state(0))
    np.testing.assert_allclose(clusterer.cluster_means_, seeds, rtol=1e-6)
    # The stds are the warm-up's, the same for every component.
    stds = clusterer.cluster_stds_
    np.testing.assert_array_equal(stds, np.broadcast_to(stds[0], stds.shape))


@allow_empty_clusters
def test_gmm_vae_random_init_draws_distinct_means(X):
    settings = dict(SETTINGS, max_iter=1, init_params="random")
    clusterer = GMMVAEClusterer(**settings, random_state=0).fit(X)
    assert len({tuple(mean) for mean in np.round(clusterer.cluster_means_, 3)}) == 3


@pytest.mark.parametrize(
    "check",
    [
        docstring_tests.test_every_parameter_is_documented_in_signature_order_and_nothing_else,
        docstring_tests.test_documented_defaults_are_the_signature_defaults,
        docstring_tests.test_every_constrained_parameter_is_in_the_signature,
        docstring_tests.test_no_placeholder_is_left_and_common_attributes_are_listed,
    ],
    ids=lambda check: check.__name__,
)
def test_gmm_vae_docstring(check):
    # tests/estimators/test_docstrings.py's checks, on this estimator too.
    check(GMMVAEClusterer)


def test_gmm_vae_warns_when_clusters_are_left_empty():
    # Two distinct rows have two distinct posteriors: a third cluster stays empty.
    X = np.repeat([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]], 20, axis=0)
    clusterer = GMMVAEClusterer(**SETTINGS, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"in [12] of its n_clusters=3 clusters"):
        clusterer.fit(X)
    assert len(np.unique(clusterer.labels_)) < 3
