"""Behaviour of GMMCEBMClusterer: probabilities, labels, the marginal, sampling a cluster.

What every estimator must do (persistence, determinism, bad input, scikit-learn's tools) is
tested over all of them in tests/test_common.py.
"""

import functools
import math
import pickle
import threading

import numpy as np
import pytest
import torch
from scipy.special import rel_entr, softmax
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.utils import estimator_checks
from skorch.callbacks import Callback

from sklearn_cebm import GMMCEBMClusterer, SamplerWarning, TrainingDivergedError
from sklearn_cebm._clustering.neighbour_graph import (
    nearest_neighbour_rows,
    neighbour_affinity,
    shared_neighbour_affinity,
    spectral_partition,
)
from sklearn_cebm._core.biases import GaussianMixtureBias
from sklearn_cebm._training.clustering_nets import ClusteringPCDNet
from sklearn_cebm._training.pcd_net import PCDNet

from ..conftest import CHEAP_SETTINGS, allow_empty_clusters

# One run of a short clustering stage: 10 updates are 3 epochs of the 150 blobs.
SETTINGS = dict(CHEAP_SETTINGS, n_clusters=3, clustering_updates=10, n_init=1)
# The clustering stage that pulls neighbours together, from means seeded among the codes.
NEIGHBOUR_SETTINGS = dict(SETTINGS, init_params="k-means++")


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


@allow_empty_clusters
def test_gmmcebmclusterer_mixture_energy_is_marginal_over_y_and_z(X):
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
    with torch.no_grad():
        energies = module(X_unit).double().numpy()
    expected = -energies + 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(torch.stack(log_integrals).numpy(), expected, atol=1e-4)


@allow_empty_clusters  # the model without a clustering stage has one cluster
def test_gmmcebmclusterer_density_is_the_likelihood_stages_weight_average(X):
    # The same likelihood stage with its weights averaged (ema_decay) and no clustering
    # stage after it: its model is the density the clusterer keeps, to the bit.
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=3).fit(X)
    density = clusterer.net_.density_module_
    settings = {**SETTINGS, "clustering_updates": 0, "ema_decay": 0.99}
    likelihood = GMMCEBMClusterer(**settings, random_state=3).fit(X).net_.module_
    for kept, averaged in zip(density.parameters(), likelihood.parameters(), strict=True):
        torch.testing.assert_close(kept, averaged, rtol=0, atol=0)
        assert not kept.requires_grad
    # Its bias is the likelihood stage's single Gaussian; the trained model's has parted.
    assert density.bias.components_equal()
    assert not clusterer.net_.module_.bias.components_equal()
    X_unit = torch.as_tensor(clusterer._inference(lambda x: x, X), dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(
            clusterer.score_samples(X), -density(X_unit).numpy(), rtol=1e-5, atol=1e-5
        )


def test_gmmcebmclusterer_component_samples_are_drawn_from_the_density_times_posterior(
    fitted, X, monkeypatch
):
    # sample(component=l) runs SGLD on E_density(x) - log p(l | x); without a density
    # kept apart (a model pickled before it existed) on the model's own E(x, l).
    drawn = []
    monkeypatch.setattr(
        type(fitted.net_),
        "sample",
        lambda net, n, steps, seed, shape, energy=None, **kwargs: (
            drawn.append(energy) or torch.zeros(n, *shape)
        ),
    )
    fitted.sample(2, component=1, n_steps=1)
    (energy,) = drawn
    assert energy.density is fitted.net_.density_module_
    assert energy.classifier is fitted.net_.module_ and energy.component == 1
    fitted.sample(2, n_steps=1)
    assert drawn[-1] is fitted.net_.density_module_
    fitted.net_.density_module_ = None
    fitted.sample(2, component=1, n_steps=1)
    assert drawn[-1].density is fitted.net_.module_


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
    """The codes ``t_1(x) / (-2 t_2(x))`` of X, among which the means are placed."""
    return clusterer._inference(clusterer.net_.module_.bias_method("statistic_means"), X)


def test_gmmcebmclusterer_likelihood_stage_keeps_the_components_equal(X):
    # One epoch of the two of likelihood training: the seeding has not happened yet.
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=8).partial_fit(X)
    assert clusterer.n_iter_ == 1
    np.testing.assert_array_equal(clusterer.cluster_means_, clusterer.cluster_means_[[0, 0, 0]])
    np.testing.assert_array_equal(clusterer.cluster_stds_, clusterer.cluster_stds_[[0, 0, 0]])
    assert np.abs(clusterer.cluster_means_).max() > 0  # trained, not left at zero
    np.testing.assert_allclose(clusterer.predict_proba(X), 1 / 3, rtol=1e-6)


