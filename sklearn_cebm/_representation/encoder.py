"""CEBMEncoder: the conjugate EBM with a spherical Gaussian bias as a transformer."""

from .._core.biases import SphericalGaussianBias
from .._estimators.distributed import ACCELERATOR_DOC, DataParallelMixin
from .._estimators.docstrings import fill_docstring
from .._estimators.energy_base import BaseCEBM
from .._estimators.transformers import PosteriorTransformerMixin

__all__ = ["CEBMEncoder"]


@fill_docstring(
    """
    chain_init : {'uniform', 'gaussian'}
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021), which puts short chains near the data from their first step. With
        the 5-step default it keeps the energy gap near 0 where uniform starts let it run
        away, and gives better codes (``benchmarks/results/time_to_accuracy``).
    """
    + ACCELERATOR_DOC
)
class CEBMEncoder(PosteriorTransformerMixin, DataParallelMixin, BaseCEBM):
    """Unsupervised representations from a conjugate energy-based model.

    A CEBM (Wu et al., 2021) pairs an encoder ``t_theta(x)`` of neural sufficient statistics
    with a spherical Gaussian bias over ``z`` in R^K. The joint energy
    ``E(x, z) = -<lambda + t(x), eta(z)> + B(lambda)`` with ``eta(z) = (z, z**2)`` makes the
    posterior ``p(z | x)`` an exact Gaussian and the marginal energy
    ``E(x) = sum_k [B(lambda_k) - B(lambda_k + t_k(x))]`` tractable up to ``log Z``. The
    model is trained by persistent contrastive divergence with SGLD and a replay buffer.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is the torch model.
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

    _parameter_constraints: dict = {
        **BaseCEBM._parameter_constraints,
        **DataParallelMixin._accelerator_constraints,
    }
    _continuable_params = BaseCEBM._continuable_params | {"accelerator"}

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
        accelerator=None,
        precision="auto",
        ema_decay=0.99,
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

    def _build_bias(self):
        return SphericalGaussianBias(self.n_components)
