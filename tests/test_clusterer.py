"""Behaviour of GMMCEBMClusterer: probabilities, labels, the marginal, errors, persistence."""

import math

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import adjusted_rand_score
from skorch.callbacks import Callback

from sklearn_cebm import GMMCEBMClusterer, TrainingDivergedError

from .conftest import CHEAP_SETTINGS

SETTINGS = dict(CHEAP_SETTINGS, n_clusters=3)


@pytest.fixture
def fitted(blobs):
    X, _ = blobs
    return GMMCEBMClusterer(**SETTINGS, random_state=0).fit(X)


def test_gmmcebmclusterer_responsibilities_sum_to_one(fitted, blobs):
    X, _ = blobs
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), fitted.predict(X))


def test_gmmcebmclusterer_fit_predict_equals_fit_then_predict(blobs):
    X, _ = blobs
    labels = GMMCEBMClusterer(**SETTINGS, random_state=1).fit_predict(X)
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=1).fit(X)
    np.testing.assert_array_equal(labels, clusterer.predict(X))
    np.testing.assert_array_equal(labels, clusterer.labels_)


def test_gmmcebmclusterer_finds_the_blobs(fitted, blobs):
    _, y = blobs
    assert adjusted_rand_score(y, fitted.labels_) > 0.8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gmmcebmclusterer_shapes_and_dtypes(blobs, dtype):
    X = blobs[0].astype(dtype)
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=2).fit(X)
    n, k = len(X), CHEAP_SETTINGS["n_components"]
    assert clusterer.labels_.shape == (n,) and clusterer.labels_.dtype == np.int64
    assert clusterer.predict(X).dtype == np.int64
    assert clusterer.predict_proba(X).dtype == dtype
    for mixture_mean in (False, True):
        Z = clusterer.transform(X, mixture_mean=mixture_mean)
        assert Z.shape == (n, k) and Z.dtype == dtype
    assert clusterer.score_samples(X).shape == (n,)
    assert clusterer.score_samples(X).dtype == dtype
    assert clusterer.cluster_means_.shape == clusterer.cluster_stds_.shape == (3, k)
    assert np.all(clusterer.cluster_stds_ > 0)
    np.testing.assert_allclose(clusterer.weights_, np.full(3, 1 / 3))
    assert clusterer.n_iter_ == len(clusterer.history_) == CHEAP_SETTINGS["max_iter"]
    assert clusterer.get_feature_names_out().tolist() == [f"gmmcebmclusterer{i}" for i in range(k)]


def test_gmmcebmclusterer_transform_picks_most_probable_component(fitted, blobs):
    X, _ = blobs
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


def test_gmmcebmclusterer_same_random_state_same_result(blobs):
    X, _ = blobs
    first = GMMCEBMClusterer(**SETTINGS, random_state=3).fit(X)
    second = GMMCEBMClusterer(**SETTINGS, random_state=3).fit(X)
    other = GMMCEBMClusterer(**SETTINGS, random_state=4).fit(X)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    np.testing.assert_array_equal(first.cluster_means_, second.cluster_means_)
    np.testing.assert_array_equal(
        first.sample(3, component=1, n_steps=5), second.sample(3, component=1, n_steps=5)
    )
    assert not np.allclose(first.predict_proba(X), other.predict_proba(X))


def test_gmmcebmclusterer_one_cluster_puts_everything_in_it(blobs):
    X, _ = blobs
    clusterer = GMMCEBMClusterer(**{**SETTINGS, "n_clusters": 1}, random_state=5).fit(X)
    np.testing.assert_array_equal(clusterer.labels_, np.zeros(len(X)))
    np.testing.assert_allclose(clusterer.predict_proba(X), 1.0)
    np.testing.assert_allclose(clusterer.transform(X), clusterer.transform(X, mixture_mean=True))
    # The one-component energy equals the spherical bias's: tests/core/test_biases.py.


def test_gmmcebmclusterer_score_samples_is_marginal_over_y_and_z(blobs):
    # -E(x) = log sum_y int exp(-E(x, y, z)) dz - K/2 log(2 pi), on a fitted model with K=1.
    X, _ = blobs
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


def test_gmmcebmclusterer_partial_fit_and_warm_start_continue(blobs):
    X, _ = blobs
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=7)
    clusterer.partial_fit(X[:100]).partial_fit(X[100:])
    assert clusterer.n_iter_ == 2 and clusterer.labels_.shape == (50,)
    clusterer = GMMCEBMClusterer(**SETTINGS, warm_start=True, random_state=7).fit(X)
    means = clusterer.cluster_means_
    clusterer.fit(X)
    assert clusterer.n_iter_ == 2 * CHEAP_SETTINGS["max_iter"]
    assert not np.array_equal(means, clusterer.cluster_means_)


def test_gmmcebmclusterer_random_init_keeps_bias_draw(blobs):
    X, _ = blobs
    clusterer = GMMCEBMClusterer(**SETTINGS, init_params="random", random_state=8).fit(X)
    assert clusterer.n_iter_ == CHEAP_SETTINGS["max_iter"]
    assert np.all(np.abs(clusterer.cluster_means_) < 5)