@pytest.mark.parametrize("init_params", ["k-means++", "k-means", "random"])
def test_gmmcebmclusterer_places_the_means_among_the_codes(X, init_params):
    # No clustering update: the means stay where the seeding put them, after max_iter epochs.
    settings = {**SETTINGS, "clustering_updates": 0, "init_params": init_params}
    seeded = GMMCEBMClusterer(**settings, random_state=8).fit(X)
    assert seeded.n_iter_ == SETTINGS["max_iter"]
    codes = _codes(seeded, X)
    if init_params == "k-means++":
        expected, _ = kmeans_plusplus(codes, 3, random_state=8)
    elif init_params == "k-means":
        expected = KMeans(3, n_init=1, random_state=8).fit(codes).cluster_centers_
    else:
        rows = [
            np.flatnonzero(np.all(np.isclose(codes, mean, rtol=1e-6), axis=1))
            for mean in seeded.cluster_means_
        ]
        assert all(len(r) >= 1 for r in rows) and len({r[0] for r in rows}) == 3
        expected = codes[[r[0] for r in rows]]
    np.testing.assert_allclose(seeded.cluster_means_, expected, rtol=1e-5, atol=1e-6)
    other_X = np.random.default_rng(1).normal(size=X.shape)
    elsewhere = GMMCEBMClusterer(**settings, random_state=8).fit(other_X)
    assert np.abs(seeded.cluster_means_ - elsewhere.cluster_means_).max() > 0.1


def test_gmmcebmclusterer_clustering_stage_follows_the_likelihood_stage(X):
    settings = {**NEIGHBOUR_SETTINGS, "clustering_updates": 12, "clustering_learning_rate": 5e-4}
    clusterer = GMMCEBMClusterer(**settings, random_state=3).fit(X)
    # 150 samples in batches of 32 are 5 updates an epoch: 12 updates take 3 epochs.
    assert clusterer.n_iter_ == SETTINGS["max_iter"] + 3
    history = clusterer.history_
    likelihood, clustering = history[: SETTINGS["max_iter"]], history[SETTINGS["max_iter"] :]
    assert all("energy_gap" in epoch and "consistency" not in epoch for epoch in likelihood)
    assert all("consistency" in epoch and "energy_gap" not in epoch for epoch in clustering)
    assert np.all(np.bincount(clusterer.labels_, minlength=3) > 0)
    groups = clusterer.net_.optimizer_.param_groups
    assert all(group["lr"] == 5e-4 for group in groups)


class _RecordClusteringSteps(Callback):
    def initialize(self):
        self.steps = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training and net.in_clustering_stage():
            self.steps.append(net.optimizer_.param_groups[0]["lr"])


def test_gmmcebmclusterer_clustering_steps_warm_up_linearly(X):
    # 150 samples in batches of 32: 5 updates an epoch, 20 updates in 4 epochs; the step
    # rises over the first 2 (10%), then stays at clustering_learning_rate.
    record = _RecordClusteringSteps()
    settings = {**SETTINGS, "clustering_updates": 20, "clustering_learning_rate": 1e-3}
    clusterer = GMMCEBMClusterer(**settings, callbacks=[("steps", record)], random_state=3)
    clusterer.fit(X)
    recorded = dict(clusterer.net_.callbacks_)["steps"].steps
    np.testing.assert_allclose(recorded, 1e-3 * np.array([0.5] + [1.0] * 19), rtol=1e-12)
    # A warm start's second stage, beyond the stage's updates, warms up again.
    clusterer.set_params(warm_start=True).fit(X)
    again = dict(clusterer.net_.callbacks_)["steps"].steps[20:]
    np.testing.assert_allclose(again[:3], [5e-4, 1e-3, 1e-3], rtol=1e-12)


def test_nearest_neighbour_rows_leave_each_sample_out():
    X = np.array([[0.0], [0.0], [1.0], [5.0], [5.5]])  # the first two are duplicates
    rows = nearest_neighbour_rows(X, 2)
    assert rows.shape == (5, 2) and rows.dtype == np.int64
    assert np.all(rows != np.arange(5)[:, None])
    np.testing.assert_array_equal(rows[0], [1, 2])
    np.testing.assert_array_equal(rows[3], [4, 2])
    assert nearest_neighbour_rows(X, 10).shape == (5, 4)  # no more than the other rows
    np.testing.assert_array_equal(nearest_neighbour_rows(X[:1], 3), [[0]])


def test_gmmcebmclusterer_neighbour_agreement_is_the_share_of_pairs_in_one_cluster(X):
    clusterer = GMMCEBMClusterer(**SETTINGS, n_neighbors=4, random_state=4).fit(X)
    X_unit = clusterer._inference(lambda x: x, X)
    rows = nearest_neighbour_rows(X_unit, 4)
    labels = clusterer.labels_
    expected = np.mean(labels[rows] == labels[:, None])
    assert clusterer.neighbour_agreement_ == pytest.approx(expected)


