"""CEBMEncoder: the conjugate EBM with a spherical Gaussian bias as a transformer."""

from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context

from ._base import BaseCEBM
from ._core.biases import SphericalGaussianBias

__all__ = ["CEBMEncoder"]


class CEBMEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseCEBM):
    """Unsupervised representations from a conjugate energy-based model.

    A CEBM (Wu et al., 2021) pairs an encoder ``t_theta(x)`` of neural sufficient statistics
    with a spherical Gaussian bias over ``z`` in R^K. The joint energy
    ``E(x, z) = -<lambda + t(x), eta(z)> + B(lambda)`` with ``eta(z) = (z, z**2)`` makes the
    posterior ``p(z | x)`` an exact Gaussian and the marginal energy
    ``E(x) = sum_k [B(lambda_k) - B(lambda_k + t_k(x))]`` tractable up to ``log Z``. The
    model is trained by persistent contrastive divergence with SGLD and a replay buffer.

    Parameters
    ----------
    n_components : int, default=128
        Latent dimension K.
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module, default='auto'
        'cnn' is the paper's conv net (needs ``image_shape``), 'mlp' a SiLU network with
        ``hidden_layer_sizes``, 'auto' picks 'cnn' when ``image_shape`` is given. A module
        must map a batch shaped ``(n, *input_shape)`` to ``(n, 2 * n_components)``; its
        second half becomes the negative statistic ``t_2(x)``. A module is copied at fit and
        used with its own initial weights.
    image_shape : tuple of int, default=None
        ``(channels, height, width)`` of each row of X, for the conv net. Images are scaled
        with one range for all pixels; otherwise each feature gets its own.
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden widths of the MLP encoder.
    max_iter : int, default=30
        Training epochs.
    batch_size : int, default=128
        Data examples (and as many model samples) per update.
    learning_rate : float, default=1e-3
        Adam's step size. The paper's is 1e-4 (see :func:`~sklearn_cebm.paper_settings`).
    objective : {'pcd', 'dsm'}, default='pcd'
        The training objective. 'pcd' is the paper's persistent contrastive divergence with
        SGLD and a replay buffer; 'dsm' is denoising score matching (Vincent, 2011), which
        needs no sampling (the ``sgld_*``, ``buffer_*``, ``chain_init``, ``energy_l2`` and
        ``data_noise`` settings are then unused) and is several times cheaper per update,
        but learns the density of the data convolved with ``dsm_noise``.
    dsm_noise : float, default=0.1
        Std of the noise of denoising score matching, in the scaled units (the data span
        [-1, 1]); only used with ``objective='dsm'``.
    sgld_steps : int, default=5
        SGLD steps per update. The paper takes 60; with the persistent chains, 5 steps and
        a larger ``learning_rate`` give better codes for the same training time on a CPU
        (``benchmarks/results/time_to_accuracy``).
    sgld_step_size : float, default=1.0
        Multiplier of the energy gradient in each SGLD step, in the scaled units.
    sgld_noise : float, default=7.5e-3
        Std of the SGLD noise, in the scaled units.
    buffer_size : int, default=5000
        Persistent chains in the replay buffer.
    buffer_reinit_fraction : float, default=0.05
        Share of each batch of chains restarted from their start (``chain_init``).
    chain_init : {'uniform', 'gaussian'}, default='gaussian'
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021), which puts short chains near the data from their first step. With
        the 5-step default it keeps the energy gap near 0 where uniform starts let it run
        away, and gives better codes (``benchmarks/results/time_to_accuracy``).
    energy_l2 : float, default=5e-3
        Weight of the penalty on squared energies.
    data_noise : float, default=0.03
        Std of the Gaussian noise added to training data, in the scaled units.
    device : {'auto', 'cpu', 'cuda', 'cuda:N'} or torch.device, default='auto'
        Where to train; 'auto' takes CUDA when it is available.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (progress bar, checkpoints, LR schedulers, early stopping).
    verbose : int, default=0
        When positive, show skorch's progress bar during each epoch (batches done, rate,
        time left, the latest loss and energy gap) and print its per-epoch table (loss,
        energies, energy gap, chain movement, seconds).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the data order, the data noise and the chains.
    warm_start : bool, default=False
        Continue training the previous fit's network on ``fit``.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is the torch model.
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss``, ``energy_data``, ``energy_model``, ``energy_gap`` and
        ``chain_displacement``; with ``objective='dsm'``, ``train_loss`` and
        ``energy_data`` only.
    n_iter_ : int
        Epochs trained in total.
    input_offset_, input_scale_ : ndarray of shape (`n_features_in_`,)
        The learned map ``(X - offset) / scale`` into the sampler's box ``[-1, 1]``.
    device_ : torch.device
        Device the model was trained on.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined when X has string feature names.

    See Also
    --------
    GMMCEBMClusterer : The same model with a mixture-of-Gaussians bias.
    sklearn.neural_network.BernoulliRBM : An energy-based latent-variable model with a
        bilinear energy.

    References
    ----------
    H. Wu, B. Esmaeili, M. Wick, J.-B. Tristan, J.-W. van de Meent. Conjugate Energy-Based
    Models. ICML 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import CEBMEncoder
    >>> X, _ = load_digits(return_X_y=True)
    >>> encoder = CEBMEncoder(n_components=8, max_iter=1, sgld_steps=5, random_state=0)
    >>> encoder.fit_transform(X[:200]).shape
    (200, 8)
    """

    _parameter_constraints: dict = {**BaseCEBM._parameter_constraints}

    def __init__(
        self,
        *,
        n_components=128,
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
        callbacks=None,
        verbose=0,
        random_state=None,
        warm_start=False,
    ):
        self.n_components = n_components
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
        return SphericalGaussianBias(self.n_components)

    @property
    def _n_features_out(self):
        return self.n_components

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the CEBM on X for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; dense, finite.
        y : Ignored

        Returns
        -------
        self : CEBMEncoder

        Raises
        ------
        TrainingDivergedError
            If the energies or weights become non-finite or explode; the estimator is
            left as it was.
        """
        reset = not (self.warm_start and hasattr(self, "net_"))
        return self._fit(X, reset=reset, epochs=self.max_iter)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one epoch over X, building the model on the first call.

        The scaling into the sampler's box is learned from the first call's X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self : CEBMEncoder
        """
        first_pass = not hasattr(self, "net_")
        return self._fit(X, reset=first_pass, epochs=1)

    def transform(self, X, return_std=False):
        """Posterior mean of z for each sample (closed form, Eq. 23).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the posterior standard deviations.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means, in X's float dtype.
        Z_std : ndarray of shape (n_samples, n_components)
            Posterior stds; only when ``return_std`` is True.
        """
        mean, std = self._inference(self._module().posterior_mean_std, X)
        return (mean, std) if return_std else mean

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
