"""Criteria for a clusterer's number of clusters that need no labels.

Re-exported by :mod:`sklearn_cebm.evaluation`. Neither needs a likelihood:
:func:`neighbour_modularity` scores a partition of held-out data against its
nearest-neighbour graph, :func:`clustering_stability` compares the partitions of fits on
two random halves.
"""

from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

from .._estimators.seeds import int32_seeds

__all__ = ["clustering_stability", "neighbour_modularity"]


def _check_stability_request(estimator, X, param_name, param_range, n_resamples):
    if not hasattr(estimator, "predict"):
        raise TypeError(
            "clustering_stability labels all rows with the fits on each half, which needs "
            f"predict; {type(estimator).__name__} has none."
        )
    if param_name not in estimator.get_params():
        raise ValueError(f"{type(estimator).__name__} has no parameter {param_name!r}.")
    if not isinstance(n_resamples, Integral) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1; got {n_resamples!r}.")
    param_range = list(param_range)
    if not param_range:
        raise ValueError("param_range must hold at least one value.")
    X = check_array(X, accept_sparse=True)
    if X.shape[0] < 4:
        raise ValueError(f"Two halves to cluster need at least 4 samples; got {X.shape[0]}.")
    return X, param_range


def clustering_stability(
    estimator,
    X,
    *,
    param_name="n_clusters",
    param_range,
    n_resamples=2,
    random_state=None,
    return_estimators=False,
):
    """How reproducible a clusterer's partition is, for each number of clusters.

    Choosing the number of clusters without labels by stability (Ben-Hur, Elisseeff &
    Guyon, 2002; Lange, Roth, Braun & Buhmann, 2004): a number of clusters that matches
    the data's structure yields the same partition from different samples of the data,
    while too few clusters must merge true groups and too many must cut one, each in a
    way that depends on the sample and the seed. For each of ``n_resamples`` resamples,
    the rows of X are split at random into two halves; for each value of ``param_name``,
    a clone of ``estimator`` is fitted on each half, each with its own seed, both label
    every row of X by ``predict``, and the two labellings are compared by the adjusted
    Rand index (Hubert & Arabie, 1985). The index is corrected for chance, 0 in
    expectation for independent labellings whatever their numbers of clusters, so values
    for different numbers of clusters compare without the normalisation by random
    labellings that Lange et al. need for their raw disagreement.

    Every value of the parameter sees the same halves and the same two seeds in a
    resample, so that the differences between values are not those of the draws.

    Parameters
    ----------
    estimator : estimator object
        A clusterer with ``fit`` and ``predict``, such as
        :class:`~sklearn_cebm.GMMCEBMClusterer`, :class:`~sklearn.cluster.KMeans` or
        :class:`~sklearn.mixture.GaussianMixture`; it is cloned, not fitted.
    X : array-like of shape (n_samples, n_features)
        The data, without labels.
    param_name : str, default='n_clusters'
        The parameter that sets the number of clusters (``'n_components'`` for
        :class:`~sklearn.mixture.GaussianMixture`).
    param_range : sequence
        Values of ``param_name`` to compare.
    n_resamples : int, default=2
        Random splits into halves; each costs two fits per value.
    random_state : int, RandomState instance or None, default=None
        Seeds the splits and, where the estimator has a ``random_state`` parameter, the
        seeds of its fits.
    return_estimators : bool, default=False
        Also return the fitted estimators and the halves they were fitted on.

    Returns
    -------
    result : dict
        ``'param_range'``: ndarray of the values, in the order given. ``'stability'``:
        ndarray of shape (n_values, n_resamples), the adjusted Rand index of each pair of
        fits, at most 1. ``'best_param'``: the value of highest mean stability (the
        first of equals). With ``return_estimators``, ``'estimators'``: for each value a
        list of ``n_resamples`` pairs of fitted estimators, and ``'halves'``: for each
        resample the pair of row indices they were fitted on.

    Raises
    ------
    TypeError
        If the estimator has no ``predict``.
    ValueError
        If ``param_name`` is not one of its parameters, ``param_range`` is empty,
        ``n_resamples`` is below 1 or X has fewer than 4 rows.

    Notes
    -----
    Stability is a necessary property of a good number of clusters, not a sufficient
    one: a clusterer that always returns the same wrong partition is stable. It favours
    numbers at which the data split in one clear way, which for nested groups can be
    a coarser level than the one wanted, and very small numbers (2) are often stable for
    that reason. Its resolution is that of the draws: the spread over resamples says
    which differences between values mean something. For
    :class:`~sklearn_cebm.GMMCEBMClusterer` (one run per fit, two splits) it chose 11
    and 10 clusters on the ten digits but 2 and 2 on the digits 0 to 4, where
    :func:`neighbour_modularity` chose 5 and 5, and 6 and 10 on 2,000 Fashion-MNIST
    images, as modularity did (``benchmarks/results/model_selection.md``).

    References
    ----------
    A. Ben-Hur, A. Elisseeff, I. Guyon. A stability based method for discovering
    structure in clustered data. Pacific Symposium on Biocomputing 2002.

    T. Lange, V. Roth, M. L. Braun, J. M. Buhmann. Stability-based validation of
    clustering solutions. Neural Computation 16(6), 2004.

    L. Hubert, P. Arabie. Comparing partitions. Journal of Classification 2, 1985.

    Examples
    --------
    Three separated blobs: two clusters merge two of them, four cut one, each in a way
    that depends on the half and the seed; three clusters are found alike every time.

    >>> from sklearn.cluster import KMeans
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn_cebm.evaluation import clustering_stability
    >>> X, _ = make_blobs(n_samples=300, centers=[[0, 0], [8, 0], [4, 7]], random_state=0)
    >>> result = clustering_stability(
    ...     KMeans(n_init=1), X, param_range=[2, 3, 4, 5], n_resamples=3, random_state=0
    ... )
    >>> int(result["best_param"]), result["stability"].shape
    (3, (4, 3))
    >>> result["stability"].mean(axis=1).round(2)
    array([0.4 , 1.  , 0.79, 0.63])
    """
    X, param_range = _check_stability_request(estimator, X, param_name, param_range, n_resamples)
    rng = check_random_state(random_state)
    seeded = "random_state" in estimator.get_params()
    stability = np.empty((len(param_range), n_resamples))
    estimators = [[] for _ in param_range]
    halves = []
    for resample in range(n_resamples):
        rows = rng.permutation(X.shape[0])
        pair = (rows[: len(rows) // 2], rows[len(rows) // 2 :])
        seeds = int32_seeds(rng, size=2)
        halves.append(pair)
        for index, value in enumerate(param_range):
            fits = []
            for half, seed in zip(pair, seeds, strict=True):
                fit = clone(estimator).set_params(**{param_name: value})
                if seeded:
                    fit.set_params(random_state=int(seed))
                fits.append(fit.fit(X[half]))
            stability[index, resample] = adjusted_rand_score(fits[0].predict(X), fits[1].predict(X))
            estimators[index].append(tuple(fits))
    result = {
        "param_range": np.asarray(param_range),
        "stability": stability,
        "best_param": np.asarray(param_range)[np.argmax(stability.mean(axis=1))],
    }
    if return_estimators:
        result.update(estimators=estimators, halves=halves)
    return result


def neighbour_modularity(X, labels, *, n_neighbors=20, scale=True):
    """Modularity of a partition on the nearest-neighbour graph of X.

    The graph joins each row to its ``n_neighbors`` nearest other rows (Euclidean), as
    :class:`~sklearn_cebm.GMMCEBMClusterer`'s clustering stage does. Its modularity
    (Newman & Girvan, 2004; for directed graphs Leicht & Newman, 2008) is the share of
    its edges that join two rows of one cluster, less the share expected if the edges
    kept each row's out- and in-degree but joined rows at random:

    ``Q = sum_c (e_c - a_c b_c)``,

    with ``e_c`` the share of edges inside cluster ``c``, ``a_c`` the share that start in
    it (its share of the rows) and ``b_c`` the share that end in it. The first term is
    the clusterer's ``neighbour_agreement_``, which one cluster maximises; the second is
    what clusters of the same sizes would get by chance, which one cluster makes 1. So
    ``Q`` is 0 for one cluster, about 0 for clusters unrelated to the graph, and grows as the
    clusters follow its well-connected parts, whatever their number: computed on data
    held out from the fit, it compares numbers of clusters. For
    :class:`~sklearn_cebm.GMMCEBMClusterer` (one run per fit, two random splits into
    halves) it chose 11 and 10 clusters on the ten digits, 5 and 5 on the digits 0 to
    4, where the held-out log-likelihood chose 15, 7, 7 and 9, and 6 and 10 on 2,000
    Fashion-MNIST images (ten classes)
    (``benchmarks/results/model_selection.md``). Its values move with the
    fit by a few hundredths: more folds steady the choice.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The rows whose neighbours to find, such as data held out from the clusterer's
        fit.
    labels : array-like of shape (n_samples,)
        A cluster of each row, such as ``clusterer.predict(X)``.
    n_neighbors : int, default=20
        Neighbours of each row; GMMCEBMClusterer's default. At most ``n_samples - 1``
        are used.
    scale : bool, default=True
        Map each feature of X to [-1, 1] by its range in X first, as GMMCEBMClusterer
        scales its input before finding its neighbours; False uses X as given.

    Returns
    -------
    float
        The modularity, below 1; 0 for a single cluster.

    Raises
    ------
    ValueError
        If X has fewer than 2 rows, ``labels`` another length, or ``n_neighbors`` is
        below 1.

    See Also
    --------
    clustering_stability : A second criterion for the number of clusters.

    References
    ----------
    M. E. J. Newman, M. Girvan. Finding and evaluating community structure in networks.
    Physical Review E 69, 026113, 2004.

    E. A. Leicht, M. E. J. Newman. Community structure in directed networks. Physical
    Review Letters 100, 118703, 2008.

    Examples
    --------
    Two pairs of points, far apart: each point's neighbour is the other of its pair.

    >>> from sklearn_cebm.evaluation import neighbour_modularity
    >>> X = [[0.0], [0.1], [5.0], [5.1]]
    >>> neighbour_modularity(X, [0, 0, 1, 1], n_neighbors=1)
    0.5
    >>> neighbour_modularity(X, [0, 0, 0, 0], n_neighbors=1)
    0.0
    >>> neighbour_modularity(X, [0, 1, 0, 1], n_neighbors=1)
    -0.5

    To choose ``n_clusters``, as a scorer of :class:`~sklearn.model_selection.GridSearchCV`,
    which computes it on each held-out fold:

    >>> def modularity_scorer(clusterer, X, y=None):
    ...     return neighbour_modularity(X, clusterer.predict(X))
    """
    X = check_array(X, dtype=np.float64)
    labels = column_or_1d(labels)
    check_consistent_length(X, labels)
    if X.shape[0] < 2:
        raise ValueError(f"A neighbour graph needs at least 2 samples; got {X.shape[0]}.")
    if not isinstance(n_neighbors, Integral) or n_neighbors < 1:
        raise ValueError(f"n_neighbors must be an integer >= 1; got {n_neighbors!r}.")
    if scale:
        X = MinMaxScaler(feature_range=(-1, 1)).fit_transform(X)
    finder = NearestNeighbors(n_neighbors=min(n_neighbors, X.shape[0] - 1)).fit(X)
    rows = finder.kneighbors(return_distance=False)
    inside = np.mean(labels[rows] == labels[:, None])
    clusters, start_counts = np.unique(labels, return_counts=True)
    end_counts = np.array([np.sum(labels[rows] == cluster) for cluster in clusters])
    expected = np.sum(start_counts / len(labels) * end_counts / rows.size)
    return float(inside - expected)