def test_gmmcebmclusterer_n_init_keeps_the_run_that_agrees_most_with_the_neighbours(X, monkeypatch):
    # Every training that fit runs ends in _on_fit_end: record each one's outcome.
    finished = []
    on_fit_end = GMMCEBMClusterer._on_fit_end

    def recording_on_fit_end(self, X):
        on_fit_end(self, X)
        losses = [row["train_loss"] for row in self.net_.history]
        finished.append((self.labels_, self.neighbour_agreement_, self.cluster_means_, losses))

    monkeypatch.setattr(GMMCEBMClusterer, "_on_fit_end", recording_on_fit_end)
    # 150 rows in batches of 32: 5 updates an epoch, so a stage of 4 epochs, half of it 2.
    settings = {**NEIGHBOUR_SETTINGS, "max_iter": 2, "clustering_updates": 20, "n_init": 3}
    best = GMMCEBMClusterer(**settings, random_state=11).fit(X)

    # One likelihood stage, three runs of half the clustering stage continued from copies
    # of it, then the best of them to the stage's end.
    likelihood, *screened, finish = finished
    assert len(screened) == 3 and len(likelihood[3]) == 2
    for run in screened:
        assert run[3][:2] == likelihood[3]
        assert len(run[3]) == 4
    # The copies part: placed from different seeds, their means differ.
    assert not np.allclose(screened[0][2], screened[1][2])
    keys = [(len(np.unique(labels)), agreement) for labels, agreement, _, _ in screened]
    assert keys[int(np.argmax([key[0] for key in keys]))][0] == 3  # one used all clusters
    winner = screened[keys.index(max(keys))]
    assert finish[3][:4] == winner[3] and len(finish[3]) == 6
    labels, agreement, means, _ = finish
    np.testing.assert_array_equal(best.labels_, labels)
    np.testing.assert_array_equal(best.cluster_means_, means)
    assert best.neighbour_agreement_ == agreement
    assert best.random_state == 11 and best.n_init == 3


def test_gmmcebmclusterer_clustering_stage_in_two_calls_is_the_stage_in_one(X):
    # fit's best run trains its stage in two calls (a half, then the rest): the same
    # training as one call, which a single run (n_init=1) makes.
    settings = {**SETTINGS, "max_iter": 2, "clustering_updates": 20}
    whole = GMMCEBMClusterer(**settings, random_state=3).fit(X)
    split = GMMCEBMClusterer(**settings, random_state=3)
    split._fit(X, reset=True, epochs=3)
    split._fit(X, reset=False, epochs=3)
    np.testing.assert_array_equal(split.labels_, whole.labels_)
    np.testing.assert_array_equal(split.cluster_means_, whole.cluster_means_)
    np.testing.assert_array_equal(split.transform(X), whole.transform(X))


def test_gmmcebmclusterer_n_init_is_reproducible(X):
    settings = {**SETTINGS, "max_iter": 1, "clustering_updates": 5, "n_init": 2}
    first = GMMCEBMClusterer(**settings, random_state=5).fit(X)
    second = GMMCEBMClusterer(**settings, random_state=5).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.cluster_means_, second.cluster_means_)


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


