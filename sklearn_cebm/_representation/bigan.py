"""BIGANEncoder: the paper's BiGAN baseline, with the CEBM's encoder, as a transformer."""

import numpy as np
import torch

from .._core.bigan import BidirectionalGAN, JointDiscriminator
from .._core.encoders import initialize_layers
from .._core.vae import build_decoder
from .._estimators.base import BaseNeuralEstimator
from .._estimators.docstrings import fill_docstring
from .._estimators.network import _build_encoder, uses_conv_net
from .._estimators.transformers import PosteriorTransformerMixin
from .._training.adversarial_net import AdversarialNet

__all__ = ["BIGANEncoder"]

# Adam's moment decays for adversarial training (Radford et al., 2016; Donahue et al.,
# 2017): a first moment that forgets faster follows the moving target the other player is.
ADVERSARIAL_ADAM_BETAS = (0.5, 0.999)
# The joint discriminator's hidden width is twice the code's, at least this.
MIN_JOINT_WIDTH = 64


@fill_docstring(
    """
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
        As for :class:`CEBMEncoder`: a module must map a batch shaped
        ``(n, *input_shape)`` to ``(n, 2 * n_components)``, the means and (before a
        softplus) the stds of the encoder's Gaussian. The generator is convolutional when
        the encoder is 'cnn', or 'auto' or a module with ``image_shape`` given; an MLP
        otherwise. The discriminator's network on x is the package's own net of the same
        kind ('cnn' or 'mlp'), with its own weights, also when the encoder is a module.
    image_shape : tuple of int
        ``(channels, height, width)`` of each row of X, for the conv nets.
    hidden_layer_sizes : tuple of int
        Hidden widths of the MLP encoder and of the discriminator's network on x (and,
        reversed, of the MLP generator).
    batch_size : int
        Data examples (and as many prior draws) per update.
    learning_rate : float
        Adam's step size, for every player (Adam's betas are (0.5, 0.999), as is usual
        for adversarial training).
    verbose : int
        When positive, show one progress bar over the whole training call on stderr
        (epochs x batches, with time left) and print skorch's per-epoch table on stdout
        (the losses, the discriminator's accuracy, the samples' spread, seconds), coloured
        only when stdout is a terminal.
    random_state : int, RandomState instance or None
        Seeds the initial weights, the data order, the encoder's noise and the prior draws.
    """,
    scores=False,
)
class BIGANEncoder(PosteriorTransformerMixin, BaseNeuralEstimator):
    """Codes of a bidirectional GAN (BiGAN) with the CEBM's encoder.

    The BiGAN baseline of the CEBM paper (Donahue, Krähenbühl & Darrell, 2017): a generator
    ``G`` maps codes from the prior ``N(0, I)`` in R^K to inputs, an encoder ``E`` maps
    inputs to codes, and a discriminator ``D(x, z)`` learns to tell the data's pairs
    ``(x, E(x))`` from the prior's pairs ``(G(z), z)``; ``E`` and ``G`` learn to fool it.
    At the game's equilibrium the two joint distributions agree and ``E`` inverts ``G``.
    The encoder is the same network as :class:`CEBMEncoder`'s (conv net for images, MLP
    otherwise), stochastic as in the paper's implementation: ``E(x)`` draws from a diagonal
    Gaussian ``q(z | x)``, whose mean is the code :meth:`transform` returns. The
    generator mirrors the encoder (as :class:`VAEEncoder`'s decoder) with a ``tanh`` into
    the box ``[-1, 1]`` the data are scaled to; the discriminator is a network of the
    encoder's kind on x followed by an MLP on its features and z. The three are trained
    together by Adam, each on its own loss (the discriminator's cross-entropy, the
    non-saturating loss of the other two).

    A BiGAN defines no likelihood, so unlike the package's other estimators it has no
    ``score_samples`` nor ``score``: it gives codes and samples.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is a ``BidirectionalGAN``.
    history_ : skorch.callbacks.History
        Per epoch: ``train_loss`` (the discriminator's cross-entropy, ``2 log 2 = 1.386``
        at the equilibrium), ``generator_loss`` (the encoder's and generator's),
        ``discriminator_accuracy`` (0.5 at the equilibrium), ``sample_spread`` (the spread
        of generated batches over the data's, 1 when they match) and ``collapse``: an empty
        string, or what collapsed (see Notes).
    {common_attributes}

    See Also
    --------
    CEBMEncoder : A conjugate EBM with the same encoder.
    VAEEncoder : A VAE with the same encoder, whose decoder the generator mirrors.

    Notes
    -----
    Adversarial training is the least stable of the package's objectives. Each epoch is
    judged from its means: an epoch whose discriminator classified at least 99% of the
    pairs right has won the game (the others then learn little), and one whose generated
    batches spread less than a tenth of the data's, after an epoch that spread them wider,
    has collapsed onto a few samples; a training call whose generator never spread them
    that wide says so at its end. The verdict is recorded in ``history_`` (``collapse``)
    and the first in a training call issues a :class:`GameCollapseWarning`. Non-finite
    losses or weights raise :class:`TrainingDivergedError` and leave the estimator as it
    was.

    References
    ----------
    J. Donahue, P. Krähenbühl, T. Darrell. Adversarial Feature Learning. ICLR 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import BIGANEncoder
    >>> X, _ = load_digits(return_X_y=True)
    >>> bigan = BIGANEncoder(n_components=8, max_iter=2, random_state=0)
    >>> bigan.fit_transform(X[:200]).shape
    (200, 8)
    >>> bigan.sample(3, random_state=0).shape
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
        learning_rate=2e-4,
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
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    def _build_module(self, encoder, input_shape, generator):
        n_features = int(np.prod(input_shape))
        conv = uses_conv_net(self.encoder, self.image_shape)
        decoder = build_decoder(
            self.image_shape if conv else None,
            self.hidden_layer_sizes,
            n_features,
            self.n_components,
            generator,
        )
        features, _ = _build_encoder(
            "cnn" if conv else "mlp",
            self.image_shape,
            self.hidden_layer_sizes,
            n_features,
            2 * self.n_components,
        )
        # Built on the meta device, as the encoders are, so that building draws nothing
        # from torch's global generator; initialize_layers fills every weight.
        with torch.device("meta"):
            discriminator = JointDiscriminator(
                features,
                input_shape,
                2 * self.n_components,
                self.n_components,
                hidden_width=max(2 * self.n_components, MIN_JOINT_WIDTH),
            )
        discriminator = discriminator.to_empty(device="cpu")
        initialize_layers(discriminator, generator)
        return BidirectionalGAN(encoder, decoder, discriminator, input_shape, self.n_components)

    def _build_net(self, module, skorch_params, seed):
        return AdversarialNet(
            module, **skorch_params, optimizer__betas=ADVERSARIAL_ADAM_BETAS, seed=seed
        ).initialize()

    def sample(self, n_samples=1, *, random_state=None):
        """Generate: ``G(z)`` for draws ``z ~ N(0, I)``.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        ndarray of shape (n_samples, `n_features_in_`)
            Generated samples in the units of the training data, inside the box
            ``[input_min_, input_max_]``.
        """
        return self._sample(lambda n, seed: self.net_.sample(n, seed), n_samples, random_state)
