"""How GMMCEBMClusterer trains: the clustering stage after the likelihood, and its runs.

:class:`ClusteringStageMixin` holds the clusterer's hooks into the base's training: the
mixture bias, the partition or the neighbours each sample is trained towards, the seeding
of the means at the end of the likelihood stage, the length of the clustering stage, and
fit's ``n_init`` runs of it from one shared likelihood stage (successive halving).
"""

import functools
import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils import check_random_state

from .._core.biases import GaussianMixtureBias
from .._estimators.base import copy_sharing_user_callbacks
from .._estimators.scaling import to_unit_range
from .._estimators.seeds import int32_seeds
from .._training.callbacks import MixtureMeansSeeding
from .._training.clustering_nets import NeighbourClusteringMixin
from .mixture import kmeans_plusplus_seeds, mixture_attributes
from .neighbour_graph import nearest_neighbour_rows, shared_neighbour_affinity, spectral_partition

__all__ = ["ClusteringStageMixin"]


# clustering_updates='auto': this many updates, or, where those are more, this many
# epochs of learning the spectral partition, or n_neighbors epochs of the neighbour stage
# of the other init_params.
_AUTO_CLUSTERING_UPDATES = 2000
_AUTO_PARTITION_EPOCHS = 30
# n_init='auto': k-means runs on the spectral embedding (spectral_clustering's default),
# or runs of the clustering stage for the other init_params.
_AUTO_SPECTRAL_N_INIT, _AUTO_RUNS = 100, 3
# Of n_init runs, each trains this share of the clustering stage (1 / _SCREENED_SHARE),
# and only the best finishes it: successive halving (Jamieson & Talwalkar, 2016). Ranked
# after half the stage, the runs chosen on the digits ended within 0.003 NMI of those
# ranked at the end (mean of six seeds), and on Fashion-MNIST were the same runs; after a
# quarter, one Fashion-MNIST seed's choice ended at 0.611 instead of 0.650
# (git show 1ec5862:benchmarks/results/clustering_screening.md).
_SCREENED_SHARE = 2


def _run_rank(run):
    """How fit ranks runs: clusters used, then agreement with the training neighbours."""
    return len(np.unique(run.labels_)), run.neighbour_agreement_


def _kmeans_centres(codes, n_seeds, random_state):
    """Centres of k-means (Lloyd's algorithm from k-means++ seeds) on ``codes``."""
    kmeans = KMeans(n_seeds, n_init=1, random_state=check_random_state(random_state))
    return kmeans.fit(codes).cluster_centers_


def _random_seeds(codes, n_seeds, random_state):
    """``n_seeds`` of the ``codes`` drawn at random without replacement."""
    rows = check_random_state(random_state).choice(len(codes), n_seeds, replace=False)
    return codes[rows]


def _matched_labels(labels, reference, n_labels):
    """``labels`` renamed so that they agree with ``reference`` on the most samples.

    The Hungarian algorithm on the two labellings' contingency table; a label with no
    counterpart in ``reference`` takes one of the names in ``[0, n_labels)`` left over.
    """
    names, indexed = np.unique(labels, return_inverse=True)
    table = contingency_matrix(indexed, reference)
    reference_names = np.unique(reference)
    rows, columns = linear_sum_assignment(table, maximize=True)
    renamed = np.empty(len(names), dtype=np.int64)
    renamed[rows] = reference_names[columns]
    unmatched = np.setdiff1d(np.arange(len(names)), rows)
    free = np.setdiff1d(np.arange(n_labels), renamed[rows])
    renamed[unmatched] = free[: len(unmatched)]
    return renamed[indexed]


