"""What the two mixture clusterers share in the estimator layer.

:class:`~sklearn_cebm.GMMCEBMClusterer` (a CEBM's mixture bias) and
:class:`~sklearn_cebm.GMMVAEClusterer` (a VAE's mixture prior) both place their
components among codes by k-means++ and report the fitted mixture in numpy.
"""

import numpy as np
from sklearn.cluster import kmeans_plusplus
from sklearn.utils import check_random_state

__all__ = ["kmeans_plusplus_seeds", "mixture_attributes"]


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
