"""The nearest-neighbour graph of the training data, and its spectral partition.

Knows numpy, scipy and scikit-learn, not torch: the clusterer finds each sample's nearest
neighbours once per call and hands them to its net; the spectral partition of the same
graph, its edges weighted by the neighbours the two ends share, is where its clustering
stage starts.
"""

import numpy as np
from scipy import linalg, sparse
from scipy.sparse import linalg as sparse_linalg
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from .._estimators.seeds import int32_seeds

__all__ = [
    "NEIGHBOUR_SEARCH_COMPONENTS",
    "nearest_neighbour_rows",
    "neighbour_affinity",
    "normalised_cut",
    "shared_neighbour_affinity",
    "spectral_partition",
]

# The neighbours are searched among the leading principal components, as t-SNE's and
# UMAP's usual pipelines do: the trailing directions of images are mostly pixel noise.
# On Fashion-MNIST the search took 25 s instead of 137 s among the 784 pixels, and the
# shared-neighbour partition's NMI rose from 0.638 to 0.661 (the plain graph's fell from
# 0.629 to 0.605; benchmarks/results/spectral_partition.md). 50 is the smallest number on
# the plateau of both data sets: 75 and 100 components gave the same partitions within
# 0.002, 10 to 40 worse or unstable ones (benchmarks/results/spectral_partition.md).
NEIGHBOUR_SEARCH_COMPONENTS = 50

# Graphs of at most this many rows are solved densely (LAPACK), where Lanczos gains
# nothing and needs more rows than eigenvectors.
_DENSE_EIGENPROBLEM_ROWS = 2000
# ARPACK's relative accuracy of the eigenvalues; 0 would ask for machine precision.
_EIGEN_TOLERANCE = 1e-8

# shared_neighbour_affinity's products of the membership matrix, this many rows at a time
# per (n_neighbors + 1) ** 2 entries: about 4 million entries (50 MiB) at a time.
_SHARED_COUNT_ENTRIES = 2**22


def nearest_neighbour_rows(X, n_neighbors, n_components=NEIGHBOUR_SEARCH_COMPONENTS):
    """Row indices of each sample's ``n_neighbors`` nearest other samples, shape (n, k).

    Euclidean distance, among X's leading ``n_components`` principal components when X
    has more features than that (all of them with ``n_components=None``); fewer
    neighbours when X has fewer other rows, and the sample itself when it is alone.
    """
    n_neighbors = min(n_neighbors, X.shape[0] - 1)
    if n_neighbors == 0:
        return np.zeros((X.shape[0], 1), dtype=np.int64)
    if n_components is not None and X.shape[1] > n_components and X.shape[0] > n_components:
        # A fixed seed: the projection is a property of the data, not of a model's draw
        # (and exact, by the covariance's eigenvectors, where features are few).
        X = PCA(n_components, random_state=0).fit_transform(X)
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


def _membership(rows):
    """The 0/1 matrix of each sample's closed neighbourhood: itself and its neighbours."""
    n_samples, n_neighbors = rows.shape
    columns = np.column_stack([np.arange(n_samples), rows]).ravel()
    pointers = np.arange(0, n_samples * (n_neighbors + 1) + 1, n_neighbors + 1)
    members = sparse.csr_matrix(
        (np.ones(len(columns)), columns, pointers), shape=(n_samples, n_samples)
    )
    members.sum_duplicates()  # a lone sample lists itself twice
    members.data[:] = 1.0
    return members


