"""IGEBMEncoder: the paper's IGEBM baseline, an EBM with a scalar energy, as a transformer."""

from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context

from ._base import BaseCEBM
from ._core.igebm import ScalarEnergyModel

__all__ = ["IGEBMEncoder"]


class IGEBMEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseCEBM):
    """Features of the last hidden layer of an energy-based model with a scalar energy.

    The IGEBM baseline of the CEBM paper (Du & Mordatch, 2019): the CEBM's network and its
    persistent contrastive divergence trainer (SGLD with a replay buffer), but the network's
    last layer, of width ``n_components``, is a hidden layer ``h(x) = silu(f(x))`` followed
    by a linear head to one scalar energy ``E(x) = w^T h(x) + b``. There is no latent
    variable; :meth:`transform` returns ``h(x)`` (the paper's footnote 4).

    Parameters
    ----------
    n_components : int, default=128
        Width of the last hidden layer, the dimension of the features.
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module, default='auto'
        The network ``f`` below the head: 'cnn' is the paper's conv net (needs
        ``image_shape``), 'mlp' a SiLU network with ``hidden_layer_sizes``, 'auto' picks
        'cnn' when ``image_shape`` is given. A module must map a batch shaped
        ``(n, *input_shape)`` to ``(n, n_components)``; it is copied at fit.
    image_shape : tuple of int, default=None
        ``(channels, height, width)`` of each row of X, for the conv net. Images are scaled
        with one range for all pixels; otherwise each feature gets its own.
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden widths of the MLP below the last hidden layer.
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
    chain_init : {'uniform', 'gaussian'}, default='uniform'
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021), which puts short chains near the data from their first step.
        Uniform by default: for this scalar energy the Gaussian start gave worse features
        on the digits (few-label accuracy 33 / 56 / 72% against 39 / 67 / 85%) and an
        energy that told uniform noise from digits far worse (AUROC 0.75 against 1.00;
        ``benchmarks/results/chain_init_digits.md``).
    energy_l2 : float, default=5e-3
        Weight of the penalty on squared energies.
    data_noise : float, default=0.03
        Std of the Gaussian noise added to training data, in the scaled units.
    device : {'auto', 'cpu', 'cuda', 'cuda:N'} or torch.device, default='auto'
        Where to train; 'auto' takes CUDA when it is available.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks.
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
        The trained network; ``net_.module_`` is a ``ScalarEnergyModel``.
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
    CEBMEncoder : The same network read as sufficient statistics of a conjugate latent.
    VAEEncoder : A variational autoencoder with the same encoder.

    Notes
    -----
    :meth:`score_samples` is ``-E(x)``, the log-density up to the unknown ``log Z``;
    :meth:`score_gradient_norm` and :meth:`sample` are as for :class:`CEBMEncoder`.

    References
    ----------
    Y. Du, I. Mordatch. Implicit Generation and Modeling with Energy-Based Models. NeurIPS
    2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import IGEBMEncoder
    >>> X, _ = load_digits(return_X_y=True)
    >>> encoder = IGEBMEncoder(n_components=8, max_iter=1, sgld_steps=5, random_state=0)
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
        chain_init="uniform",
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

    def _encoder_width(self):
        return self.n_components

    def _build_energy_model(self, encoder, input_shape, generator):
        return ScalarEnergyModel(encoder, self.n_components, input_shape, generator)

    @property
    def _n_features_out(self):
        return self.n_components

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the IGEBM on X for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; dense, finite.
        y : Ignored

        Returns
        -------
        self : IGEBMEncoder

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

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self : IGEBMEncoder
        """
        first_pass = not hasattr(self, "net_")
        return self._fit(X, reset=first_pass, epochs=1)

    def transform(self, X):
        """Activations ``silu(f(x))`` of the last hidden layer, the input of the energy head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            In X's float dtype.
        """
        return self._inference(self._module().features, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