class ClusteringStageMixin:
    """The clustering stage of :class:`~sklearn_cebm.GMMCEBMClusterer`; not for direct use.

    Stands left of :class:`~sklearn_cebm._estimators.energy_base.BaseCEBM`, whose hooks
    it extends.
    """

    def _net_settings(self):
        return dict(
            super()._net_settings(),
            clustering_lr=self.clustering_learning_rate,
            clustering_likelihood=self.clustering_likelihood,
        )

    def _clustering_update_count(self, n_samples):
        """Updates of the clustering stage on ``n_samples`` rows (``clustering_updates``)."""
        if self.clustering_updates != "auto":
            return self.clustering_updates
        epochs = _AUTO_PARTITION_EPOCHS if self.init_params == "spectral" else self.n_neighbors
        return max(_AUTO_CLUSTERING_UPDATES, epochs * self._batches_per_epoch(n_samples))

    def _batches_per_epoch(self, n_samples):
        return math.ceil(n_samples / self.batch_size)

    def _train(self, X_unit, epochs):
        # Empty clusters are relocated in the first half of the stage; the second half
        # lets the split clusters settle (see GMMCEBMClusterer's Notes). Its length depends
        # on the rows.
        n_samples = X_unit.shape[0]
        updates = self._clustering_update_count(n_samples)
        self.net_.relocation_updates = updates // 2
        # The step-size schedule spans the stage's whole epochs, the updates it runs.
        batches = self._batches_per_epoch(n_samples)
        self.net_.clustering_stage_updates = math.ceil(updates / batches) * batches
        super()._train(X_unit, epochs)

    def _apply_net_settings(self):
        super()._apply_net_settings()
        self._module().bias.cluster_balance = self.cluster_balance

    def _build_bias(self):
        # Equal N(0, 1) components: a single Gaussian until the seeding parts the means.
        return GaussianMixtureBias(
            self.n_components,
            self.n_clusters,
            learn_weights=self.learn_weights,
            init_scale=0.0,
            cluster_balance=self.cluster_balance,
        )

    def _net_params(self):
        return dict(
            likelihood_epochs=self.max_iter,
            clustering_lr=self.clustering_learning_rate,
            clustering_likelihood=self.clustering_likelihood,
        )

    def _full_fit_epochs(self, n_samples):
        clustering_updates = self._clustering_update_count(n_samples)
        return self.max_iter + math.ceil(clustering_updates / self._batches_per_epoch(n_samples))

    def _training_targets(self, X_unit):
        """Each row's part in the partition the clustering stage starts from, then its
        neighbours' rows (the targets :class:`NeighbourClusteringMixin` takes)."""
        # fit's runs share the neighbours it found once for their common training data.
        rows = self.__dict__.pop("_shared_neighbours", None)
        if rows is None:
            rows = nearest_neighbour_rows(X_unit, self.n_neighbors)
            # fit's likelihood stage hands them on to the runs: 25 s on 60,000 images.
            found = self.__dict__.get("_neighbours_found")
            if found is not None:
                found.append(rows)
        # Kept for _on_fit_end, which scores the clusters on the same neighbours.
        self._training_neighbours = rows
        return np.column_stack([self._partition(X_unit, rows), rows])

    def _partition(self, X_unit, rows):
        """Each row's part in the spectral partition of the neighbour graph ``rows``, or
        ``NO_PARTITION`` for the other ``init_params``.

        In a training that continues a model whose clusters exist, the parts are renamed
        after the clusters they share the most samples with, so that the clustering stage
        refines the clusters rather than permutes them.
        """
        if self.init_params != "spectral":
            return np.full(len(rows), NeighbourClusteringMixin.NO_PARTITION, dtype=np.int64)
        labels = spectral_partition(
            shared_neighbour_affinity(rows), self.n_clusters, self._n_init(), self.random_state
        )
        module = self._module()
        if not module.bias.components_equal():
            energies = self._map_unit(module.bias_method("component_energy"), X_unit, np.float64)
            labels = _matched_labels(labels, energies.argmin(axis=1), self.n_clusters)
        return labels

    def _n_init(self):
        """``n_init``, resolved: k-means runs for 'spectral', clustering runs otherwise."""
        if self.n_init != "auto":
            return self.n_init
        return _AUTO_SPECTRAL_N_INIT if self.init_params == "spectral" else _AUTO_RUNS

    def _choose_means(self, random_state):
        """The ``init_params`` seeding, ``(codes, n_seeds) -> means``, drawn from random_state.

        'spectral' places the means on its partition's parts, which the seeding callback
        takes with the training targets; k-means++ is its seeding where none is given.
        """
        seeds = {
            "k-means": _kmeans_centres,
            "k-means++": kmeans_plusplus_seeds,
            "random": _random_seeds,
            "spectral": kmeans_plusplus_seeds,
        }[self.init_params]
        return functools.partial(seeds, random_state=random_state)

    def _training_callbacks(self):
        seeding = MixtureMeansSeeding(
            self._choose_means(self.random_state),
            self.max_iter,
            to_posteriors=self.clustering_likelihood,
        )
        return [("mixture_means_seeding", seeding)]

    def _restart_clustering(self, X_unit, seed):
        """Place the means afresh from ``seed`` and draw the clustering stage from it.

        For a copy of a model whose likelihood stage has ended: the copies then differ in
        where their means start and in the neighbours their updates draw.
        """
        seeding = dict(self.net_.callbacks_)["mixture_means_seeding"]
        seeding.choose_seeds = self._choose_means(seed)
        self.net_.module_.eval()
        seeding.place(self.net_, X_unit)
        self.net_.reseed(seed)

    def _on_fit_end(self, X):
        """Labels from a final pass over X, and the bias's components in numpy."""
        self.labels_ = self.predict(X)
        rows = self.__dict__.pop("_training_neighbours")
        self.neighbour_agreement_ = float(np.mean(self.labels_[rows] == self.labels_[:, None]))
        self.__dict__.update(mixture_attributes(self._module().bias))

    def _fit_best_of_runs(self, X):
        """:meth:`~sklearn_cebm.GMMCEBMClusterer.fit` with ``n_init`` runs of the clustering
        stage, the best one kept."""
        seeds = int32_seeds(self.random_state, size=self._n_init())
        # One likelihood stage for all runs: it does not depend on the placement, and on
        # the digits it was a third of a run's time.
        likelihood = clone(self).set_params(n_init=1, random_state=int(seeds[0]))
        likelihood._neighbours_found = found = []
        likelihood._fit(X, reset=True, epochs=self.max_iter)
        del likelihood._neighbours_found
        # An interrupt (Ctrl-C) stops the whole fit, not one stage or run: the model
        # trained so far, or the best of the runs so far, is kept.
        interrupted = likelihood._training_interrupted()
        X_valid = likelihood._validate_input(X, reset=False)
        X_unit = to_unit_range(X_valid, likelihood.input_center_, likelihood.input_scale_)
        (neighbours,) = found
        clustering_epochs = self._full_fit_epochs(X_valid.shape[0]) - self.max_iter
        screening_epochs = math.ceil(clustering_epochs / _SCREENED_SHARE)
        runs = [likelihood] if interrupted else []
        for seed in seeds:
            if interrupted:
                break
            run = copy_sharing_user_callbacks(likelihood, likelihood)
            run.random_state = int(seed)
            run._restart_clustering(X_unit, int(seed))
            run._shared_neighbours = neighbours
            run._fit(X, reset=False, epochs=screening_epochs)
            runs.append(run)
            interrupted = run._training_interrupted()
        best = max(runs, key=_run_rank)
        if not interrupted and clustering_epochs > screening_epochs:
            best = self._finish_best_run(X, runs, neighbours, clustering_epochs - screening_epochs)
        parameters = self.get_params(deep=False)
        fitted = {name: value for name, value in vars(best).items() if name not in parameters}
        self.__dict__.update(fitted)
        # The runs were built from a clone: its callbacks are copies of this estimator's.
        self._record_built_params()

    def _finish_best_run(self, X, runs, neighbours, epochs):
        """Train the best screened run to the end of the stage; the next one too, and so
        on, while the finished ones leave clusters empty (a run can still collapse late).
        Returns the best finished run."""
        finished = []
        for run in sorted(runs, key=_run_rank, reverse=True):
            run._shared_neighbours = neighbours
            run._fit(X, reset=False, epochs=epochs)
            finished.append(run)
            if run._training_interrupted() or _run_rank(run)[0] == self.n_clusters:
                break
        return max(finished, key=_run_rank)
