"""GMMCEBMClusterer: the conjugate EBM with a mixture-of-Gaussians bias as a clusterer."""

import functools
from numbers import Integral, Real

import numpy as np
from sklearn.base import ClusterMixin
from sklearn.cluster import kmeans_plusplus
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import CodesTransformerMixin
from ._callbacks import MixtureMeansSeeding
from ._core.biases import GaussianMixtureBias
from ._core.model import ComponentEnergy
from ._docstrings import fill_docstring
from ._energy_base import BaseCEBM

__all__ = ["GMMCEBMClusterer"]


def _kmeans_plusplus_seeds(codes, n_seeds, random_state):
    """k-means++ seeds among ``codes``; module-level, so that the net pickles with it."""
    seeds, _ = kmeans_plusplus(codes, n_seeds, random_state=check_random_state(random_state))
    return seeds


@fill_docstring(
    """
    n_clusters : int
        Number of mixture components L.
    n_components : int
        Latent dimension K. (In scikit-learn's :class:`~sklearn.mixture.GaussianMixture`,
        ``n_components`` is the number of components; here that is ``n_clusters``.)
    learn_weights : bool
        Learn the mixing weights ``pi`` of the bias; uniform and fixed otherwise.
    cluster_balance : float
        Weight ``beta`` of a balance term added to the training loss,
        ``beta * KL(mean over the data batch of p(y | x) || pi)``: zero when a batch uses
        the clusters in the proportions ``pi``, ``beta log L`` when one cluster takes it
        all. It is not part of the likelihood; 0 trains the paper's pure
        maximum-likelihood objective, which on the digits puts every sample in one cluster
        (see Notes).
    init_params : {'k-means++', 'random'}
        How the component means are initialised. 'random' draws them from N(0, 1).
        'k-means++' trains one warm-up epoch with random means, then places the means by
        k-means++ seeding on the training data's codes (see Notes); the warm-up epoch
        counts towards ``max_iter``.
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
        As in :class:`CEBMEncoder`.
    learning_rate : float
        Adam's step size.
    sgld_steps : int
        SGLD steps per update.
    chain_init : {'uniform', 'gaussian'}
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021), which puts short chains near the data from their first step.
        Uniform, the paper's, by default: the Gaussian start is not measured for
        clustering.
    random_state : int, RandomState instance or None
        Seeds the initial weights, the data order, the data noise, the chains and the
        k-means++ seeding.
    """
)
class GMMCEBMClusterer(CodesTransformerMixin, ClusterMixin, BaseCEBM):
    """Clustering with a conjugate energy-based model and a mixture-of-Gaussians bias.

    A GMM-CEBM (Wu et al., 2021, Sec. 5, item 2) pairs an encoder ``t_theta(x)`` of neural
    sufficient statistics with a bias that is a mixture of ``n_clusters`` spherical Gaussians
    over ``z`` in R^K, each with its own learned natural parameters ``lambda_l``. Summing out
    ``z`` in closed form gives, per component,
    ``E(x, y=l) = -[log pi_l + sum_k (B(lambda_lk + t_k(x)) - B(lambda_lk))]``; the marginal
    energy is ``E(x) = -logsumexp_l (-E(x, l))``, the cluster posterior ``p(y | x)`` is the
    softmax of ``-E(x, l)`` and ``p(z | x, y)`` is the conjugate Gaussian. Encoder, component
    means and stds (and optionally the weights) are trained together by persistent
    contrastive divergence with SGLD and a replay buffer.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample, from a pass over X after training, so that
        ``fit_predict(X)`` equals ``fit(X).predict(X)``.
    cluster_means_ : ndarray of shape (n_clusters, n_components)
        Means of the bias's components in latent space.
    cluster_stds_ : ndarray of shape (n_clusters, n_components)
        Their standard deviations.
    weights_ : ndarray of shape (n_clusters,)
        Mixing weights ``pi`` of the bias. They are not the model's cluster proportions,
        which involve the intractable per-component normalisers.
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is the torch model.
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss``, ``energy_data``, ``energy_model``, ``energy_gap`` and
        ``chain_displacement``; with ``objective='dsm'``, ``train_loss`` and
        ``energy_data`` only.
    {common_attributes}

    See Also
    --------
    CEBMEncoder : The same model with a single fixed N(0, 1) bias.
    sklearn.mixture.GaussianMixture : A mixture of Gaussians on the raw features.
    sklearn.cluster.KMeans : Hard clustering on the raw features.

    Notes
    -----
    **Initialisation.** The evidence of component l is, up to a factor that does not depend
    on l, the density of ``N(mu_l, sigma_l**2 - 1 / (2 t_2(x)))`` at the code
    ``c(x) = t_1(x) / (-2 t_2(x))``, so the means are seeded by k-means++ on ``c(x)``. Random
    N(0, 1) means put every sample in one cluster from the first epoch: the freshly
    initialised encoder's codes span about 0.05 while the means lie about 1 apart, so the
    mean nearest the codes' common centre takes them all. Measured: on scikit-learn's
    blob data of its clustering check (3 clusters, 2-3 epochs) 'random' gave ARI 0 for 5 of
    5 seeds and 'k-means++' 0.67-0.94; on the digits see
    ``benchmarks/results/clustering_digits.md``.

    **Cluster collapse and the balance term.** On the digits, persistent contrastive
    divergence moves all codes along one common direction (their mean magnitude grows from
    about 0.5 to 15 in a dozen epochs, while the component means barely move) and, under
    the pure likelihood (``cluster_balance=0``, the paper's objective), one component takes
    every sample from epoch 4 on: all 1797 digits in one cluster after 30 epochs, NMI 0 for
    3 of 3 seeds; a faster Adam step for the means did not help. The paper notes that
    GMM-CEBMs are harder to train (Sec. 7). The balance term ``cluster_balance * KL(q || pi)``
    on the batch-average responsibilities ``q`` lets the clusters collapse less during that
    drift and spread out again after it. With the default 3.0 (digits, 30 epochs, seeds
    0-2): NMI 0.52 / 0.48 / 0.49, ARI 0.38 / 0.36 / 0.39, all 10 clusters used, against
    KMeans on the raw pixels at NMI 0.74, ARI 0.67. Seed 0 with weight 1.0 gave NMI 0.41 at
    12 epochs; weight 10.0 gave NMI 0.52 / 0.44 / 0.50, ARI 0.37 / 0.32 / 0.37. See
    ``benchmarks/results/clustering_digits.md``. The term favours clusters used in the
    proportions ``pi`` (uniform unless ``learn_weights=True``, a combination not measured).
    It does not always win: with ``n_components=16`` (seed 0, digits) the balanced fit too
    ends in one cluster after 30 epochs, and with 32 it passes through a one-cluster phase
    (epochs 3-7) before recovering to NMI 0.42 at epoch 20. Check ``np.bincount(labels_)``.

    **Sampling.** :meth:`sample` draws from the marginal ``p(x)`` or, given ``component``,
    from ``p(x | y)`` by SGLD on ``E(x, y)``. Unlike :meth:`GaussianMixture.sample
    <sklearn.mixture.GaussianMixture.sample>` it returns no labels: the model's ``p(y)``
    differs from the bias's ``pi`` by the intractable per-component normalisers, so labels
    cannot be drawn ancestrally. ``predict_proba`` on the samples gives the exact
    ``p(y | x)``, and a label drawn from it makes ``(x, y)`` a draw from the joint.

    References
    ----------
    H. Wu, B. Esmaeili, M. Wick, J.-B. Tristan, J.-W. van de Meent. Conjugate Energy-Based
    Models. ICML 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import GMMCEBMClusterer
    >>> X, _ = load_digits(return_X_y=True)
    >>> clusterer = GMMCEBMClusterer(
    ...     n_clusters=10, n_components=8, max_iter=2, sgld_steps=5, random_state=0
    ... )
    >>> labels = clusterer.fit_predict(X[:200])
    >>> labels.shape, clusterer.predict_proba(X[:3]).shape
    ((200,), (3, 10))
    """

    _parameter_constraints: dict = {
        **BaseCEBM._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "learn_weights": ["boolean"],
        "cluster_balance": [Interval(Real, 0, None, closed="left")],
        "init_params": [StrOptions({"k-means++", "random"})],
    }

    def __init__(
        self,
        *,
        n_clusters=10,
        n_components=128,
        learn_weights=False,
        cluster_balance=3.0,
        init_params="k-means++",
        encoder="auto",
        image_shape=None,
        hidden_layer_sizes=(256, 256),
        max_iter=30,
        batch_size=128,
        learning_rate=1e-4,
        objective="pcd",
        dsm_noise=0.1,
        sgld_steps=60,
        sgld_step_size=1.0,
        sgld_noise=7.5e-3,
        buffer_size=5000,
        buffer_reinit_fraction=0.05,
        chain_init="uniform",
        energy_l2=5e-3,
        data_noise=0.03,
        device="auto",
        callbacks=None,
        verbose=0,
        random_state=None,
        warm_start=False,
    ):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.learn_weights = learn_weights
        self.cluster_balance = cluster_balance
        self.init_params = init_params
        self.encoder = encoder
        self.image_shape = image_shape
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.objective = objective
        self.dsm_noise = dsm_noise
        self.sgld_steps = sgld_steps
        self.sgld_step_size = sgld_step_size
        self.sgld_noise = sgld_noise
        self.buffer_size = buffer_size
        self.buffer_reinit_fraction = buffer_reinit_fraction
        self.chain_init = chain_init
        self.energy_l2 = energy_l2
        self.data_noise = data_noise
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    def _build_bias(self):
        return GaussianMixtureBias(
            self.n_components,
            self.n_clusters,
            learn_weights=self.learn_weights,
            cluster_balance=self.cluster_balance,
        )

    def _training_callbacks(self):
        if self.init_params == "random":
            return []
        choose = functools.partial(_kmeans_plusplus_seeds, random_state=self.random_state)
        return [("mixture_means_seeding", MixtureMeansSeeding(choose))]

    def _on_fit_end(self, X):
        """Labels from a final pass over X, and the bias's components in numpy."""
        self.labels_ = self.predict(X)
        bias = self._module().bias
        self.cluster_means_ = bias.means.detach().cpu().numpy().astype(np.float64)
        self.cluster_stds_ = bias.component_stds().detach().cpu().numpy().astype(np.float64)
        self.weights_ = bias.mixing_weights().detach().cpu().numpy().astype(np.float64)

    # ----------------------------------------------------------------- inference
    def predict_proba(self, X):
        """Cluster posterior ``p(y | x)``, the softmax of ``-E(x, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose cluster posterior to compute.

        Returns
        -------
        ndarray of shape (n_samples, n_clusters)
            Rows sum to one; in X's float dtype.
        """
        return self._inference(self._module().bias_method("responsibilities"), X)

    def predict(self, X):
        """Most probable cluster of each sample.

        The cluster ``argmin_y E(x, y)``, the mode of :meth:`predict_proba`, computed from
        the energies so that it does not depend on how the softmax rounds.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to assign to clusters.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int64
            The cluster labels.
        """
        energies = self._inference(self._module().bias_method("component_energy"), X)
        return energies.argmin(axis=1).astype(np.int64)

    def transform(self, X, mixture_mean=False, return_std=False):
        """Posterior mean of z under the most probable cluster, or under the whole mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to encode under their cluster or the mixture.
        mixture_mean : bool, default=False
            False: the mean of ``p(z | x, y*)`` with ``y* = argmax_y p(y | x)``. True: the
            mean of ``p(z | x) = sum_y p(y | x) p(z | x, y)``.
        return_std : bool, default=False
            Also return the std of ``p(z | x, y*)``, the Gaussian under the most probable
            cluster; only with ``mixture_mean=False`` (the mixture is not a Gaussian).

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            In X's float dtype.
        Z_std : ndarray of shape (n_samples, n_components)
            Only when ``return_std`` is True.
        """
        module = self._module()
        if mixture_mean:
            if return_std:
                raise ValueError(
                    "return_std=True needs mixture_mean=False: the posterior over the whole "
                    "mixture is not a Gaussian."
                )
            return self._inference(module.bias_method("posterior_mixture_mean"), X)
        mean, std = self._inference(module.bias_method("most_probable_posterior_mean_std"), X)
        return (mean, std) if return_std else mean

    def sample(self, n_samples=1, *, component=None, n_steps=500, random_state=None):
        """Draw samples by SGLD from fresh chains, from ``p(x)`` or from ``p(x | y)``.

        The chains start where training's restart (``chain_init``).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        component : int, default=None
            Sample from this cluster, by SGLD on ``E(x, y=component)``; ``None`` samples
            from the marginal ``E(x)``.
        n_steps : int, default=500
            SGLD steps, with the estimator's ``sgld_step_size`` and ``sgld_noise``.
        random_state : int, RandomState instance or None, default=None
            Seeds the chains' noise; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        ndarray of shape (n_samples, `n_features_in_`)
            Samples in the units of the training data, inside its range. No labels are
            returned (see Notes); :meth:`predict_proba` gives ``p(y | x)`` for them.
        """
        if component is None:
            return super().sample(n_samples, n_steps=n_steps, random_state=random_state)
        check_is_fitted(self, "net_")
        if not isinstance(component, Integral) or not 0 <= component < self.n_clusters:
            raise ValueError(
                f"component must be an integer in [0, {self.n_clusters}); got {component!r}."
            )
        energy = ComponentEnergy(self._module(), component)
        return self._draw(n_samples, n_steps, random_state, energy)
