"""Behaviour of GMMCEBMClusterer: probabilities, labels, the marginal, sampling a cluster.

What every estimator must do (persistence, determinism, bad input, scikit-learn's tools) is
tested over all of them in tests/test_common.py.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import rel_entr, softmax
from sklearn.cluster import kmeans_plusplus
from sklearn.metrics import adjusted_rand_score
from skorch.callbacks import Callback

from sklearn_cebm import GMMCEBMClusterer

from .conftest import CHEAP_SETTINGS

SETTINGS = dict(CHEAP_SETTINGS, n_clusters=3)


@pytest.fixture
def fitted(X):
    return GMMCEBMClusterer(**SETTINGS, random_state=0).fit(X)


def test_gmmcebmclusterer_responsibilities_sum_to_one(fitted, X):
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # Bayes' rule on the energies: p(y | x) is proportional to exp(-E(x, y)).
    energies = fitted._inference(fitted.net_.module_.bias_method("component_energy"), X)
    np.testing.assert_allclose(proba, softmax(-energies, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(proba.argmax(axis=1), fitted.predict(X))


def test_gmmcebmclusterer_finds_the_blobs(fitted, blobs):
    _, y = blobs
    assert adjusted_rand_score(y, fitted.labels_) > 0.8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gmmcebmclusterer_shapes_and_dtypes(X, dtype):
    # The outputs every estimator has keep the input's dtype: tests/test_common.py.
    X = X.astype(dtype)
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=2).fit(X)
    n, k = len(X), CHEAP_SETTINGS["n_components"]
    assert clusterer.labels_.shape == (n,) and clusterer.labels_.dtype == np.int64
    assert clusterer.predict(X).dtype == np.int64
    assert clusterer.predict_proba(X).shape == (n, 3)
    Z = clusterer.transform(X, mixture_mean=True)
    assert Z.shape == (n, k) and Z.dtype == dtype
    assert clusterer.cluster_means_.shape == clusterer.cluster_stds_.shape == (3, k)
    # The posterior under a cluster adds the data's precision to the cluster's own.
    _, Z_std = clusterer.transform(X, return_std=True)
    assert np.all(Z_std < clusterer.cluster_stds_[clusterer.predict(X)])
    np.testing.assert_allclose(clusterer.weights_, np.full(3, 1 / 3))


def test_gmmcebmclusterer_transform_picks_most_probable_component(fitted, X):
    module = fitted.net_.module_
    with torch.no_grad():
        X_unit = torch.as_tensor(fitted._inference(lambda x: x, X), dtype=torch.float32)
        means, _ = module.posterior_mean_std(X_unit)
    labels = fitted.predict(X)
    expected = means[np.arange(len(X)), labels].numpy()
    np.testing.assert_allclose(fitted.transform(X), expected, rtol=1e-5, atol=1e-6)
    proba = fitted.predict_proba(X)
    mixture = np.einsum("nl,nlk->nk", proba, means.numpy())
    np.testing.assert_allclose(fitted.transform(X, mixture_mean=True), mixture, atol=1e-5)


def test_gmmcebmclusterer_one_cluster_puts_everything_in_it(X):
    clusterer = GMMCEBMClusterer(**{**SETTINGS, "n_clusters": 1}, random_state=5).fit(X)
    np.testing.assert_array_equal(clusterer.labels_, np.zeros(len(X)))
    np.testing.assert_allclose(clusterer.predict_proba(X), 1.0)
    np.testing.assert_allclose(clusterer.transform(X), clusterer.transform(X, mixture_mean=True))
    # The one-component energy equals the spherical bias's: tests/core/test_biases.py.


def test_gmmcebmclusterer_score_samples_is_marginal_over_y_and_z(X):
    # -E(x) = log sum_y int exp(-E(x, y, z)) dz - K/2 log(2 pi), on a fitted model with K=1.
    settings = {**SETTINGS, "n_components": 1, "learn_weights": True}
    clusterer = GMMCEBMClusterer(**settings, random_state=6).fit(X[:20])
    module = clusterer.net_.module_
    X_unit = torch.as_tensor(clusterer._inference(lambda x: x, X[:20]), dtype=torch.float32)
    grid = torch.linspace(-30.0, 30.0, 60001, dtype=torch.float64).unsqueeze(-1)
    step = (grid[1] - grid[0]).item()
    with torch.no_grad():
        statistics = [s.double() for s in module.sufficient_statistics(X_unit)]
        bias = module.bias.double()
        log_integrals = []
        for row in range(20):
            row_statistics = (statistics[0][row], statistics[1][row])
            per_component = torch.stack(
                [-bias.joint_energy(row_statistics, y, grid) for y in range(3)]
            )
            log_integrals.append(torch.logsumexp(per_component.flatten(), 0) + math.log(step))
    expected = clusterer.score_samples(X[:20]) + 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(torch.stack(log_integrals).numpy(), expected, atol=1e-4)


def test_gmmcebmclusterer_partial_fit_labels_the_last_batch(X):
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=7)
    clusterer.partial_fit(X[:100]).partial_fit(X[100:])
    assert clusterer.labels_.shape == (50,)
    np.testing.assert_array_equal(clusterer.labels_, clusterer.predict(X[100:]))


def test_gmmcebmclusterer_warm_start_moves_the_cluster_means(X):
    clusterer = GMMCEBMClusterer(**SETTINGS, warm_start=True, random_state=7).fit(X)
    means = clusterer.cluster_means_
    clusterer.fit(X)
    assert not np.array_equal(means, clusterer.cluster_means_)


def _codes(clusterer, X):
    """The codes ``t_1(x) / (-2 t_2(x))`` of X, on which k-means++ places the means."""
    return clusterer._inference(clusterer.net_.module_.bias_method("statistic_means"), X)


def test_gmmcebmclusterer_kmeans_plusplus_seeds_the_means_on_the_codes_random_does_not(X):
    # The seeding acts at the end of the first epoch; with max_iter=1 nothing trains after it.
    settings = {**SETTINGS, "max_iter": 1}
    other_X = np.random.default_rng(1).normal(size=X.shape)

    seeded = GMMCEBMClusterer(**settings, random_state=8).fit(X)
    expected, _ = kmeans_plusplus(_codes(seeded, X), 3, random_state=8)
    np.testing.assert_allclose(seeded.cluster_means_, expected, rtol=1e-6)
    assert np.all(np.bincount(seeded.labels_, minlength=3) > 0)
    seeded_elsewhere = GMMCEBMClusterer(**settings, random_state=8).fit(other_X)
    assert np.abs(seeded.cluster_means_ - seeded_elsewhere.cluster_means_).max() > 0.1

    # 'random' keeps the N(0, 1) draw of the seed, whatever the data: one epoch's Adam
    # steps (learning_rate 1e-3) move it by under 1e-2, and it lies far from the codes,
    # which span a few tenths.
    drawn = GMMCEBMClusterer(**settings, init_params="random", random_state=8).fit(X)
    drawn_elsewhere = GMMCEBMClusterer(**settings, init_params="random", random_state=8)
    drawn_elsewhere.fit(other_X)
    assert drawn.n_iter_ == 1
    np.testing.assert_allclose(drawn.cluster_means_, drawn_elsewhere.cluster_means_, atol=1e-2)
    codes = _codes(drawn, X)
    distances = np.linalg.norm(drawn.cluster_means_[:, None] - codes[None], axis=-1)
    assert distances.min() > 0.3


def test_gmmcebmclusterer_learned_weights_stay_a_distribution(X):
    settings = {**SETTINGS, "learn_weights": True, "learning_rate": 1e-2}
    clusterer = GMMCEBMClusterer(**settings, random_state=9).fit(X)
    assert clusterer.weights_.sum() == pytest.approx(1.0)
    assert not np.allclose(clusterer.weights_, 1 / 3)


def test_gmmcebmclusterer_sample_from_one_component(fitted, X):
    samples = fitted.sample(6, component=2, n_steps=10, random_state=0)
    assert samples.shape == (6, X.shape[1])
    np.testing.assert_array_equal(
        samples, fitted.sample(6, component=2, n_steps=10, random_state=0)
    )
    assert np.all(samples >= X.min(axis=0) - 1e-9) and np.all(samples <= X.max(axis=0) + 1e-9)
    assert fitted.sample(2, n_steps=3).shape == (2, X.shape[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"component": 3}, r"component must be an integer in \[0, 3\)"),
        ({"component": -1}, "component must be an integer"),
        ({"component": 1.5}, "component must be an integer"),
        ({"component": 0, "n_steps": -1}, "n_steps >= 0"),
    ],
)
def test_gmmcebmclusterer_sample_rejects_bad_arguments(fitted, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fitted.sample(2, **kwargs)


class _FailOnSecondEpoch(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 2:
            raise RuntimeError("stop at epoch 2")


def test_gmmcebmclusterer_failure_after_seeding_leaves_estimator_unchanged(X):
    # With k-means++ the fit has two phases; a failure in the second undoes the first.
    clusterer = GMMCEBMClusterer(**SETTINGS, callbacks=[_FailOnSecondEpoch()], random_state=0)
    with pytest.raises(RuntimeError, match="epoch 2"):
        clusterer.fit(X)
    assert not hasattr(clusterer, "net_") and not hasattr(clusterer, "n_features_in_")


@pytest.mark.parametrize("cluster_balance", [0.0, 2.0])
def test_gmmcebmclusterer_cluster_balance_reaches_the_bias(X, cluster_balance):
    # 0 leaves the paper's likelihood alone: the model has no regularizer to add.
    settings = {**SETTINGS, "max_iter": 1, "cluster_balance": cluster_balance}
    clusterer = GMMCEBMClusterer(**settings, init_params="random", random_state=10).fit(X)
    module = clusterer.net_.module_
    assert module.bias.cluster_balance == cluster_balance
    X_unit = torch.as_tensor(clusterer._inference(lambda x: x, X), dtype=torch.float32)
    penalty = module.regularizer(X_unit)
    if cluster_balance == 0:
        assert penalty is None
        return
    # beta KL(q || pi), q the batch's mean responsibilities, from the estimator's own. The
    # random means leave the clusters far from balanced (q about (0.59, 0.03, 0.38)), so the
    # value is far from 0 and float32 rounding small beside it.
    usage = clusterer.predict_proba(X).mean(axis=0)
    expected = cluster_balance * rel_entr(usage, clusterer.weights_).sum()
    assert penalty.item() == pytest.approx(expected, rel=1e-4)


# Six samples' responsibilities over 3 equally weighted clusters, and beta KL(q || pi) in
# closed form, q their mean: 0 for the proportions pi, log 3 when one cluster takes them
# all, and for q = (1/2, 1/3, 1/6), 1/2 log(3/2) + 1/3 log(1) + 1/6 log(1/2).
CHOSEN_RESPONSIBILITIES = [
    pytest.param([0, 1, 2, 0, 1, 2], 0.0, id="proportions-pi"),
    pytest.param([1, 1, 1, 1, 1, 1], math.log(3), id="one-cluster-takes-all"),
    pytest.param([0, 0, 0, 1, 1, 2], math.log(1.5) / 2 + math.log(0.5) / 6, id="in-between"),
]


@pytest.mark.parametrize(("clusters", "divergence"), CHOSEN_RESPONSIBILITIES)
def test_gmmcebmclusterer_cluster_balance_penalty_in_closed_form(X, clusters, divergence):
    settings = {**SETTINGS, "max_iter": 1, "cluster_balance": 2.0}
    module = GMMCEBMClusterer(**settings, random_state=10).fit(X).net_.module_
    responsibilities = torch.eye(3)[clusters]
    # The bias's own evidence replaced by the chosen responsibilities' logs: the penalty
    # softmaxes them back.
    module.bias.component_log_evidence = lambda statistics: responsibilities.log()
    X_unit = torch.zeros(len(clusters), X.shape[1])
    assert module.regularizer(X_unit).item() == pytest.approx(2.0 * divergence, abs=1e-6)
