"""The BiGAN baseline: an encoder, a generator and a discriminator of pairs ``(x, z)``.

A bidirectional GAN (Donahue, Krähenbühl & Darrell, 2017; Dumoulin et al., 2017's ALI)
learns a generator ``G: z -> x`` from the prior ``p(z) = N(0, I)`` and an encoder
``E: x -> z`` together, by a discriminator ``D(x, z)`` that tells the pairs
``(x, E(x))`` of the data from the pairs ``(G(z), z)`` of the prior. At the game's
equilibrium the two joint distributions agree, and ``E`` inverts ``G``. There is no
likelihood: the model gives codes and samples, not a density.

Here the encoder is stochastic, ``E(x) = mu(x) + s(x) * eps`` with the diagonal Gaussian of
:func:`~sklearn_cebm._core.encoders.gaussian_code` (as in the CEBM paper's own BiGAN), so
that the model has a posterior ``q(z | x)`` whose aggregate the paper's Table 3 measures.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from .encoders import encode_flat_batch, gaussian_code, silu_layers

__all__ = ["AdversarialLosses", "BidirectionalGAN", "JointDiscriminator"]


class JointDiscriminator(nn.Module):
    """``D(x, z)``: a feature network on ``x``, then an MLP on the features and ``z``.

    The logit of "the pair came from the data": features ``h(x)`` of width ``F`` (SiLU
    after the feature network's last layer), concatenated with ``z``, then one hidden SiLU
    layer and a linear output.

    Parameters
    ----------
    features : torch.nn.Module
        Maps a batch shaped ``(n, *input_shape)`` to ``(n, n_features_out)``.
    input_shape : tuple of int
        Shape ``features`` expects for one example; inputs arrive flat.
    n_features_out : int
        Width F of the features.
    n_latent : int
        Dimension K of ``z``.
    hidden_width : int
        Width of the joint MLP's hidden layer.
    """

    def __init__(self, features, input_shape, n_features_out, n_latent, hidden_width):
        super().__init__()
        self.features = features
        self.input_shape = tuple(input_shape)
        self.n_features_out = int(n_features_out)
        self.joint = nn.Sequential(
            *silu_layers(self.n_features_out + int(n_latent), (int(hidden_width),), 1)
        )

    def forward(self, x, z):
        """Logits ``(n,)`` for flat inputs ``x`` ``(n, D)`` paired with codes ``z`` ``(n, K)``."""
        h = encode_flat_batch(
            self.features, x, self.input_shape, self.n_features_out, "features of x"
        )
        return self.joint(torch.cat([functional.silu(h), z], dim=1)).squeeze(-1)


@dataclass(frozen=True)
class AdversarialLosses:
    """One batch's losses of the BiGAN game and what they say about it.

    With ``r = D(x, E(x))`` on the data's pairs and ``f = D(G(z), z)`` on the prior's,

    - ``discriminator``: ``mean softplus(-r) + mean softplus(f)``, the discriminator's
      cross-entropy, ``-V(D, E, G)`` of the minimax game (``2 log 2`` at the equilibrium);
    - ``generator``: ``mean softplus(r) + mean softplus(-f)``, the encoder's and the
      generator's non-saturating loss (the labels swapped, Goodfellow et al., 2014);
    - ``discriminator_accuracy``: the fraction of the ``2 n`` pairs ``D`` classifies right
      (0.5 at the equilibrium, 1 when it wins outright);
    - ``sample_spread``: the spread of the generated batch over that of the data batch
      (the mean over features of the std over rows; 1 when they match, near 0 when the
      generator puts every draw on one point);
    - ``largest_logit``: the largest ``|r|`` or ``|f|``, which runs away when training
      diverges.
    """

    discriminator: torch.Tensor
    generator: torch.Tensor
    discriminator_accuracy: torch.Tensor
    sample_spread: torch.Tensor
    largest_logit: torch.Tensor


class BidirectionalGAN(nn.Module):
    """Encoder, generator and joint discriminator of a BiGAN, on flat inputs in ``[-1, 1]``.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps a batch shaped ``(n, *input_shape)`` to ``(n, 2 * K)``: the mean and (before a
        softplus) the std of ``q(z | x)``.
    generator : torch.nn.Module
        Maps codes ``(m, K)`` to flat outputs ``(m, D)``; a ``tanh`` maps them into the box
        ``[-1, 1]`` the data are scaled to.
    discriminator : JointDiscriminator
    input_shape : tuple of int
        Shape the encoder expects for one example; inputs arrive flat.
    n_latent : int
        Dimension K.
    """

    def __init__(self, encoder, generator, discriminator, input_shape, n_latent):
        super().__init__()
        self.encoder = encoder
        self.generator = generator
        self.discriminator = discriminator
        self.input_shape = tuple(input_shape)
        self.n_latent = int(n_latent)

    def posterior_mean_std(self, x):
        """Mean and std of the encoder's ``q(z | x)``, each ``(n, K)``."""
        return gaussian_code(self.encoder, x, self.input_shape, self.n_latent)

    def generate(self, z):
        """``G(z)``: flat outputs ``(m, D)`` in ``[-1, 1]`` for codes ``(m, K)``."""
        return torch.tanh(self.generator(z))

    def player_parameters(self):
        """The parameters of the discriminator, and those of the encoder and generator."""
        discriminator = list(self.discriminator.parameters())
        others = [*self.encoder.parameters(), *self.generator.parameters()]
        return discriminator, others

    def losses(self, x, encoder_noise, prior_z):
        """The batch's :class:`AdversarialLosses`, differentiable in every player.

        Parameters
        ----------
        x : torch.Tensor of shape (n, D)
            A batch of data, flat.
        encoder_noise : torch.Tensor of shape (n, K)
            Standard normal draws for the reparameterised ``E(x) = mu + s * eps``.
        prior_z : torch.Tensor of shape (m, K)
            Draws from the prior ``N(0, I)``.
        """
        mean, std = self.posterior_mean_std(x)
        encoded = mean + std * encoder_noise
        generated = self.generate(prior_z)
        real = self.discriminator(x, encoded)
        fake = self.discriminator(generated, prior_z)
        with torch.no_grad():
            right = torch.cat([real > 0, fake < 0]).float().mean()
            data_spread = x.std(dim=0, correction=0).mean().clamp_min(1e-12)
            spread = generated.std(dim=0, correction=0).mean() / data_spread
            largest = torch.cat([real, fake]).abs().max()
        return AdversarialLosses(
            discriminator=functional.softplus(-real).mean() + functional.softplus(fake).mean(),
            generator=functional.softplus(real).mean() + functional.softplus(-fake).mean(),
            discriminator_accuracy=right,
            sample_spread=spread,
            largest_logit=largest,
        )

    def forward(self, x):
        """The codes: the posterior means ``(n, K)`` of a flat batch."""
        return self.posterior_mean_std(x)[0]
