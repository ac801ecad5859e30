"""VAEEncoder: the paper's VAE baseline, with the CEBM's encoder, as a transformer.

:class:`BaseVAE` holds what the VAEs share (the decoder, the ELBO's net); each VAE
supplies its prior: the standard normal here, a learned mixture in
:class:`~sklearn_cebm.GMMVAEClusterer`.
"""

from abc import abstractmethod
from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from .._core.vae import StandardNormalPrior, VariationalAutoencoder, build_decoder
from .._estimators.base import BaseNeuralEstimator
from .._estimators.docstrings import fill_docstring
from .._estimators.inference import DensityScoresMixin
from .._estimators.network import uses_conv_net
from .._estimators.scaling import unit_range_log_volume
from .._estimators.transformers import PosteriorTransformerMixin
from .._training.vae_nets import ELBONet

__all__ = ["BaseVAE", "VAEEncoder"]

# Draws of z behind score_samples: the same draws for every row, so each row's ELBO
# estimate is a fixed function of that row alone.
_SCORE_DRAWS = 16


class BaseVAE(DensityScoresMixin, BaseNeuralEstimator):
    """Base class of the VAEs: the encoder's posterior, a mirrored decoder; not for direct use.

    Subclasses supply :meth:`_build_prior`. The module is a
    :class:`~sklearn_cebm._core.vae.VariationalAutoencoder` whose energy is the negative ELBO,
    trained by an :class:`~sklearn_cebm._training.vae_nets.ELBONet`.
    """

    _parameter_constraints: dict = {
        **BaseNeuralEstimator._parameter_constraints,
        "n_elbo_draws": [Interval(Integral, 1, None, closed="left")],
    }

    _continuable_params = BaseNeuralEstimator._continuable_params | {"n_elbo_draws"}

    def _net_settings(self):
        return dict(super()._net_settings(), n_draws=self.n_elbo_draws)

    @abstractmethod
    def _build_prior(self, generator):
        """The prior module over ``n_components`` dimensions, initialised from ``generator``."""

    def _build_module(self, encoder, input_shape, generator):
        decoder = build_decoder(
            self.image_shape if uses_conv_net(self.encoder, self.image_shape) else None,
            self.hidden_layer_sizes,
            int(np.prod(input_shape)),
            self.n_components,
            generator,
        )
        score_noise = torch.randn((_SCORE_DRAWS, self.n_components), generator=generator)
        return VariationalAutoencoder(
            encoder,
            decoder,
            input_shape,
            self.n_components,
            score_noise=score_noise,
            prior=self._build_prior(generator),
        )

    def _build_net(self, module, skorch_params, seed):
        return ELBONet(module, **skorch_params, n_draws=self.n_elbo_draws, seed=seed).initialize()

    def score(self, X, y=None):
        """Mean evidence lower bound (ELBO) of ``X``, per sample, in X's units.

        A lower bound on the mean log-likelihood, the quantity the energy-based estimators'
        ``score`` estimates, so that the two compare (a VAE that scores higher is better
        by at least the difference). It is the mean of :meth:`score_samples` (the ELBO in
        the scaled units, over the same 16 fixed draws) minus ``sum(log input_scale_)``,
        the log-volume of the map from the scaled box to X's units. The model has a
        density everywhere, so rows outside the training data's box are scored as they
        are.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, in the units of the training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        float
            The mean ELBO. Cost: one forward pass of the encoder and 16 of the decoder
            per row.
        """
        negative_elbo = self._inference(self._module(), X)
        volume = unit_range_log_volume(self.input_scale_)
        return float(np.mean(-negative_elbo.astype(np.float64)) - volume)


@fill_docstring(
    """
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
        As for :class:`CEBMEncoder`: a module must map a batch shaped
        ``(n, *input_shape)`` to ``(n, 2 * n_components)``, the posterior means and (before
        a softplus) stds. The decoder is convolutional when the encoder is 'cnn', or
        'auto' or a module with ``image_shape`` given; an MLP otherwise.
    image_shape : tuple of int
        ``(channels, height, width)`` of each row of X, for the conv nets.
    hidden_layer_sizes : tuple of int
        Hidden widths of the MLP encoder (and, reversed, of the MLP decoder).
    batch_size : int
        Data examples per update.
    learning_rate : float
        Adam's step size.
    n_elbo_draws : int
        Draws of ``z`` per example and step in the training ELBO.
    verbose : int
        When positive, show one progress bar over the whole training call on stderr
        (epochs x batches, with time left) and print skorch's per-epoch table on stdout
        (loss, ELBO, seconds), coloured only when stdout is a terminal.
    random_state : int, RandomState instance or None
        Seeds the initial weights, the data order and the reparameterisation noise.
    """
)
class VAEEncoder(PosteriorTransformerMixin, BaseVAE):
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
    {parameters}

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is a ``VariationalAutoencoder``.
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss`` (the negative ELBO) and ``elbo``, in the scaled units.
    {common_attributes}

    See Also
    --------
    CEBMEncoder : A conjugate EBM with the same encoder.
    IGEBMEncoder : An EBM with a scalar energy on the same network.

    Notes
    -----
    :meth:`score_samples` is the ELBO, a lower bound on ``log p(x)`` in the scaled units
    (``log p`` in X's units is lower by ``sum(log input_scale_)``, the same for every row;
    :meth:`score` is its mean in X's units, comparable with the energy-based estimators'
    ``score``).
    Its reconstruction term is averaged over 16 fixed draws of the noise, shared by all rows,
    so scores are deterministic and each depends on its own row alone. The VAE's energy is
    the negative of that ELBO, and :meth:`score_gradient_norm` is the norm of its input
    gradient, the score the paper reports for its VAE in Table 1.

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

    def _build_prior(self, generator):
        return StandardNormalPrior(self.n_components)

    def sample(self, n_samples=1, *, random_state=None):
        """Decode draws from the prior: the means of ``p(x | z)`` for ``z ~ N(0, I)``.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        ndarray of shape (n_samples, `n_features_in_`)
            Decoded means in the units of the training data (without observation noise).
        """
        return self._sample(lambda n, seed: self.net_.sample(n, seed), n_samples, random_state)