class _FailInTheClusteringStage(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == SETTINGS["max_iter"] + 1:
            raise RuntimeError("stop in the clustering stage")


def test_gmmcebmclusterer_failure_after_seeding_leaves_estimator_unchanged(X):
    # The fit has two stages and a placement of the means; a failure in the second stage
    # undoes all of it.
    callbacks = [_FailInTheClusteringStage()]
    clusterer = GMMCEBMClusterer(**SETTINGS, callbacks=callbacks, random_state=0)
    with pytest.raises(RuntimeError, match="clustering stage"):
        clusterer.fit(X)
    assert not hasattr(clusterer, "net_") and not hasattr(clusterer, "n_features_in_")
    assert not hasattr(clusterer, "_training_neighbours")


@pytest.mark.parametrize("cluster_balance", [0.0, 2.0])
def test_gmmcebmclusterer_cluster_balance_reaches_the_bias(X, cluster_balance):
    # 0 leaves the neighbour term alone in the clustering stage.
    settings = {**SETTINGS, "max_iter": 1, "clustering_updates": 0}
    settings.update(cluster_balance=cluster_balance, init_params="random")
    clusterer = GMMCEBMClusterer(**settings, random_state=10).fit(X)
    module = clusterer.net_.module_
    assert module.bias.cluster_balance == cluster_balance
    X_unit = torch.as_tensor(clusterer._inference(lambda x: x, X), dtype=torch.float32)

    def penalty():
        statistics = module.sufficient_statistics(X_unit)
        return module.bias.balance_penalty(module.bias.log_responsibilities(statistics))

    if cluster_balance == 0:
        assert penalty().item() == 0.0
        return
    # beta KL(q || pi), q the batch's mean responsibilities, from the estimator's own. Two
    # means moved far from every code leave the third nearly all samples, so the value is
    # far from 0 and float32 rounding small beside it.
    codes = _codes(clusterer, X)
    module.bias.set_means(np.stack([codes[0], codes[0] + 50.0, codes[0] - 50.0]))
    usage = clusterer.predict_proba(X).mean(axis=0)
    expected = cluster_balance * rel_entr(usage, clusterer.weights_).sum()
    assert expected > 0.05
    assert penalty().item() == pytest.approx(expected, rel=1e-4)


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
    log_responsibilities = torch.eye(3)[clusters].log()
    penalty = module.bias.balance_penalty(log_responsibilities)
    assert penalty.item() == pytest.approx(2.0 * divergence, abs=1e-6)


def test_gmmcebmclusterer_samples_the_fitted_components_after_set_params(fitted, X):
    # Fitted with 3 clusters; the parameter now says 2, the model still has 3.
    fitted.set_params(n_clusters=2)
    assert fitted.sample(2, component=2, n_steps=2, random_state=0).shape == (2, X.shape[1])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        fitted.sample(2, component=3, n_steps=2)


def test_gmmcebmclusterer_warm_start_applies_the_clustering_settings(X):
    clusterer = GMMCEBMClusterer(**SETTINGS, warm_start=True, random_state=0).fit(X)
    clusterer.set_params(clustering_learning_rate=1e-5, cluster_balance=0.5, n_neighbors=3)
    clusterer.fit(X)
    assert clusterer.net_.clustering_lr == 1e-5
    assert clusterer.net_.module_.bias.cluster_balance == 0.5
    with pytest.raises(ValueError, match="init_params"):
        clusterer.set_params(init_params="random").fit(X)


class _CountingCallback(Callback):
    """Counts the trainings it sees; holds a lock, which cannot be deep-copied."""

    def on_train_begin(self, net, **kwargs):
        self.lock_ = threading.Lock()
        self.trainings_seen_ = getattr(self, "trainings_seen_", 0) + 1


def test_gmmcebmclusterer_runs_share_the_callbacks_given(X):
    settings = {**NEIGHBOUR_SETTINGS, "max_iter": 1, "clustering_updates": 5, "n_init": 2}
    clusterer = GMMCEBMClusterer(**settings, callbacks=[_CountingCallback()], random_state=0)
    clusterer.fit(X)  # built from a fresh callback, which then holds a lock: no deepcopy
    # The net's callback is the one every run trained with: the likelihood stage and the
    # two clustering runs each began a training.
    (counting,) = [cb for _, cb in clusterer.net_.callbacks_ if isinstance(cb, _CountingCallback)]
    assert counting.trainings_seen_ == 3
    clusterer.set_params(warm_start=True).fit(X)  # the rollback copy shares it too
    assert counting.trainings_seen_ == 4


def test_gmmcebmclusterer_n_init_finds_the_neighbours_once(X, monkeypatch):
    import sklearn_cebm._clustering.clustering_stage as stage_module

    calls = []
    find = stage_module.nearest_neighbour_rows

    def counting(X_unit, n_neighbors):
        calls.append(len(X_unit))
        return find(X_unit, n_neighbors)

    monkeypatch.setattr(stage_module, "nearest_neighbour_rows", counting)
    settings = {**SETTINGS, "max_iter": 1, "clustering_updates": 5, "n_init": 3}
    clusterer = GMMCEBMClusterer(**settings, random_state=2).fit(X)
    assert calls == [len(X)]
    assert not hasattr(clusterer, "_neighbours_found")


@pytest.mark.parametrize(
    ("init_params", "n_samples", "n_neighbors", "updates"),
    [
        # The spectral start's partition: 2,000 updates or 30 epochs, whichever are more.
        ("spectral", 1797, 20, 2000),
        ("spectral", 60000, 10, 14070),
        ("spectral", 60000, 20, 14070),
        ("spectral", 8500, 10, 2010),
        ("spectral", 8400, 10, 2000),
        # The neighbour stage: 2,000 updates or n_neighbors epochs.
        ("k-means++", 1797, 20, 2000),
        ("k-means++", 60000, 20, 9380),
        ("k-means++", 60000, 10, 4690),
        ("k-means++", 12800, 20, 2000),
        ("k-means++", 12900, 20, 2020),
    ],
)
def test_gmmcebmclusterer_auto_clustering_updates_are_2000_or_whole_epochs(
    init_params, n_samples, n_neighbors, updates
):
    batch_size = 128
    clusterer = GMMCEBMClusterer(
        clustering_updates="auto",
        init_params=init_params,
        n_neighbors=n_neighbors,
        batch_size=batch_size,
        max_iter=3,
    )
    assert clusterer._clustering_update_count(n_samples) == updates
    batches_per_epoch = -(-n_samples // batch_size)
    assert clusterer._full_fit_epochs(n_samples) == 3 + -(-updates // batches_per_epoch)
    assert GMMCEBMClusterer().clustering_updates == "auto"


def test_gmmcebmclusterer_relocates_in_the_first_half_of_its_stage(X):
    # The net relocates empty clusters in the first half of the stage, whose length
    # under 'auto' depends on the rows: 150 rows in batches of 32 make 2,000 updates.
    settings = {**SETTINGS, "clustering_updates": 6, "max_iter": 1, "random_state": 0}
    clusterer = GMMCEBMClusterer(**settings).fit(X)
    assert clusterer.net_.relocation_updates == 3
    clusterer.set_params(clustering_updates="auto")
    clusterer._train(np.zeros((150, X.shape[1]), dtype=np.float32), epochs=0)
    assert clusterer.net_.relocation_updates == 1000


def test_gmmcebmclusterer_relocates_a_cluster_the_placement_left_empty(X, monkeypatch):
    def last_far_from_the_codes(codes, n_seeds):
        seeds, _ = kmeans_plusplus(codes, n_seeds, random_state=0)
        seeds[-1] = 1e3 * np.abs(codes).max()
        return seeds

    monkeypatch.setattr(
        GMMCEBMClusterer, "_choose_means", lambda self, random_state: last_far_from_the_codes
    )
    window = ClusteringPCDNet.RELOCATION_WINDOW
    # Relocation in the first half: window + 5 updates, one check.
    settings = {**NEIGHBOUR_SETTINGS, "clustering_updates": 2 * window + 10}
    clusterer = GMMCEBMClusterer(**settings, random_state=0).fit(X)

    clustering = clusterer.history_[SETTINGS["max_iter"] :]
    relocations = [batch["relocations"] for epoch in clustering for batch in epoch["batches"]]
    # Once, at the end of the first window, in which no sample chose the far component.
    assert relocations[window - 1] == 1 and sum(relocations) == 1
    codes = _codes(clusterer, X)
    assert np.abs(clusterer.cluster_means_[-1]).max() <= np.abs(codes).max()
    assert np.all(np.bincount(clusterer.labels_, minlength=3) > 0)


def test_gmmcebmclusterer_relocates_nothing_when_every_cluster_is_chosen(X):
    settings = {**NEIGHBOUR_SETTINGS, "clustering_updates": 2 * ClusteringPCDNet.RELOCATION_WINDOW}
    clusterer = GMMCEBMClusterer(**settings, random_state=0).fit(X)
    clustering = clusterer.history_[SETTINGS["max_iter"] :]
    assert np.all(np.bincount(clusterer.labels_, minlength=3) > 0)
    assert sum(batch["relocations"] for epoch in clustering for batch in epoch["batches"]) == 0


@pytest.mark.parametrize("n_init", [1, 2])
def test_gmmcebmclusterer_warns_when_clusters_are_left_empty(n_init):
    # Two distinct rows have at most two distinct codes: a third cluster stays empty, as
    # KMeans's does on duplicate points, and fit says so but keeps the model.
    X = np.repeat([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]], 20, axis=0)
    clusterer = GMMCEBMClusterer(**{**SETTINGS, "n_init": n_init}, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"in [12] of its n_clusters=3 clusters"):
        clusterer.fit(X)
    assert len(np.unique(clusterer.labels_)) < 3
    assert clusterer.predict(X).shape == (40,)


def test_gmmcebmclusterer_finishes_the_next_run_while_the_finished_leave_clusters_empty():
    # Duplicate rows leave a cluster empty in every run: each screened run is finished in
    # turn, so that a late collapse of the best screened run cannot decide the fit.
    X = np.repeat([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]], 20, axis=0)
    settings = {**NEIGHBOUR_SETTINGS, "n_init": 2, "clustering_updates": 20}
    counting = _CountingCallback()
    clusterer = GMMCEBMClusterer(**settings, callbacks=[counting], random_state=0)
    with pytest.warns(ConvergenceWarning):
        clusterer.fit(X)
    (counting,) = [cb for _, cb in clusterer.net_.callbacks_ if isinstance(cb, _CountingCallback)]
    # The likelihood stage, two screenings, two finishes.
    assert counting.trainings_seen_ == 5
    # 40 rows in batches of 32: 2 updates an epoch; 10 epochs of clustering after 2.
    assert clusterer.n_iter_ == 12


def test_gmmcebmclusterer_does_not_warn_when_every_cluster_is_used(X):
    # Under filterwarnings=error a warning would fail this fit; its labels use all three.
    settings = {**SETTINGS, "clustering_updates": 200}
    clusterer = GMMCEBMClusterer(**settings, random_state=0).fit(X)
    assert len(np.unique(clusterer.labels_)) == 3


def test_gmmcebmclusterer_clustering_stage_fits_the_spectral_partition(blobs):
    X, y = blobs
    settings = {**SETTINGS, "clustering_updates": 40, "n_init": "auto"}
    clusterer = GMMCEBMClusterer(**settings, random_state=3).fit(X)
    assert clusterer.init_params == "spectral" and clusterer._n_init() == 100
    clustering = clusterer.history_[SETTINGS["max_iter"] :]
    assert len(clustering) == 8  # 40 updates of 5 an epoch
    assert all("partition_nll" in epoch and "consistency" not in epoch for epoch in clustering)
    assert clustering[-1]["partition_nll"] < clustering[0]["partition_nll"]
    X_unit = clusterer._inference(lambda x: x, X)
    rows = nearest_neighbour_rows(X_unit, clusterer.n_neighbors)
    partition = spectral_partition(shared_neighbour_affinity(rows), 3, n_init=100, random_state=3)
    assert adjusted_rand_score(y, partition) == 1.0  # the blobs are the graph's pieces
    np.testing.assert_array_equal(clusterer.labels_, partition)  # and the model learned them


def test_gmmcebmclusterer_partitions_the_shared_neighbour_graph():
    # Without clusters in the data the two weightings part the square differently: the
    # fit starts from the shared-neighbour graph's partition.
    X = np.random.RandomState(1).uniform(size=(120, 2))
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=0).fit(X)
    X_unit = clusterer._inference(lambda x: x, X)
    rows = nearest_neighbour_rows(X_unit, clusterer.n_neighbors)
    partition = clusterer._partition(X_unit, rows)
    shared = spectral_partition(shared_neighbour_affinity(rows), 3, n_init=1, random_state=0)
    plain = spectral_partition(neighbour_affinity(rows), 3, n_init=1, random_state=0)
    assert adjusted_rand_score(partition, shared) == 1.0  # up to the parts' names
    assert adjusted_rand_score(partition, plain) < 0.9