def test_gmmcebmclusterer_learned_weights_stay_a_distribution(blobs):
    X, _ = blobs
    settings = {**SETTINGS, "learn_weights": True, "learning_rate": 1e-2}
    clusterer = GMMCEBMClusterer(**settings, random_state=9).fit(X)
    assert clusterer.weights_.sum() == pytest.approx(1.0)
    assert not np.allclose(clusterer.weights_, 1 / 3)


def test_gmmcebmclusterer_sample_from_one_component(fitted, blobs):
    X, _ = blobs
    samples = fitted.sample(6, component=2, n_steps=10, random_state=0)
    assert samples.shape == (6, X.shape[1])
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


BAD_INPUTS = [
    (np.array([[0.0, np.nan, 1.0]] * 4), ValueError, "NaN"),
    (np.array([[0.0, np.inf, 1.0]] * 4), ValueError, "infinity"),
    (np.zeros(5), ValueError, "Expected 2D array"),
    (np.zeros((0, 3)), ValueError, "0 sample"),
    (sp.csr_matrix(np.ones((4, 3))), TypeError, "Sparse data"),
]


@pytest.mark.parametrize(("X", "error", "message"), BAD_INPUTS)
def test_gmmcebmclusterer_rejects_bad_input_at_fit(X, error, message):
    for method in ("fit", "fit_predict", "partial_fit"):
        clusterer = GMMCEBMClusterer(**SETTINGS)
        with pytest.raises(error, match=message):
            getattr(clusterer, method)(X)
        assert not hasattr(clusterer, "net_")


@pytest.mark.parametrize(("X", "error", "message"), BAD_INPUTS)
def test_gmmcebmclusterer_rejects_bad_input_at_predict(fitted, X, error, message):
    for method in (fitted.predict, fitted.predict_proba, fitted.transform, fitted.score_samples):
        with pytest.raises(error, match=message):
            method(X)


def test_gmmcebmclusterer_rejects_wrong_feature_count(fitted):
    for method in (fitted.predict, fitted.predict_proba, fitted.transform):
        with pytest.raises(ValueError, match=r"X has 5 features.*expecting 3 features"):
            method(np.zeros((4, 5)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_clusters": 0}, "n_clusters"),
        ({"init_params": "kmeans"}, "init_params"),
        ({"learn_weights": "yes"}, "learn_weights"),
        ({"cluster_balance": -1.0}, "cluster_balance"),
    ],
)
def test_gmmcebmclusterer_rejects_bad_parameters(blobs, params, message):
    with pytest.raises(ValueError, match=message):
        GMMCEBMClusterer(**{**SETTINGS, **params}).fit(blobs[0])


def test_gmmcebmclusterer_joblib_round_trip(fitted, blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "clusterer.joblib"
    joblib.dump(fitted, path)
    restored = joblib.load(path)
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(restored.labels_, fitted.labels_)


def test_gmmcebmclusterer_divergence_leaves_estimator_unchanged(blobs):
    X, _ = blobs
    settings = {**SETTINGS, "learning_rate": 1e6, "max_iter": 5, "energy_l2": 0.0}
    clusterer = GMMCEBMClusterer(**settings, random_state=0)
    with pytest.raises(TrainingDivergedError, match="Lower learning_rate"):
        clusterer.fit(X)
    assert not hasattr(clusterer, "net_") and not hasattr(clusterer, "labels_")


class _FailOnSecondEpoch(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 2:
            raise RuntimeError("stop at epoch 2")


def test_gmmcebmclusterer_failure_after_seeding_leaves_estimator_unchanged(blobs):
    # With k-means++ the fit has two phases; a failure in the second undoes the first.
    X, _ = blobs
    clusterer = GMMCEBMClusterer(**SETTINGS, callbacks=[_FailOnSecondEpoch()], random_state=0)
    with pytest.raises(RuntimeError, match="epoch 2"):
        clusterer.fit(X)
    assert not hasattr(clusterer, "net_") and not hasattr(clusterer, "n_features_in_")


@pytest.mark.parametrize("cluster_balance", [0.0, 2.0])
def test_gmmcebmclusterer_cluster_balance_reaches_the_bias(blobs, cluster_balance):
    # 0 leaves the paper's likelihood alone: the model has no regularizer to add.
    X, _ = blobs
    settings = {**SETTINGS, "max_iter": 1, "cluster_balance": cluster_balance}
    clusterer = GMMCEBMClusterer(**settings, random_state=10).fit(X)
    module = clusterer.net_.module_
    assert module.bias.cluster_balance == cluster_balance
    X_unit = torch.as_tensor(clusterer._inference(lambda x: x, X), dtype=torch.float32)
    penalty = module.regularizer(X_unit)
    if cluster_balance == 0:
        assert penalty is None
    else:
        assert 0 <= penalty.item() <= cluster_balance * math.log(3) + 1e-6
