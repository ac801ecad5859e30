"""Criteria for the number of clusters: neighbour_modularity and clustering_stability."""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN, Birch, KMeans
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture

from sklearn_cebm import GMMCEBMClusterer
from sklearn_cebm.evaluation import clustering_stability, neighbour_modularity

from ..conftest import CHEAP_SETTINGS, allow_empty_clusters

# ----------------------------------------------------------------- clustering_stability
THREE_BLOBS = dict(n_samples=300, centers=[[0, 0], [8, 0], [4, 7]], random_state=0)


def test_clustering_stability_peaks_at_the_number_of_separated_blobs():
    X, _ = make_blobs(**THREE_BLOBS)
    result = clustering_stability(
        KMeans(n_init=1), X, param_range=[2, 3, 4, 5], n_resamples=3, random_state=0
    )
    assert result["best_param"] == 3
    np.testing.assert_allclose(result["stability"][1], 1.0)
    assert np.all(result["stability"][[0, 2, 3]].mean(axis=1) < 0.9)
    assert "estimators" not in result


def test_clustering_stability_fits_each_value_on_the_same_halves_with_the_same_seeds():
    X, _ = make_blobs(**THREE_BLOBS)
    result = clustering_stability(
        KMeans(n_init=1),
        X,
        param_range=[2, 3],
        n_resamples=2,
        random_state=0,
        return_estimators=True,
    )
    for resample, (half_a, half_b) in enumerate(result["halves"]):
        np.testing.assert_array_equal(np.sort(np.concatenate([half_a, half_b])), np.arange(300))
        seeds = [
            tuple(fit.random_state for fit in result["estimators"][index][resample])
            for index in range(2)
        ]
        assert seeds[0] == seeds[1] and seeds[0][0] != seeds[0][1]
        fits = result["estimators"][1][resample]
        assert [fit.n_clusters for fit in fits] == [3, 3]
        np.testing.assert_allclose(
            fits[0].predict(X),
            KMeans(n_init=1, n_clusters=3, random_state=fits[0].random_state)
            .fit(X[half_a])
            .predict(X),
        )
    again = clustering_stability(
        KMeans(n_init=1), X, param_range=[2, 3], n_resamples=2, random_state=0
    )
    np.testing.assert_array_equal(again["stability"], result["stability"])


def test_clustering_stability_of_a_clusterer_without_random_state_or_n_clusters():
    X, _ = make_blobs(**THREE_BLOBS)
    birch = clustering_stability(Birch(), X, param_range=[3], n_resamples=1, random_state=0)
    assert birch["stability"].shape == (1, 1)
    mixture = clustering_stability(
        GaussianMixture(),
        X,
        param_name="n_components",
        param_range=[2, 3, 4],
        n_resamples=2,
        random_state=0,
    )
    assert mixture["best_param"] == 3


@allow_empty_clusters
def test_clustering_stability_of_a_tiny_gmmcebmclusterer(blobs):
    X, _ = blobs
    clusterer = GMMCEBMClusterer(**CHEAP_SETTINGS, clustering_updates=4, n_init=1)
    result = clustering_stability(
        clusterer, X, param_range=[2, 3], random_state=0, return_estimators=True
    )
    assert result["stability"].shape == (2, 2)
    assert np.all((result["stability"] >= -1) & (result["stability"] <= 1))
    assert result["estimators"][1][0][0].n_clusters == 3
    assert not hasattr(clusterer, "net_")


@pytest.mark.parametrize(
    "estimator, kwargs, n_rows, error, match",
    [
        (DBSCAN(), {}, 20, TypeError, "needs predict"),
        (KMeans(), {"param_name": "k"}, 20, ValueError, "no parameter 'k'"),
        (KMeans(), {"param_range": []}, 20, ValueError, "at least one value"),
        (KMeans(), {"n_resamples": 0}, 20, ValueError, "n_resamples"),
        (KMeans(), {}, 3, ValueError, "at least 4 samples"),
    ],
)
def test_clustering_stability_rejects_bad_requests(estimator, kwargs, n_rows, error, match):
    X = np.random.default_rng(0).normal(size=(n_rows, 2))
    with pytest.raises(error, match=match):
        clustering_stability(estimator, X, **{"param_range": [2], **kwargs})


# ----------------------------------------------------------------- neighbour_modularity
def test_neighbour_modularity_of_the_blobs_is_highest_for_their_own_labels(blobs):
    X, labels = blobs
    own = neighbour_modularity(X, labels, n_neighbors=5)
    # A cut of one blob, and a merge of two: both follow the graph less.
    split = np.where((labels == 0) & (X[:, 2] > np.median(X[labels == 0, 2])), 3, labels)
    merged = np.minimum(labels, 1)
    assert own > 0.6
    assert neighbour_modularity(X, split, n_neighbors=5) < own
    assert neighbour_modularity(X, merged, n_neighbors=5) < own
    assert neighbour_modularity(X, np.zeros_like(labels)) == pytest.approx(0.0)


def test_neighbour_modularity_of_random_labels_is_near_zero(blobs):
    X, _ = blobs
    # Seed 1: the fixture's labels come from seed 0's first draws.
    labels = np.random.default_rng(1).integers(0, 4, len(X))
    assert abs(neighbour_modularity(X, labels)) < 0.05


def test_neighbour_modularity_scales_features_by_their_range_unless_told_not_to():
    # Feature 0 spans 1, feature 1 spans 100: unscaled, only feature 1 decides the
    # neighbours; scaled to equal ranges, both do.
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 1, 200), rng.uniform(0, 100, 200)])
    by_feature_0 = (X[:, 0] > 0.5).astype(int)
    scaled = neighbour_modularity(X, by_feature_0, n_neighbors=5)
    unscaled = neighbour_modularity(X, by_feature_0, n_neighbors=5, scale=False)
    assert scaled > 0.2 > abs(unscaled)
    X_scaled = 2 * (X - X.min(axis=0)) / np.ptp(X, axis=0) - 1
    assert neighbour_modularity(X_scaled, by_feature_0, n_neighbors=5, scale=False) == (
        pytest.approx(scaled)
    )


@pytest.mark.parametrize(
    "X, labels, n_neighbors, match",
    [
        ([[0.0]], [0], 20, "at least 2 samples"),
        ([[0.0], [1.0]], [0, 1, 1], 20, "inconsistent numbers of samples"),
        ([[0.0], [1.0]], [0, 1], 0, "n_neighbors"),
    ],
)
def test_neighbour_modularity_rejects_bad_input(X, labels, n_neighbors, match):
    with pytest.raises(ValueError, match=match):
        neighbour_modularity(X, labels, n_neighbors=n_neighbors)