def test_gmmcebmclusterer_places_each_component_on_its_parts_codes(X):
    # After the likelihood stage (max_iter epochs), the seeding puts component l at the
    # mean of part l's codes, before the pull towards their average scales them.
    clusterer = GMMCEBMClusterer(**{**SETTINGS, "clustering_updates": 0}, random_state=0)
    clusterer.fit(X)
    X_unit = clusterer._inference(lambda x: x, X)
    partition = clusterer._partition(X_unit, nearest_neighbour_rows(X_unit, 10))
    np.testing.assert_array_equal(partition, clusterer.labels_)
    codes = _codes(clusterer, X)
    centroids = np.stack([codes[partition == part].mean(axis=0) for part in range(3)])
    means = clusterer.cluster_means_
    # mu_l = centre + a (centroid_l - centre), one factor a for every component.
    centre = centroids.mean(axis=0)
    scale = np.linalg.norm(means - means.mean(axis=0)) / np.linalg.norm(centroids - centre)
    np.testing.assert_allclose(means - means.mean(axis=0), scale * (centroids - centre), atol=1e-4)
    assert 0 < scale <= 1 + 1e-6  # 1 where no pull was needed, up to rounding


def test_gmmcebmclusterer_continued_training_names_the_parts_after_its_clusters(X):
    clusterer = GMMCEBMClusterer(**SETTINGS, random_state=0).fit(X)
    X_unit = clusterer._inference(lambda x: x, X)
    rows = nearest_neighbour_rows(X_unit, clusterer.n_neighbors)
    # Another random state's partition names the same blobs otherwise...
    renamed = spectral_partition(shared_neighbour_affinity(rows), 3, n_init=10, random_state=1)
    assert adjusted_rand_score(renamed, clusterer.labels_) == 1.0
    assert not np.array_equal(renamed, clusterer.labels_)
    # ...but a continued training is given the names of the model's clusters.
    clusterer.set_params(random_state=1)
    np.testing.assert_array_equal(clusterer._partition(X_unit, rows), clusterer.labels_)
    before = clusterer.labels_.copy()
    clusterer.partial_fit(X)
    np.testing.assert_array_equal(clusterer.labels_, before)