def shared_neighbour_affinity(rows):
    """The symmetric k-nearest-neighbour graph, each edge weighted by the share of
    neighbours its two ends have in common, sparse.

    An edge joins i and j where either is one of the other's neighbours (the edges of
    :func:`neighbour_affinity`); its weight is the Jaccard index
    ``|N[i] & N[j]| / |N[i] | N[j]|`` of their closed neighbourhoods (each sample with its
    ``n_neighbors`` neighbours), in ``(0, 1]``: the shared-nearest-neighbour similarity
    (Jarvis & Patrick, 1973) that PhenoGraph clusters (Levine et al., 2015). Two samples
    inside one dense region share most of their neighbours; an edge that bridges two
    regions, through a sample on the edge of each, shares few, so the bridge weighs
    little in the cut and a hub among the neighbour lists does not tie regions together.

    Parameters
    ----------
    rows : ndarray of shape (n_samples, n_neighbors)
        Each sample's neighbours' rows (:func:`nearest_neighbour_rows`).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_samples, n_samples)
    """
    members = _membership(rows)
    edges = neighbour_affinity(rows)
    edges.data[:] = 1.0
    sizes = np.asarray(members.sum(axis=1)).ravel()
    chunk = max(1, _SHARED_COUNT_ENTRIES // (rows.shape[1] + 1) ** 2)
    blocks = []
    for start in range(0, rows.shape[0], chunk):
        stop = min(start + chunk, rows.shape[0])
        # Shared counts on the graph's edges only: the product holds every pair two
        # steps apart, the mask keeps the neighbours'.
        shared = (members[start:stop] @ members.T).multiply(edges[start:stop]).tocsr()
        blocks.append(shared)
    shared = sparse.vstack(blocks).tocsr()
    shared.sort_indices()
    rows_of = np.repeat(np.arange(shared.shape[0]), np.diff(shared.indptr))
    union = sizes[rows_of] + sizes[shared.indices] - shared.data
    shared.data = shared.data / union
    return shared


def normalised_cut(affinity, labels):
    """The normalised cut of the partition ``labels`` of the graph ``affinity``.

    ``sum_l cut(A_l, rest) / vol(A_l)``: for each part, the weight of its edges that leave
    it over the weight of all its edges (Shi & Malik, 2000); 0 for parts with no edges
    between them, at most the number of parts.

    Parameters
    ----------
    affinity : scipy.sparse matrix of shape (n_samples, n_samples)
        Symmetric, non-negative edge weights.
    labels : ndarray of shape (n_samples,)
        Non-negative integer parts.

    Returns
    -------
    float
    """
    edges = sparse.coo_matrix(affinity)
    labels = np.asarray(labels)
    n_parts = int(labels.max()) + 1
    row_parts = labels[edges.row]
    volumes = np.bincount(row_parts, weights=edges.data, minlength=n_parts)
    inside = row_parts == labels[edges.col]
    within = np.bincount(row_parts[inside], weights=edges.data[inside], minlength=n_parts)
    occupied = volumes > 0
    return float(np.sum((volumes[occupied] - within[occupied]) / volumes[occupied]))


def _spectral_embedding(affinity, n_dimensions, seed):
    """The graph's ``n_dimensions`` leading eigenvectors of the random walk, rows of shape
    (n_samples, n_dimensions).

    The eigenvectors ``v`` of largest eigenvalue of the normalised adjacency
    ``D^-1/2 A D^-1/2`` (the smallest of the normalised Laplacian), mapped back as
    ``D^-1/2 v`` (Ng, Jordan & Weiss, 2002; von Luxburg, 2007), found by ARPACK's
    Lanczos iteration to near machine precision: its answer is a property of the graph,
    whatever ``seed`` starts it. scikit-learn's LOBPCG path, used before, stops at a
    residual that grows with the number of rows (``sqrt(1e-15) * n``): on 60,000
    MNIST-like digits its eigenvectors depended on the start, and their partition's NMI
    with the labels ranged from 0.718 to 0.740 over five starts, against 0.738-0.739 from
    these, found in about a second rather than 25 s
    (``benchmarks/results/spectral_partition.md``).
    """
    degrees = np.asarray(affinity.sum(axis=1)).ravel()
    # A sample with no edge (none here: each has its neighbours) would divide by zero.
    inverse_sqrt = 1.0 / np.sqrt(np.maximum(degrees, np.finfo(np.float64).tiny))
    scaling = sparse.diags(inverse_sqrt)
    normalised = (scaling @ affinity @ scaling).tocsr()
    n_samples = affinity.shape[0]
    if n_samples <= _DENSE_EIGENPROBLEM_ROWS:
        _, vectors = linalg.eigh(normalised.toarray())
        vectors = vectors[:, ::-1][:, :n_dimensions]
    else:
        start = np.random.default_rng(seed).standard_normal(n_samples)
        values, vectors = sparse_linalg.eigsh(
            normalised, k=n_dimensions, which="LA", v0=start, tol=_EIGEN_TOLERANCE
        )
        vectors = vectors[:, np.argsort(values)[::-1]]
    return vectors * inverse_sqrt[:, None]


def spectral_partition(affinity, n_clusters, n_init, random_state):
    """Labels of the spectral clustering of the graph ``affinity``, shape (n,).

    The normalised spectral clustering of a symmetric sparse graph, such as
    :func:`shared_neighbour_affinity`'s: k-means on the rows of the random walk's first
    ``n_clusters`` eigenvectors (:func:`_spectral_embedding`). The eigenvectors are the
    relaxed minimiser of the normalised cut (:func:`normalised_cut`): the partition into
    ``n_clusters`` parts of comparable volume with the least edge weight between them.
    k-means rounds them to a partition; of its ``n_init`` runs, the one whose partition
    has the least normalised cut is kept, the objective the relaxation stands for,
    rather than the least k-means inertia in the relaxed space, as
    :func:`sklearn.cluster.spectral_clustering` keeps. The two agreed on the digits
    (NMI 0.896); on Fashion-MNIST's 60,000 training images the least inertia kept a
    partition of NMI 0.661 from two of three eigensolver starts, the least cut one of
    0.675-0.676 from all three (``benchmarks/results/spectral_partition.md``).

    Parameters
    ----------
    affinity : scipy.sparse matrix of shape (n_samples, n_samples)
        The graph's symmetric, non-negative edge weights.
    n_clusters : int
        Parts; at most ``n_samples``.
    n_init : int
        Runs of k-means on the eigenvectors, each from its own seed.
    random_state : int, RandomState instance or None
        Seeds the eigensolver's start and k-means.

    Returns
    -------
    ndarray of shape (n_samples,), dtype int64
        Labels in ``[0, n_clusters)``.
    """
    n_samples = affinity.shape[0]
    if n_clusters == 1:
        return np.zeros(n_samples, dtype=np.int64)
    if n_clusters >= n_samples:
        # One part per sample: nothing to solve, and the eigensolver needs more rows.
        return np.arange(n_samples, dtype=np.int64) % n_clusters
    seed = int32_seeds(random_state)
    embedding = _spectral_embedding(affinity, n_clusters, seed)
    best, least_cut = None, np.inf
    for run_seed in int32_seeds(seed, size=n_init):
        labels = KMeans(n_clusters, n_init=1, random_state=run_seed).fit_predict(embedding)
        cut = normalised_cut(affinity, labels)
        if cut < least_cut:
            best, least_cut = labels, cut
    return best.astype(np.int64)
