"""The neighbour graph and its spectral partition, where the clustering stage starts."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import sklearn_cebm._clustering.neighbour_graph as neighbour_graph
from sklearn_cebm._clustering.neighbour_graph import (
    nearest_neighbour_rows,
    neighbour_affinity,
    normalised_cut,
    shared_neighbour_affinity,
    spectral_partition,
)


def test_neighbour_affinity_is_symmetric_with_half_weights_for_one_way_edges():
    # 0 and 1 are each other's neighbour; 2 lists 1, which does not list 2.
    rows = np.array([[1], [0], [1]])
    affinity = neighbour_affinity(rows).toarray()
    np.testing.assert_array_equal(affinity, affinity.T)
    np.testing.assert_array_equal(affinity, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.5, 0.0]])


def test_neighbour_affinity_gives_a_lone_sample_no_edge():
    # nearest_neighbour_rows lists a sample alone in X as its own neighbour.
    affinity = neighbour_affinity(nearest_neighbour_rows(np.zeros((1, 2)), 3))
    assert affinity.shape == (1, 1) and affinity.nnz == 0


def test_shared_neighbour_affinity_weighs_each_edge_by_the_jaccard_index():
    # N[0] = {0, 1}, N[1] = {0, 1}, N[2] = {1, 2}: 0-1 share both, 1-2 one of three.
    affinity = shared_neighbour_affinity(np.array([[1], [0], [1]])).toarray()
    np.testing.assert_allclose(affinity, [[0, 1, 0], [1, 0, 1 / 3], [0, 1 / 3, 0]])


def test_shared_neighbour_affinity_keeps_the_graphs_edges_and_weakens_a_bridge():
    # Two tight groups of 6 on a line, 4 apart: each sample's 6th neighbour is across.
    X = np.r_[np.linspace(0, 1, 6), np.linspace(5, 6, 6)][:, None]
    rows = nearest_neighbour_rows(X, 6)
    shared, plain = shared_neighbour_affinity(rows), neighbour_affinity(rows)
    np.testing.assert_array_equal(shared.toarray() > 0, plain.toarray() > 0)
    np.testing.assert_allclose(shared.toarray(), shared.toarray().T)
    assert shared.max() <= 1.0
    dense = shared.toarray()
    across = dense[:6, 6:][dense[:6, 6:] > 0]
    within = dense[:6, :6][dense[:6, :6] > 0]
    assert across.size and across.max() < within.min()


def test_shared_neighbour_affinity_is_the_same_in_blocks(monkeypatch):
    rows = nearest_neighbour_rows(np.random.RandomState(0).normal(size=(50, 3)), 4)
    whole = shared_neighbour_affinity(rows)
    monkeypatch.setattr(neighbour_graph, "_SHARED_COUNT_ENTRIES", 30)  # one row a block
    np.testing.assert_allclose(shared_neighbour_affinity(rows).toarray(), whole.toarray())


def test_shared_neighbour_affinity_gives_a_lone_sample_no_edge():
    affinity = shared_neighbour_affinity(nearest_neighbour_rows(np.zeros((1, 2)), 3))
    assert affinity.shape == (1, 1) and affinity.nnz == 0


def test_nearest_neighbours_are_searched_among_the_leading_components():
    rng = np.random.RandomState(0)
    # 80 features of rank 3: the projection keeps every distance, so every neighbour.
    X = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 80))
    searched = nearest_neighbour_rows(X, 5)
    np.testing.assert_array_equal(searched, nearest_neighbour_rows(X, 5, n_components=None))
    # Pixel noise in 70 trailing directions, larger in sum than the 10 that hold the
    # groups: the search among 10 components recovers more of each sample's group.
    groups = np.repeat(np.arange(4), 50)
    X = np.c_[
        rng.normal(size=(4, 10))[groups] + 0.5 * rng.normal(size=(200, 10)),
        0.35 * rng.normal(size=(200, 70)),
    ]

    def of_the_group(rows):
        return np.mean(groups[rows] == groups[:, None])

    assert of_the_group(nearest_neighbour_rows(X, 5, n_components=10)) > of_the_group(
        nearest_neighbour_rows(X, 5, n_components=None)
    )


def _chains(n_groups, n_per_group, gap=100.0):
    """Groups of points along a line, each far from the others: a graph in pieces."""
    X = np.concatenate(
        [
            np.c_[np.arange(n_per_group, dtype=float) + gap * g, np.zeros(n_per_group)]
            for g in range(n_groups)
        ]
    )
    return X, np.repeat(np.arange(n_groups), n_per_group)


def test_spectral_partition_finds_the_pieces_of_a_disconnected_graph_without_warning():
    X, groups = _chains(4, 15)
    rows = nearest_neighbour_rows(X, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = spectral_partition(neighbour_affinity(rows), 4, n_init=10, random_state=0)
    assert labels.dtype == np.int64 and labels.shape == (60,)
    assert adjusted_rand_score(groups, labels) == 1.0


def test_spectral_partition_separates_two_dense_groups():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(0, 0.3, (40, 2)), rng.normal(0, 0.3, (40, 2)) + 3.0])
    rows = nearest_neighbour_rows(X, 5)
    labels = spectral_partition(shared_neighbour_affinity(rows), 2, n_init=10, random_state=0)
    assert adjusted_rand_score(np.repeat([0, 1], 40), labels) == 1.0


def test_spectral_partition_is_determined_by_the_random_state():
    rng = np.random.RandomState(1)
    graph = shared_neighbour_affinity(nearest_neighbour_rows(rng.normal(size=(120, 3)), 6))
    first = spectral_partition(graph, 4, n_init=2, random_state=5)
    np.testing.assert_array_equal(first, spectral_partition(graph, 4, n_init=2, random_state=5))
    assert set(np.unique(first)) == {0, 1, 2, 3}


@pytest.mark.parametrize(("n_samples", "n_clusters"), [(5, 1), (3, 3), (2, 5)])
def test_spectral_partition_of_too_few_samples_or_one_cluster(n_samples, n_clusters):
    rows = nearest_neighbour_rows(np.arange(n_samples, dtype=float)[:, None], 2)
    labels = spectral_partition(shared_neighbour_affinity(rows), n_clusters, 1, random_state=0)
    assert labels.shape == (n_samples,)
    assert labels.min() >= 0 and labels.max() < n_clusters
    if n_clusters == 1:
        assert np.all(labels == 0)
    else:  # one part per sample
        assert len(np.unique(labels)) == n_samples


def test_normalised_cut_in_closed_form():
    # A path 0 - 1 - 2 - 3 with weights 1, 2, 3: parts {0, 1} and {2, 3} are cut by the
    # edge of weight 2; their volumes (sums of their nodes' degrees) are 1 + 3 and 5 + 3.
    from scipy import sparse

    weights = np.zeros((4, 4))
    for (i, j), w in {(0, 1): 1.0, (1, 2): 2.0, (2, 3): 3.0}.items():
        weights[i, j] = weights[j, i] = w
    graph = sparse.csr_matrix(weights)
    assert normalised_cut(graph, np.array([0, 0, 1, 1])) == pytest.approx(2 / 4 + 2 / 8)
    assert normalised_cut(graph, np.array([0, 1, 1, 1])) == pytest.approx(1 / 1 + 1 / 11)
    assert normalised_cut(graph, np.zeros(4, dtype=int)) == 0.0


def test_spectral_partition_keeps_the_k_means_run_of_least_normalised_cut(monkeypatch):
    # Noisy, touching groups: k-means' runs round the eigenvectors differently. Of the runs
    # the least normalised cut is kept, whatever their inertia.
    rng = np.random.RandomState(3)
    X = np.vstack([rng.normal(centre, 1.0, (60, 2)) for centre in ([0, 0], [2.5, 0], [0, 2.5])])
    graph = shared_neighbour_affinity(nearest_neighbour_rows(X, 6))
    cuts = []
    normalised = neighbour_graph.normalised_cut

    def recording(affinity, labels):
        cuts.append(normalised(affinity, labels))
        return cuts[-1]

    monkeypatch.setattr(neighbour_graph, "normalised_cut", recording)
    labels = spectral_partition(graph, 3, n_init=8, random_state=0)
    assert len(cuts) == 8
    assert normalised(graph, labels) == pytest.approx(min(cuts))
