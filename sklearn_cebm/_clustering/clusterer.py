"""GMMCEBMClusterer: the conjugate EBM with a mixture-of-Gaussians bias as a clusterer."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import ClusterMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._core.model import ConditionalEnergy
from .._estimators.docstrings import fill_docstring
from .._estimators.energy_base import BaseCEBM
from .._estimators.transformers import CodesTransformerMixin
from .._training.clustering_nets import ClusteringDSMNet, ClusteringPCDNet
from .clustering_stage import ClusteringStageMixin
from .mixture import warn_empty_clusters

__all__ = ["GMMCEBMClusterer"]


@fill_docstring(
    """
    n_clusters : int
        Number of mixture components L. To choose it without labels, score held-out data
        with :func:`~sklearn_cebm.evaluation.neighbour_modularity` (see the user guide's
        "Choosing the number of clusters"); ``score``, a log-likelihood, does not.
    n_components : int
        Latent dimension K. (In scikit-learn's :class:`~sklearn.mixture.GaussianMixture`,
        ``n_components`` is the number of components; here that is ``n_clusters``.)
    learn_weights : bool
        Learn the mixing weights ``pi`` of the bias; uniform and fixed otherwise.
    n_neighbors : int
        Nearest neighbours of each training sample, in the scaled input space (among its
        50 leading principal components where it has more features), that make the
        neighbour graph the clustering stage starts from (see Notes). 10, as
        :class:`~sklearn.cluster.SpectralClustering` has it: the graph's spectral
        partition reached NMI 0.896 on the digits and 0.675-0.676 on Fashion-MNIST's
        training images with 10 (``benchmarks/results/spectral_partition.md``);
        from 5 to 20 neighbours 0.852-0.896 and 0.618-0.673 with the k-means rounding of
        least inertia that preceded (``benchmarks/results/spectral_partition.md``).
        With ``init_params`` other than 'spectral', the neighbours each sample is pulled
        towards; 20 did better there
        (``git show 1ec5862:benchmarks/results/clustering_n_neighbors.md``).
    cluster_balance : float
        With ``init_params`` other than 'spectral': the weight ``beta`` of the balance
        term of the clustering stage, ``beta * KL(mean over the batch of p(y | x) || pi)``:
        zero when a batch uses the clusters in the proportions ``pi``, ``beta log L`` when
        one cluster takes it all. Without it (0) the neighbour term alone is minimised by
        one cluster.
    clustering_updates : int or 'auto'
        Adam updates of the clustering stage, which follows the ``max_iter`` epochs of
        likelihood training; rounded up to whole epochs, their step warmed up linearly
        over the first 10%. 'auto' makes 2,000 updates or, where those are more, 30
        epochs of learning the spectral partition (``n_neighbors`` epochs of the other
        ``init_params``' neighbour stage): on 60,000 MNIST-like digits 10 epochs left the
        cross-entropy falling (test NMI 0.672-0.695, seeds 0-1), 30 reached 0.690-0.700
        (the user guide's "Across data sets and seeds").
    clustering_learning_rate : float
        Adam's step size in the clustering stage.
    clustering_likelihood : bool
        Keep training the likelihood in the clustering stage: each update then also makes
        the objective's own update (PCD or score matching), its loss and gradients divided
        by the number of input features D, so that the stage descends
        ``-log p(x) / D - log p(y | x)``. The cross-entropy alone reshapes the encoder to
        the partition and the conv net's codes lose what they held beyond it; the
        likelihood keeps it. On 10,000 Fashion-MNIST images with the conv net
        (``image_shape``), the codes' few-label accuracy was 50.8 / 69.7 / 79.0 / 83.2%
        with it against 48.0 / 63.7 / 74.7 / 81.4% without (CEBMEncoder after the same
        30 epochs of likelihood: 52.0 / 70.6 / 79.2 / 83.2%), the test NMI 0.613 against
        0.611, at 1.7 times the fit's time (each update runs the sampler). On all 60,000
        images, 20 epochs of likelihood before the stage (``max_iter=20``) and its 10
        gave 54.7 / 71.9 / 79.5 / 84.8% and a test NMI of 0.674, against CEBMEncoder's
        52.3 / 71.0 / 78.4 / 84.5% after its 30 epochs, at 1.10 times its time (the
        training guide's clustering page). On the digits
        the clusters were the same (NMI 0.896-0.897) at three times the time with the MLP
        (82 s per fit), though the sampler lost the energy late in every seed's stage
        (gaps of -35 to -106 after three rollbacks: a ``SamplerWarning``). The
        components are then fitted to the posteriors of z of their parts, splitting the
        prior the likelihood was trained under (one M-step of EM,
        ``GaussianMixtureBias.fit_to_posteriors``): fitted
        to the parts' codes, as without the option, they came out 5 to 170 times wider
        than that prior with the MLP on all 60,000 Fashion-MNIST images, the model
        samples' energy fell past -1e6 and fit raised :class:`TrainingDivergedError`.
        The likelihood undivided
        outweighed the cross-entropy: on the digits' conv net it flattened ``p(y | x)``
        until 4 of 10 clusters were used
        (``benchmarks/results/clustering_few_label.md``). Without a partition
        (``init_params`` other than 'spectral') it is added to the neighbour terms.
    init_params : {'spectral', 'k-means++', 'k-means', 'random'}
        How the clustering stage starts at the end of the likelihood stage (see Notes).
        'spectral': the spectral clustering of the neighbour graph partitions the
        training data; each component is placed on the codes of its part, and the
        clustering stage trains ``p(y | x)`` to give each sample its part. The others
        place the means among the codes of the training data, by k-means++ seeding, at
        the centres of k-means from those seeds, or at the codes of ``n_clusters``
        samples drawn at random, and the clustering stage pulls each sample and its
        neighbours into one cluster (the previous default; slower, and on the digits
        NMI 0.83 against 0.90).
    n_init : int or 'auto'
        With 'spectral', the runs of k-means on the graph's eigenvectors, the one whose
        partition has the least normalised cut kept; 'auto' makes 100. The rounding is
        what decides a partition once the eigenvectors are exact: with 10 runs, five
        seeds' partitions of 20,000 MNIST-like digits had NMIs of 0.579-0.606 (cuts
        0.771-0.810), with 100 all five found the least cut (0.764-0.765) at NMI
        0.632-0.633; of 60,000, 10 runs missed it for three seeds of five (NMI 0.717 for
        one), 100 found it for all (0.739), at 6-9 s rather than 1-2 s
        (``benchmarks/results/spectral_partition.md``). Otherwise, runs of the
        placement and the clustering stage, each from its own seed, after one shared
        likelihood stage; each trains half the stage, and the one whose clusters agree most
        with the neighbours then trains the rest (see :meth:`fit`). The runs share the
        ``callbacks`` given, which thus see the whole fit. ``partial_fit`` and a
        warm-started ``fit`` train the one model they have; 'auto' makes 3.
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
        As in :class:`CEBMEncoder`, except that 'auto' is the MLP, with ``image_shape``
        or without: the clustering stage learns a partition of the neighbour graph of
        the inputs, which the MLP learns in a fraction of the conv net's time: on all
        60,000 Fashion-MNIST images a fit with the conv net took 4,478 s on one thread
        of a shared machine (``benchmarks/results/clustering_few_label.md``); with
        ``image_shape=(1, 28, 28)`` and 'auto', thus the MLP, 430 s on two idle threads
        for a test NMI of 0.670
        (``benchmarks/results/clustering.md``). The
        conv net's codes are the better features for a classifier with
        ``clustering_likelihood=True`` (the guide's clustering page), so ``'cnn'`` stays
        available by name.
    max_iter : int
        Epochs of likelihood training, before the clustering stage.
    learning_rate : float
        Adam's step size in the likelihood stage.
    chain_init : {'uniform', 'gaussian'}
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021), as in :class:`CEBMEncoder`, whose likelihood stage this is.
    random_state : int, RandomState instance or None
        Seeds the initial weights, the data order, the data noise, the chains, the
        placement of the means and the neighbours drawn in the clustering stage.
    """
)
class GMMCEBMClusterer(CodesTransformerMixin, ClusterMixin, ClusteringStageMixin, BaseCEBM):
    """Clustering with a conjugate energy-based model and a mixture-of-Gaussians bias.

    A GMM-CEBM (Wu et al., 2021, Sec. 5, item 2) pairs an encoder ``t_theta(x)`` of neural
    sufficient statistics with a bias that is a mixture of ``n_clusters`` spherical Gaussians
    over ``z`` in R^K, each with its own learned natural parameters ``lambda_l``. Summing out
    ``z`` in closed form gives, per component,
    ``E(x, y=l) = -[log pi_l + sum_k (B(lambda_lk + t_k(x)) - B(lambda_lk))]``; the marginal
    energy is ``E(x) = -logsumexp_l (-E(x, l))``, the cluster posterior ``p(y | x)`` is the
    softmax of ``-E(x, l)`` and ``p(z | x, y)`` is the conjugate Gaussian.

    Training has two stages. The first ``max_iter`` epochs train the model by persistent
    contrastive divergence (or score matching) with every component equal to N(0, 1),
    which makes the mixture a single Gaussian: this is :class:`CEBMEncoder`'s training,
    with its defaults. The training data are then partitioned by the spectral clustering
    of their nearest-neighbour graph, each component is placed on its part's codes, and
    ``clustering_updates`` updates train the encoder and the mixture so that ``p(y | x)``
    gives each sample its part (see Notes).

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample, from a pass over X after training, so that
        ``fit_predict(X)`` equals ``fit(X).predict(X)``.
    neighbour_agreement_ : float
        Share of the (sample, neighbour) pairs of the training data, ``n_neighbors`` per
        sample, that ``labels_`` puts in the same cluster.
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
    sklearn_cebm.evaluation.neighbour_modularity : A criterion for ``n_clusters``.

    Notes
    -----
    **Why two stages.** Under the paper's pure likelihood one component takes every
    sample: on the digits, persistent contrastive divergence moves all codes along one
    common direction faster than the component means follow, and all 1797 digits ended in
    one cluster for 3 of 3 seeds (``git show 1ec5862:benchmarks/results/clustering_digits.md``, the
    previous version). A balance term alone kept 10 clusters but reached NMI 0.50,
    below k-means on the pixels (0.74). The likelihood does learn good statistics
    (:class:`CEBMEncoder`), but k-means on the digits' codes gives NMI 0.57-0.60: the codes
    spread along directions that are not the classes.

    **The spectral start** (``init_params='spectral'``, the default). The class is taken
    to be constant on connected regions of high density (the cluster assumption), which
    the graph of each sample's ``n_neighbors`` nearest neighbours (Euclidean, in the
    scaled input space, among its 50 leading principal components where it has more
    features) traces: 96.5% of the digits' 10 nearest neighbours share their class, 81%
    of Fashion-MNIST's. Each edge of the graph weighs the share of neighbours its two
    ends have in common (the Jaccard index of their neighbourhoods; Jarvis & Patrick,
    1973, as PhenoGraph weighs it): an edge inside a dense region weighs nearly 1, one
    that bridges two regions little. The normalised spectral clustering of that graph (Ng,
    Jordan & Weiss, 2002; von Luxburg, 2007) solves the relaxation of its normalised cut:
    the partition into ``n_clusters`` parts of comparable volume with the least edge
    weight between them, found globally, by an eigenproblem, rather than by descent from
    a placement. The shared-neighbour weights raised the partition's NMI on
    Fashion-MNIST's training images from 0.605 to 0.661 with the neighbours searched
    among 50 components (0.629 to 0.638 among all 784 pixels), and changed it on the
    digits by -0.003 to +0.016 from 5 to 20 neighbours; the search among 50 components
    took 25 s rather than 137 s on Fashion-MNIST
    (``benchmarks/results/spectral_partition.md``). Each component is then placed at the
    mean of its part's codes, its stds matched to their spread (the M-step of a Gaussian
    mixture on the codes given the partition), the components are pulled towards their
    average as described under Seeding, and the clustering stage descends the cross-entropy
    of ``p(y | x)`` against the parts, with labels smoothed by 0.1 so that the evidences
    cannot run away from one another (the part's cluster is the target at 0.91, each other
    at 0.01 for L = 10, so ``predict_proba`` gives about 0.91 where the model has learned
    the part): the model learns the partition, so that :meth:`predict` extends it to new
    samples through the encoder. The neighbour-consistency stage below, from k-means++
    placements, was the previous default: on the digits it converged slowly (the NMI
    still rose after 134 epochs) and into local optima the neighbours cannot undo (in
    one fit the ones and the eights shared two clusters), and reached NMI 0.826, 0.878
    and 0.832 for seeds 0-2 in 44 s per fit, against 0.896-0.897 in about 24 s from
    the spectral start
    (``git show 1ec5862:benchmarks/results/clustering_digits_all_methods.md``). Started from the
    learned partition, the neighbour-consistency stage lowered both its own agreement
    with the neighbours and the NMI (on the digits from 0.84 to 0.82-0.87; on
    Fashion-MNIST's test images from 0.62 to 0.57), so it is not run after it.

    With the other ``init_params`` the clustering stage is as follows.

    **Seeding.** The evidence of component l is, up to a factor that does not depend on l,
    the density of ``N(mu_l, sigma_l**2 - 1 / (2 t_2(x)))`` at the code
    ``c(x) = t_1(x) / (-2 t_2(x))``, so the means are placed among the codes ``c(x)`` of
    the training data (k-means++ seeding by default), and each component's stds are
    matched to the spread of the codes nearest its mean, less the factors' own variance
    ``s(x)**2 = -1 / (2 t_2(x))``: one M-step of a Gaussian mixture on the codes. Left at
    the single Gaussian's stds, the components were far narrower than the clusters of
    Fashion-MNIST's codes (log-evidence gaps of hundreds between components), ``p(y | x)``
    started saturated and the balance term, without gradient, let clusters empty (a
    5,000-image subset: 6 of 10 clusters used without the matching, 8-9 with it). The
    matching is not enough in 128 dimensions: on all 60,000 Fashion-MNIST images the
    placed components still won their codes with ``p(y | x)`` of one to float precision
    (the largest log-evidence led the next by a median of 22,000 nats), the neighbour
    term started at hundreds of nats, and five clustering runs from one likelihood stage
    reached test NMI 0.35-0.44 only, with 5-9 of the 10 clusters used.
    So the components are finally pulled towards their average, means and log-stds by
    one factor, until ``max_l p(l | x)`` averages ``1 / sqrt(L)`` over the training data
    (:meth:`GaussianMixtureBias.pull_towards_centre`): halfway, in log-probability,
    between the uniform posterior and a certain one. From the same likelihood stage the
    runs then reached test NMI 0.54-0.62 with all clusters used (average certainty 0.5:
    0.58, 0.54, 0.61; 0.25: 0.60, 0.60, 0.61; ``1 / sqrt(10)``, about 0.32: 0.58, 0.59,
    0.62), and the fits of three seeds 0.607, 0.585 and 0.587 against 0.604, 0.626 and
    0.541 before: fewer failures, the same level (0.617, 0.588 and 0.578 since, the
    same model up to float rounding, fitted faster; 0.650, 0.659 and 0.575 with the
    clustering stage of ``n_neighbors`` epochs that ``clustering_updates='auto'``
    gives large data).

    **Relocation.** In the first half of the clustering stage, a component that no sample
    of the last 50 batches chose (the argmax of ``p(y | x)``) is empty, and is relocated
    as k-means relocates an empty cluster: the component the most samples chose is split
    in two at the median of its codes' principal axis (bisecting k-means), and the empty
    one takes one half, both with the split one's stds. On all 60,000 Fashion-MNIST
    images the codes are heavy-tailed (factor variances ``s(x)**2`` from 0.8 to 2,700
    between the 1st and 99.9th percentiles), k-means++ seeded components on isolated
    codes, and one component won 56,133 of the 60,000 images after the placement; from
    that likelihood stage, 3 clusters survived without relocation (test NMI 0.51) and
    all 10 with it (0.60). Relocating only once, after the first 50 updates, left 8
    (0.43). On the digits clusters sometimes empty and come back, and relocating them
    cost NMI on one seed of three (0.87 to 0.81 for the best of three runs).

    **The clustering stage** rests on the cluster assumption: the class is constant on a
    connected region of high density, so near neighbours should share a cluster. Each
    update draws one of the ``n_neighbors`` nearest neighbours ``x'`` (Euclidean, in the
    scaled input space, found once per call to ``fit``) of every sample of the batch and
    descends ``-log sum_l p(l | x) p(l | x') + cluster_balance * KL(q || pi)``, where
    ``q`` is the batch's mean of ``p(y | x)`` (SCAN, Van Gansbeke et al., 2020, with the
    mixture's exact ``p(y | x)`` in place of a classifier). The first term alone is
    minimised by a single cluster; the second forbids it. Neither this stage nor the
    spectral start's is maximum likelihood, so the density is kept from before them (see
    Sampling).

    **What matters.** ``n_neighbors``; the neighbours in the input space are good where
    nearby inputs share a class (96.5% of the digits' 10 nearest neighbours do, 93.8% of
    their 20; 81% and 80% of Fashion-MNIST's). Where distances between the raw inputs
    mean little, pass features in which they do.

    **The density and sampling.** The clustering stage trains ``p(y | x)`` and nothing
    holds the marginal energy in place meanwhile (SGLD on the trained ``E(x, y = l)`` drew
    samples a classifier of the real digits gave cluster l's majority class for 5-7% of
    them). So when the stage begins a frozen copy of the model, its likelihood-stage
    weights averaged with decay 0.99, becomes ``net_.density_module_``, the model of
    ``p(x)`` that :meth:`score_samples`, :meth:`score`, :meth:`score_gradient_norm` and
    :meth:`sample` use. The joint is ``p(x, y) = p(x) p(y | x)`` with :meth:`predict_proba`'s
    ``p(y | x)``, and ``sample(component=l)`` runs SGLD on ``E(x) - log p(y = l | x)``
    (76-85% of the majority class, the user guide's "What matters"). Unlike
    :meth:`GaussianMixture.sample <sklearn.mixture.GaussianMixture.sample>` it returns no
    labels: ``p(y)``, the mean of ``p(y | x)`` under ``p(x)``, has no closed form; a label
    drawn from :meth:`predict_proba` on a sample makes ``(x, y)`` a draw from the joint. A
    model whose clustering stage has not begun is its own density.

    References
    ----------
    H. Wu, B. Esmaeili, M. Wick, J.-B. Tristan, J.-W. van de Meent. Conjugate Energy-Based
    Models. ICML 2021.

    A. Y. Ng, M. I. Jordan, Y. Weiss. On spectral clustering: analysis and an algorithm.
    NIPS 2001 (2002).

    U. von Luxburg. A tutorial on spectral clustering. Statistics and Computing 17, 2007.

    R. A. Jarvis, E. A. Patrick. Clustering using a similarity measure based on shared
    near neighbors. IEEE Transactions on Computers C-22, 1973.

    J. H. Levine et al. Data-driven phenotypic dissection of AML reveals progenitor-like
    cells that correlate with prognosis (PhenoGraph). Cell 162, 2015.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import GMMCEBMClusterer
    >>> X, _ = load_digits(return_X_y=True)
    >>> clusterer = GMMCEBMClusterer(
    ...     n_clusters=10, n_components=8, max_iter=2, clustering_updates=200, n_init=1,
    ...     random_state=0,
    ... )
    >>> labels = clusterer.fit_predict(X[:200])
    >>> labels.shape, clusterer.predict_proba(X[:3]).shape
    ((200,), (3, 10))
    """

    _parameter_constraints: dict = {
        **BaseCEBM._parameter_constraints,
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "learn_weights": ["boolean"],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "cluster_balance": [Interval(Real, 0, None, closed="left")],
        "clustering_updates": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "clustering_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "clustering_likelihood": ["boolean"],
        "init_params": [StrOptions({"spectral", "k-means", "k-means++", "random"})],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(
        self,
        *,
        n_clusters=10,
        n_components=128,
        learn_weights=False,
        n_neighbors=10,
        cluster_balance=5.0,
        clustering_updates="auto",
        clustering_learning_rate=3e-4,
        clustering_likelihood=False,
        init_params="spectral",
        n_init="auto",
        encoder="auto",
        image_shape=None,
        hidden_layer_sizes=(256, 256),
        max_iter=30,
        batch_size=128,
        learning_rate=1e-3,
        objective="pcd",
        dsm_noise=0.1,
        sgld_steps=5,
        sgld_step_size=1.0,
        sgld_noise=7.5e-3,
        buffer_size=5000,
        buffer_reinit_fraction=0.05,
        chain_init="gaussian",
        energy_l2=5e-3,
        data_noise=0.03,
        device="auto",
        precision="auto",
        ema_decay=None,
        callbacks=None,
        verbose=0,
        random_state=None,
        warm_start=False,
    ):
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.learn_weights = learn_weights
        self.n_neighbors = n_neighbors
        self.cluster_balance = cluster_balance
        self.clustering_updates = clustering_updates
        self.clustering_learning_rate = clustering_learning_rate
        self.clustering_likelihood = clustering_likelihood
        self.init_params = init_params
        self.n_init = n_init
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
        self.precision = precision
        self.ema_decay = ema_decay
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    _pcd_net, _dsm_net = ClusteringPCDNet, ClusteringDSMNet
    _transient_attributes = BaseCEBM._transient_attributes | {"_neighbours_found"}

    # n_init: the runs of a fresh fit, which a continued training does not use; the
    # neighbours and the clustering stage's length are read at each call.
    _continuable_params = BaseCEBM._continuable_params | {
        "n_init",
        "n_neighbors",
        "cluster_balance",
        "clustering_updates",
        "clustering_learning_rate",
        "clustering_likelihood",
    }

    def _encoder_choice(self):
        # The clustering stage learns a partition found in the input space, which the
        # MLP learns as well as the conv net at a fraction of its time (see encoder).
        return "mlp" if self.encoder == "auto" else self.encoder

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train on X: the likelihood stage, then the clustering stage.

        With ``init_params='spectral'`` (the default), one model: after the ``max_iter``
        epochs of likelihood, the components are placed on the spectral partition of the
        neighbour graph and ``p(y | x)`` trained to it.

        With the other ``init_params``, the ``max_iter`` epochs of likelihood are trained
        once and each of the ``n_init`` runs continues a copy of that model: it places the
        means from its own seed and trains the first half of the ``clustering_updates``
        updates of clustering with its own draws. The likelihood stage is shared because
        it does not depend on the placement and dominates the cost on large data. Runs
        are ranked by the number of components their clusters use, then by how much their
        ``labels_`` agree with the training neighbours (``neighbour_agreement_``): the
        quantity the clustering stage maximises, so runs are chosen by their own
        objective, as k-means keeps its run of least inertia. The best run after the half
        trains the rest of the stage (successive halving: the run ranked best then was,
        on the digits, within 0.003 NMI of the run ranked best at the end, for two thirds
        of the cost); should it end with clusters left empty, the next one finishes too,
        and the best finished run is kept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; dense, finite.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        TrainingDivergedError
            If a run's energies, objective or weights become non-finite or explode; the
            estimator is left as it was.

        Warns
        -----
        ConvergenceWarning
            If ``labels_`` use fewer than ``n_clusters`` clusters, as
            :class:`~sklearn.cluster.KMeans` warns; the model is kept.
        """
        if (
            self.init_params == "spectral"
            or self._n_init() == 1
            or (self.warm_start and hasattr(self, "net_"))
        ):
            super().fit(X)
        else:
            self._fit_best_of_runs(X)
        longer = "a longer clustering stage (clustering_updates)"
        remedy = f"More runs (n_init) or {longer}"
        if self.init_params == "spectral":
            remedy = longer.capitalize()
        warn_empty_clusters(
            self,
            f"{remedy} may fill them; fewer clusters (n_clusters) may suit the data better.",
        )
        return self

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
            Only when ``return_std`` is True. Under ``set_output``, in the same container
            as ``Z``.
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
        return (mean, self._like_codes(std, X)) if return_std else mean

    def sample(self, n_samples=1, *, component=None, n_steps=500, random_state=None):
        """Draw samples by SGLD from fresh chains, from ``p(x)`` or from ``p(x | y)``.

        The chains start where training's restart (``chain_init``).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        component : int, default=None
            Sample from this cluster, ``p(x | y=component)``, proportional to
            ``p(x) p(y=component | x)``: SGLD on ``E(x) - log p(y=component | x)``, the
            density's energy less the log of :meth:`predict_proba`'s column. ``None``
            samples from the marginal ``p(x)``, the density :meth:`score_samples` scores
            (see Notes).
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
        # The fitted mixture's size: n_clusters may have been set anew since.
        n_fitted = len(self.weights_)
        if not isinstance(component, Integral) or not 0 <= component < n_fitted:
            raise ValueError(f"component must be an integer in [0, {n_fitted}); got {component!r}.")
        energy = ConditionalEnergy(self._density_module(), self._module(), component)
        return self._draw(n_samples, n_steps, random_state, energy)

    def _density_module(self):
        """The likelihood stage's density (``net_.density_module_``), once the clustering
        stage has begun; the trained module before."""
        check_is_fitted(self, "net_")
        density = getattr(self.net_, "density_module_", None)
        return self._module() if density is None else density
