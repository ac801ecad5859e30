"""VAEEncoder: the paper's VAE baseline, with the CEBM's encoder, as a transformer."""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from ._base import BaseCEBM
from ._core.model import map_batches
from ._core.vae import VariationalAutoencoder, build_decoder
from ._scaling import from_unit_range
from ._vae_training import ELBONet, MeanNegativeELBO

__all__ = ["VAEEncoder"]

# Draws of z behind score_samples: the same draws for every row, so each row's ELBO
# estimate is a fixed function of that row alone.
_SCORE_DRAWS = 16

_PCD_PARAMETERS = (
    "objective",
    "dsm_noise",
    "sgld_steps",
    "sgld_step_size",
    "sgld_noise",
    "buffer_size",
    "buffer_reinit_fraction",
    "chain_init",
    "energy_l2",
    "data_noise",
)


class VAEEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseCEBM):
    """Posterior means of a variational autoencoder with the CEBM's encoder.

    The VAE baseline of the CEBM paper (Kingma & Welling, 2014): a standard normal prior
    over ``z`` in R^K, a diagonal Gaussian posterior ``q(z | x)`` computed by the same
    network as :class:`CEBMEncoder` (conv net for images, MLP otherwise), a mirrored decoder
    (transposed convolutions, or the MLP's widths reversed) and a Gaussian likelihood
    ``p(x | z) = N(decoder(z), sigma**2 I)`` with one learned ``sigma``. The data are scaled
    into ``[-1, 1]`` as for the CEBMs (one range for all pixels of images, one per feature
    otherwise), and the model is trained by maximising the ELBO with Adam.

    Parameters
    ----------
    n_components : int, default=128
        Latent dimension K.
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module, default='auto'
        As for :class:`CEBMEncoder`: a module must map a batch shaped ``(n, *input_shape)``
        to ``(n, 2 * n_components)``, the posterior means and (before a softplus) stds. The
        decoder is convolutional when ``image_shape`` is given and ``encoder`` is not
        'mlp', else an MLP.
    image_shape : tuple of int, default=None
        ``(channels, height, width)`` of each row of X, for the conv nets.
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden widths of the MLP encoder (and, reversed, of the MLP decoder).
    max_iter : int, default=30
        Training epochs.
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam's step size.
    n_elbo_draws : int, default=1
        Draws of ``z`` per example and step in the training ELBO.
    device : {'auto', 'cpu', 'cuda', 'cuda:N'} or torch.device, default='auto'
    callbacks : list of skorch callbacks, default=None
    verbose : int, default=0
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the data order and the reparameterisation noise.
    warm_start : bool, default=False
        Continue training the previous fit's network on ``fit``.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is a ``VariationalAutoencoder``.
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss`` (the negative ELBO) and ``elbo``, in the scaled units.
    n_iter_ : int
        Epochs trained in total.
    input_offset_, input_scale_ : ndarray of shape (`n_features_in_`,)
        The learned map ``(X - offset) / scale`` into ``[-1, 1]``.
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined when X has string feature names.

    See Also
    --------
    CEBMEncoder : A conjugate EBM with the same encoder.
    IGEBMEncoder : An EBM with a scalar energy on the same network.

    Notes
    -----
    :meth:`score_samples` is the ELBO, a lower bound on ``log p(x)`` in the scaled units
    (``log p`` in X's units is lower by ``sum(log input_scale_)``, the same for every row).
    Its reconstruction term is averaged over 16 fixed draws of the noise, shared by all rows,
    so scores are deterministic and each depends on its own row alone.

    References
    ----------
    D. P. Kingma, M. Welling. Auto-Encoding Variational Bayes. ICLR 2014.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import VAEEncoder
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAEEncoder(n_components=8, max_iter=2, random_state=0)
    >>> vae.fit_transform(X[:200]).shape
    (200, 8)
    >>> vae.sample(3, random_state=0).shape
    (3, 64)
    """

    _parameter_constraints: dict = {
        **{
            name: constraint
            for name, constraint in BaseCEBM._parameter_constraints.items()
            if name not in _PCD_PARAMETERS
        },
        "n_elbo_draws": [Interval(Integral, 1, None, closed="left")],
    }

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
        n_elbo_draws=1,
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
        self.n_elbo_draws = n_elbo_draws
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    def _build_energy_model(self, encoder, input_shape, generator):
        conv = self.image_shape is not None and not (
            isinstance(self.encoder, str) and self.encoder == "mlp"
        )
        decoder = build_decoder(
            self.image_shape if conv else None,
            self.hidden_layer_sizes,
            int(np.prod(input_shape)),
            self.n_components,
            generator,
        )
        score_noise = torch.randn((_SCORE_DRAWS, self.n_components), generator=generator)
        return VariationalAutoencoder(
            encoder, decoder, input_shape, self.n_components, score_noise=score_noise
        )

    def _build_net(self, model, device, seeds):
        net = ELBONet(
            module=model,
            criterion=MeanNegativeELBO,
            **self._skorch_params(device, seeds),
            n_draws=self.n_elbo_draws,
            seed=int(seeds[2]),
        )
        return net.initialize()

    @property
    def _n_features_out(self):
        return self.n_components

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the VAE on X for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; dense, finite.
        y : Ignored

        Returns
        -------
        self : VAEEncoder

        Raises
        ------
        TrainingDivergedError
            If the ELBO becomes non-finite; the estimator is left as it was.
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
        self : VAEEncoder
        """
        first_pass = not hasattr(self, "net_")
        return self._fit(X, reset=first_pass, epochs=1)

    def transform(self, X, return_std=False):
        """Mean of the posterior ``q(z | x)`` for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the posterior standard deviations.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
        Z_std : ndarray of shape (n_samples, n_components)
            Only when ``return_std`` is True.
        """
        mean, std = self._inference(self._module().posterior, X)
        return (mean, std) if return_std else mean

    def score_samples(self, X):
        """The ELBO of each sample, a lower bound on ``log p(x)`` (see Notes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return super().score_samples(X)

    def score_gradient_norm(self, X):
        """Norm of the input gradient of the ELBO (the stand-in for ``log p(x)``), per sample.

        The score of Grathwohl et al. (2019) the paper reports for its VAE in Table 1,
        in the units of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return super().score_gradient_norm(X)

    def sample(self, n_samples=1, *, random_state=None):
        """Decode draws from the prior: the means of ``p(x | z)`` for ``z ~ N(0, I)``.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        ndarray of shape (n_samples, `n_features_in_`)
            Decoded means in the units of the training data (without observation noise).
        """
        if int(n_samples) < 1:
            raise ValueError(f"sample needs n_samples >= 1; got {n_samples}.")
        module = self._module()
        seed_source = self.random_state if random_state is None else random_state
        seed = check_random_state(seed_source).randint(np.iinfo(np.int32).max)
        generator = torch.Generator().manual_seed(int(seed))
        z = torch.randn((int(n_samples), self.n_components), generator=generator)
        device = next(module.parameters()).device
        means = map_batches(module.decode, z, 1024, device)
        return from_unit_range(means.numpy(), self.input_offset_, self.input_scale_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
