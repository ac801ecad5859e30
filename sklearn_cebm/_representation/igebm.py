"""IGEBMEncoder: the paper's IGEBM baseline, an EBM with a scalar energy, as a transformer."""

from .._core.igebm import ScalarEnergyModel
from .._estimators.distributed import ACCELERATOR_DOC, DataParallelMixin
from .._estimators.docstrings import fill_docstring
from .._estimators.energy_base import BaseEnergyEstimator
from .._estimators.transformers import CodesTransformerMixin

__all__ = ["IGEBMEncoder"]


@fill_docstring(
    """
    n_components : int
        Width of the last hidden layer, the dimension of the features.
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
        The network ``f`` below the head: 'cnn' is the paper's conv net (needs
        ``image_shape``), 'mlp' a SiLU network with ``hidden_layer_sizes``, 'auto' picks
        'cnn' when ``image_shape`` is given. A module must map a batch shaped
        ``(n, *input_shape)`` to ``(n, n_components)``; it is copied at fit.
    hidden_layer_sizes : tuple of int
        Hidden widths of the MLP below the last hidden layer.
    chain_init : {'uniform', 'gaussian'}
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021). Uniform by default: for this scalar energy the Gaussian start gave
        worse features on the digits (few-label accuracy 33 / 56 / 72% against 39 / 67 /
        85%) and an energy that told uniform noise from digits far worse (AUROC 0.75
        against 1.00; ``benchmarks/results/chain_init_digits.md``).
    """
    + ACCELERATOR_DOC
)
class IGEBMEncoder(CodesTransformerMixin, DataParallelMixin, BaseEnergyEstimator):
    """Features of the last hidden layer of an energy-based model with a scalar energy.

    The IGEBM baseline of the CEBM paper (Du & Mordatch, 2019): the CEBM's network and its
    persistent contrastive divergence trainer (SGLD with a replay buffer), but the network's
    last layer, of width ``n_components``, is a hidden layer ``h(x) = silu(f(x))`` followed
    by a linear head to one scalar energy ``E(x) = w^T h(x) + b``. There is no latent
    variable; :meth:`transform` returns ``h(x)`` (the paper's footnote 4).

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is a ``ScalarEnergyModel``.
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss``, ``energy_data``, ``energy_model``, ``energy_gap`` and
        ``chain_displacement``; with ``objective='dsm'``, ``train_loss`` and
        ``energy_data`` only.
    log_partition_, log_partition_std_ : float
        ``log Z`` in X's units and its standard error, set by
        :meth:`estimate_log_partition` (not by ``fit``, which removes them):
        ``score_samples(X) - log_partition_`` is the normalised log-density, and
        :meth:`score` uses it.
    {common_attributes}

    See Also
    --------
    CEBMEncoder : The same network read as sufficient statistics of a conjugate latent.
    VAEEncoder : A variational autoencoder with the same encoder.

    Notes
    -----
    :meth:`score_samples` is ``-E(x)``, the log-density up to the unknown ``log Z``;
    :meth:`score`, the mean log-likelihood with ``log Z`` estimated by annealed importance
    sampling, :meth:`score_gradient_norm` and :meth:`sample` are as for
    :class:`CEBMEncoder`.

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

    _parameter_constraints: dict = {
        **BaseEnergyEstimator._parameter_constraints,
        **DataParallelMixin._accelerator_constraints,
    }
    _continuable_params = BaseEnergyEstimator._continuable_params | {"accelerator"}

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
        accelerator=None,
        precision="auto",
        ema_decay=None,
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
        self.accelerator = accelerator
        self.precision = precision
        self.ema_decay = ema_decay
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    def _encoder_width(self):
        return self.n_components

    def _build_module(self, encoder, input_shape, generator):
        return ScalarEnergyModel(encoder, self.n_components, input_shape, generator)

    def transform(self, X):
        """Activations ``silu(f(x))`` of the last hidden layer, the input of the energy head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples whose features to compute.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            In X's float dtype.
        """
        return self._inference(self._module().features, X)