def test_matched_labels_renames_to_the_reference_and_keeps_extra_parts_apart():
    from sklearn_cebm._clustering.clustering_stage import _matched_labels

    renamed = _matched_labels(np.array([2, 2, 0, 0]), np.array([1, 1, 0, 0]), 3)
    np.testing.assert_array_equal(renamed, [1, 1, 0, 0])
    # Three parts against two clusters: the third takes a name no cluster has.
    renamed = _matched_labels(np.array([0, 0, 1, 1, 2]), np.array([4, 4, 3, 3, 3]), 5)
    np.testing.assert_array_equal(renamed[:4], [4, 4, 3, 3])
    assert renamed[4] not in (3, 4) and 0 <= renamed[4] < 5


def test_gmmcebmclusterer_learns_the_partition_with_bounded_certainty(blobs):
    # Smoothed labels: the optimum gives each sample's part 1 - eps + eps / L and every
    # other cluster eps / L, so that the evidences cannot run away from one another
    # (without it, the conv net's evidences did on the digits after ~1,500 updates).
    X, _ = blobs
    settings = {**SETTINGS, "clustering_updates": 300, "clustering_learning_rate": 3e-3}
    proba = GMMCEBMClusterer(**settings, random_state=0).fit(X).predict_proba(X)
    smoothing = ClusteringPCDNet.PARTITION_LABEL_SMOOTHING
    target = 1 - smoothing + smoothing / 3
    certainty = proba.max(axis=1)
    assert abs(np.median(certainty) - target) < 0.05
    assert np.quantile(certainty, 0.9) < 0.99


