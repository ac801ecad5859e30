"""The nearest-neighbour graph of the training data, and its spectral partition.

Knows numpy, scipy and scikit-learn, not torch: the clusterer finds each sample's nearest
neighbours once per call and hands them to its net; the spectral partition of the same
graph is where its clustering stage starts.
"""

import warnings

import numpy as np
from scipy import sparse
from sklearn.cluster import spectral_clustering
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

__all__ = ["nearest_neighbour_rows", "neighbour_affinity", "spectral_partition"]


def nearest_neighbour_rows(X, n_neighbors):
    """Row indices of each sample's ``n_neighbors`` nearest other samples, shape (n, k).

    Euclidean distance; fewer neighbours when X has fewer other rows, and the sample
    itself when it is alone.
    """
    n_neighbors = min(n_neighbors, X.shape[0] - 1)
    if n_neighbors == 0:
        return np.zeros((X.shape[0], 1), dtype=np.int64)
    # kneighbors() without X leaves each sample out of its own neighbours, duplicates or not.
    rows = NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors(return_distance=False)
    return rows.astype(np.int64)


def neighbour_affinity(rows):
    """The symmetric k-nearest-neighbour graph ``(A + A.T) / 2`` of ``rows``, sparse.

    ``A[i, j] = 1`` where j is one of i's neighbours: an edge has weight 1 where the two
    samples are each other's neighbours, 1/2 where one is the other's; as
    :class:`~sklearn.cluster.SpectralClustering` builds it with
    ``affinity='nearest_neighbors'``.

    Parameters
    ----------
    rows : ndarray of shape (n_samples, n_neighbors)
        Each sample's neighbours' rows (:func:`nearest_neighbour_rows`).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_samples, n_samples)
    """
    n_samples, n_neighbors = rows.shape
    pointers = np.arange(0, n_samples * n_neighbors + 1, n_neighbors)
    # A lone sample is listed as its own neighbour (nearest_neighbour_rows): no edge.
    weights = (rows != np.arange(n_samples)[:, None]).astype(np.float64).ravel()
    adjacency = sparse.csr_matrix((weights, rows.ravel(), pointers), shape=(n_samples, n_samples))
    adjacency.eliminate_zeros()
    return ((adjacency + adjacency.T) * 0.5).tocsr()


def spectral_partition(rows, n_clusters, n_init, random_state):
    """Labels of the spectral clustering of the neighbour graph ``rows``, shape (n,).

    The normalised spectral clustering of the symmetric k-nearest-neighbour graph
    (:func:`neighbour_affinity`): k-means on the graph Laplacian's first ``n_clusters``
    eigenvectors (Ng, Jordan & Weiss, 2002; von Luxburg, 2007), by
    :func:`sklearn.cluster.spectral_clustering` with the LOBPCG eigensolver (ARPACK's
    shift-invert took minutes on 60,000 samples, LOBPCG three seconds). It is the relaxed
    minimiser of the normalised cut: the partition of the graph into ``n_clusters`` parts
    of comparable volume with the fewest edges between them.

    Parameters
    ----------
    rows : ndarray of shape (n_samples, n_neighbors)
        Each sample's neighbours' rows.
    n_clusters : int
        Parts; at most ``n_samples``.
    n_init : int
        Runs of k-means on the eigenvectors; the one of least inertia is kept.
    random_state : int, RandomState instance or None
        Seeds the eigensolver's start and k-means.

    Returns
    -------
    ndarray of shape (n_samples,), dtype int64
        Labels in ``[0, n_clusters)``.
    """
    n_samples = rows.shape[0]
    if n_clusters == 1:
        return np.zeros(n_samples, dtype=np.int64)
    if n_clusters >= n_samples:
        # One part per sample: nothing to solve, and the eigensolver needs more rows.
        return np.arange(n_samples, dtype=np.int64) % n_clusters
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    with warnings.catch_warnings():
        # A graph in several pieces is a fact of the data, not an error: each piece's
        # indicator is an eigenvector of eigenvalue 0, and k-means keeps the pieces apart.
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        # LOBPCG's iteration cap: eigenvectors accurate to 1e-5 rather than the 3e-5 asked
        # for (the digits at 5 neighbours) are ample for k-means on their rows.
        warnings.filterwarnings("ignore", message="Exited at iteration")
        warnings.filterwarnings("ignore", message="Exited postprocessing")
        labels = spectral_clustering(
            neighbour_affinity(rows),
            n_clusters=n_clusters,
            n_init=n_init,
            eigen_solver="lobpcg",
            random_state=seed,
        )
    return labels.astype(np.int64)
