"""What the two mixture clusterers share in the estimator layer.

:class:`~sklearn_cebm.GMMCEBMClusterer` (a CEBM's mixture bias) and
:class:`~sklearn_cebm.GMMVAEClusterer` (a VAE's mixture prior) both place their
components among codes by k-means++, report the fitted mixture in numpy and warn when
a fit leaves clusters empty.
"""

import warnings

import numpy as np
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

__all__ = ["kmeans_plusplus_seeds", "mixture_attributes", "warn_empty_clusters"]


def kmeans_plusplus_seeds(codes, n_seeds, random_state):
    """k-means++ seeds among ``codes``; module-level, so that the net pickles with it."""
    seeds, _ = kmeans_plusplus(codes, n_seeds, random_state=check_random_state(random_state))
    return seeds


def mixture_attributes(mixture):
    """``cluster_means_``, ``cluster_stds_`` and ``weights_`` of a fitted mixture, float64.

    Parameters
    ----------
    mixture : sklearn_cebm._core.mixture.MixtureParameters
    """
    return {
        "cluster_means_": mixture.means.detach().cpu().numpy().astype(np.float64),
        "cluster_stds_": mixture.component_stds().detach().cpu().numpy().astype(np.float64),
        "weights_": mixture.mixing_weights().detach().cpu().numpy().astype(np.float64),
    }


def warn_empty_clusters(estimator, remedy):
    """Warn, as :class:`~sklearn.cluster.KMeans` does, when ``labels_`` leave clusters empty.

    A clustering with fewer clusters than asked for is a result the caller must know of:
    :meth:`predict` never returns the empty ones. A fit stopped by an interrupt has
    already warned that its model is partial, and is not warned again.

    Parameters
    ----------
    estimator : GMMCEBMClusterer or GMMVAEClusterer
        Fitted, with ``labels_`` and ``n_clusters``.
    remedy : str
        The estimator's settings that may fill the empty clusters, as a sentence.
    """
    n_used = len(np.unique(estimator.labels_))
    if n_used < estimator.n_clusters and not estimator._training_interrupted():
        warnings.warn(
            f"{type(estimator).__name__} put the {len(estimator.labels_)} training samples "
            f"in {n_used} of its n_clusters={estimator.n_clusters} clusters; the others "
            f"are empty and predict never returns them. {remedy}",
            ConvergenceWarning,
            stacklevel=3,
        )