def test_gmmcebmclusterer_runaway_clustering_stage_rolls_back_then_stops(X):
    # A step far too large: each runaway goes back to the stage's start and halves the
    # step; after MAX_CLUSTERING_ROLLBACKS the stage keeps those weights, so the model is
    # the one a stage of no updates leaves, and no error is raised.
    settings = {**SETTINGS, "clustering_updates": 50, "clustering_learning_rate": 10.0}
    with pytest.warns(SamplerWarning, match="clustering stage ran away") as record:
        clusterer = GMMCEBMClusterer(**settings, random_state=0).fit(X)
    # The rollbacks to smaller steps are handled, and history_ records them; only the
    # last, which stops the stage, warns.
    runaways = [str(w.message) for w in record if "ran away" in str(w.message)]
    assert len(runaways) == 1 and "keeps those weights" in runaways[0]
    max_iter = SETTINGS["max_iter"]
    rolled_back = [
        epoch["clustering_rollback"]
        for epoch in clusterer.history_
        if "clustering_rollback" in epoch
    ]
    # Several rollbacks within an epoch record it once.
    assert clusterer.net_.clustering_rollbacks_ == ClusteringPCDNet.MAX_CLUSTERING_ROLLBACKS + 1
    assert rolled_back and set(rolled_back) == {max_iter}
    untrained = GMMCEBMClusterer(**{**settings, "clustering_updates": 0}, random_state=0).fit(X)
    np.testing.assert_allclose(clusterer.predict_proba(X), untrained.predict_proba(X), atol=1e-6)


def test_gmmcebmclusterer_clustering_stage_ends_on_its_least_cross_entropy(blobs):
    X, _ = blobs
    settings = {**SETTINGS, "clustering_updates": 60, "clustering_learning_rate": 3e-2}
    clusterer = GMMCEBMClusterer(**settings, random_state=0).fit(X)
    stage = [epoch for epoch in clusterer.history_ if epoch["epoch"] > SETTINGS["max_iter"]]
    losses = {epoch["epoch"]: epoch["partition_nll"] for epoch in stage}
    best = min(losses, key=losses.get)
    restored = clusterer.history_[-1].get("clustering_best_epoch", stage[-1]["epoch"])
    assert restored == best


def test_gmmcebmclusterer_diverging_likelihood_in_clustering_stage_raises(X):
    # With the likelihood kept, the sampler's runaway is the likelihood's divergence:
    # it raises, and the advice names the option.
    settings = {**SETTINGS, "clustering_updates": 50, "clustering_learning_rate": 10.0}
    clusterer = GMMCEBMClusterer(**settings, clustering_likelihood=True, random_state=0)
    with pytest.raises(TrainingDivergedError, match=r"or set clustering_likelihood=False"):
        clusterer.fit(X)
    assert not hasattr(clusterer, "net_")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gmmcebmclusterer_auto_encoder_is_the_mlp_for_images():
    from sklearn_cebm._core.encoders import ConvEncoder, MLPEncoder

    X, _ = load_digits(return_X_y=True)
    # Which network is built, not what it learns: one epoch of each stage.
    settings = {**SETTINGS, "clustering_updates": 1, "max_iter": 1}
    auto = GMMCEBMClusterer(**settings, image_shape=(1, 8, 8), random_state=0).fit(X[:100])
    assert isinstance(auto.net_.module_.encoder, MLPEncoder)
    conv = GMMCEBMClusterer(**settings, image_shape=(1, 8, 8), encoder="cnn", random_state=0)
    assert isinstance(conv.fit(X[:100]).net_.module_.encoder, ConvEncoder)


def test_gmmcebmclusterer_clustering_likelihood_adds_the_pcd_gradients(X):
    # With clustering_likelihood, a clustering update descends -log p(x) / D - log p(y | x):
    # its gradients are the cross-entropy's plus the PCD update's over the D = 4
    # features, on the same batch and from the same chains.
    settings = {**SETTINGS, "clustering_likelihood": True}
    clusterer = GMMCEBMClusterer(**settings, random_state=0).fit(X)
    assert all("energy_gap" in epoch for epoch in clusterer.history_)
    X_unit = clusterer._inference(lambda x: x, X)
    targets = clusterer._training_targets(X_unit)
    batch = (torch.as_tensor(X_unit[:32], dtype=torch.float32), torch.as_tensor(targets[:32]))
    saved = pickle.dumps(clusterer.net_)

    def gradients(step):
        net = pickle.loads(saved)
        assert net.in_clustering_stage()
        net.optimizer_.zero_grad()
        step(net, batch)
        return [
            torch.zeros_like(p) if p.grad is None else p.grad.clone()
            for p in net.module_.parameters()
        ]

    joint = gradients(ClusteringPCDNet.train_step_single)
    partition = gradients(lambda net, b: net._partition_step(b[0], b[1][:, 0]))
    likelihood = gradients(PCDNet.train_step_single)
    assert all(g.abs().sum() > 0 for g in likelihood[:2])  # the encoder's first layer
    for total, *parts in zip(joint, partition, likelihood, strict=True):
        torch.testing.assert_close(total, parts[0] + parts[1] / X.shape[1])
    # Without it, the update is the cross-entropy's alone.
    clusterer.net_.clustering_likelihood = False
    saved = pickle.dumps(clusterer.net_)
    without = gradients(ClusteringPCDNet.train_step_single)
    for alone, expected in zip(without, partition, strict=True):
        torch.testing.assert_close(alone, expected)


class _ChainsAtStageStart(Callback):
    """Notes whether the chains were kept when the clustering stage began."""

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == net.likelihood_epochs + 1:
            self.chains_kept_ = net.replay_buffer_ is not None


@pytest.mark.parametrize("likelihood", [False, True])
def test_gmmcebmclusterer_clustering_likelihood_restarts_the_chains(X, likelihood):
    # The placed components make a new energy: with the likelihood kept, its chains
    # start afresh rather than from where the old energy left them.
    settings = {**SETTINGS, "clustering_likelihood": likelihood}
    callback = _ChainsAtStageStart()
    clusterer = GMMCEBMClusterer(**settings, callbacks=[callback], random_state=0).fit(X)
    (seen,) = [cb for _, cb in clusterer.net_.callbacks_ if isinstance(cb, _ChainsAtStageStart)]
    assert seen.chains_kept_ is not likelihood


@pytest.mark.parametrize("likelihood", [False, True])
def test_gmmcebmclusterer_clustering_likelihood_fits_the_components_to_posteriors(
    X, likelihood, monkeypatch
):
    # With the likelihood kept, the components are fitted to the parts' posteriors under
    # the trained prior (split, so that the sampler's energy stays the trained one);
    # without it, to the parts' codes.
    calls = []
    fit_to_posteriors = GaussianMixtureBias.fit_to_posteriors

    def recording(bias, statistics, members):
        prior = (bias.means.detach().clone(), bias.component_stds().detach().clone())
        fit_to_posteriors(bias, statistics, members)
        calls.append((prior, statistics, members.clone(), bias.means.detach().clone()))

    monkeypatch.setattr(GaussianMixtureBias, "fit_to_posteriors", recording)
    settings = {**SETTINGS, "clustering_updates": 0, "clustering_likelihood": likelihood}
    clusterer = GMMCEBMClusterer(**settings, random_state=0).fit(X)
    if not likelihood:
        assert calls == []
        return
    ((prior_means, prior_stds), statistics, members, fitted) = calls[0]
    assert len(calls) == 1
    X_unit = clusterer._inference(lambda x: x, X)
    partition = clusterer._partition(X_unit, nearest_neighbour_rows(X_unit, 10))
    np.testing.assert_array_equal(members.numpy(), partition)
    # The statistics are the trained encoder's on the training data (no update since).
    codes = clusterer.net_.module_.bias.statistic_means(statistics).numpy()
    np.testing.assert_allclose(codes, _codes(clusterer, X), rtol=1e-4, atol=1e-6)
    # Component l's mean is the average over part l of the posterior means under the
    # equal components of the likelihood stage: (mu / sigma^2 + t_1) / (1 / sigma^2 - 2 t_2).
    torch.testing.assert_close(prior_means, prior_means[[0, 0, 0]])
    mu, sigma = prior_means[0].double().numpy(), prior_stds[0].double().numpy()
    t_1, t_2 = (s.double().numpy() for s in statistics)
    posterior_means = (mu / sigma**2 + t_1) / (1 / sigma**2 - 2 * t_2)
    expected = np.stack([posterior_means[partition == part].mean(axis=0) for part in range(3)])
    np.testing.assert_allclose(fitted.double().numpy(), expected, rtol=1e-4, atol=1e-6)


# Settings a user picks for a quick try (issue 37): before the clustering stage rolled
# back a runaway, these checks raised "partition_nll 113 above 110" on their blobs.
QUICK_TRY_SETTINGS = dict(n_components=8, max_iter=2, sgld_steps=5, batch_size=32)


@pytest.mark.parametrize(
    "check",
    [
        estimator_checks.check_clustering,
        functools.partial(estimator_checks.check_clustering, readonly_memmap=True),
        estimator_checks.check_methods_sample_order_invariance,
    ],
    ids=["check_clustering", "check_clustering_readonly", "check_methods_sample_order"],
)
@pytest.mark.slow  # 2,000 clustering updates per fit: about 30 s a check
@pytest.mark.filterwarnings("ignore::sklearn_cebm.SamplerWarning")
def test_gmmcebmclusterer_quick_try_settings_pass_the_checks_that_diverged(check):
    estimator = GMMCEBMClusterer(**QUICK_TRY_SETTINGS, random_state=0)
    check("GMMCEBMClusterer", estimator)


def test_gmmcebmclusterer_clustering_stage_computes_in_float32(X, monkeypatch):
    # The likelihood stage in bfloat16 where asked, the cross-entropy's statistics in
    # float32, as predict evaluates p(y | x); the model keeps its precision after.
    from sklearn_cebm._core.model import ConjugateEnergyModel

    seen = []
    original = ConjugateEnergyModel.sufficient_statistics

    def spy(self, x):
        if self.training:
            seen.append(self.compute_dtype)
        return original(self, x)

    monkeypatch.setattr(ConjugateEnergyModel, "sufficient_statistics", spy)
    clusterer = GMMCEBMClusterer(**SETTINGS, precision="bfloat16", random_state=0).fit(X)
    # 2 likelihood epochs of 5 updates, each computing statistics of the data batch and
    # of the chains' steps; then 10 clustering updates of one forward pass each.
    assert seen[-10:] == [None] * 10
    assert set(seen[:-10]) == {torch.bfloat16}
    assert clusterer.precision_ == "bfloat16"
