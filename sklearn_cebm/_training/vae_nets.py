"""Maximising the evidence lower bound on skorch: the VAE's training layer.

Knows torch and skorch, not scikit-learn. :class:`~sklearn_cebm.VAEEncoder` and
:class:`~sklearn_cebm.GMMVAEClusterer` build an :class:`ELBONet` around a
:class:`~sklearn_cebm._core.vae.VariationalAutoencoder`; the clusterer adds
:class:`MixturePriorSeeding`, which takes the function that places the components from
its caller.
"""

import numpy as np
import torch
from skorch.dataset import unpack_data

from .._core.model import INFERENCE_BATCH_SIZE, map_batches
from .callbacks import PlacementAfterEpoch
from .nets import SeededNet

__all__ = ["ELBONet", "MeanNegativeELBO", "MixturePriorSeeding"]


class MeanNegativeELBO(torch.nn.Module):
    """The loss: the batch mean of the per-row negative ELBO (the target is ignored)."""

    def forward(self, negative_elbo, target=None):
        return negative_elbo.mean()


class ELBONet(SeededNet):
    """A skorch net whose training step is one stochastic ELBO ascent step.

    Each step draws ``n_draws`` reparameterisation noises per row from the net's own
    generator (on the CPU, then moved, so the run is reproducible on any device), evaluates
    the module's ``elbo`` and descends the criterion, the negative mean
    (:class:`MeanNegativeELBO` by default). The mean ELBO is recorded per batch and
    averaged per epoch in ``history`` as ``elbo``.

    Parameters
    ----------
    n_draws : int
        Monte Carlo draws of ``z`` per row and step.
    **kwargs
        Passed to :class:`~sklearn_cebm._training.nets.SeededNet` (``seed``, of the generator
        of the noise) and :class:`skorch.NeuralNet`.
    """

    def __init__(self, module, *args, criterion=MeanNegativeELBO, n_draws, **kwargs):
        super().__init__(module, criterion, *args, **kwargs)
        self.n_draws = n_draws

    recorded = ("elbo",)

    def get_loss(self, y_pred, y_true=None, X=None, training=False):
        """The criterion of the per-row negative ELBO; there is no target."""
        return self.criterion_(y_pred)

    def train_step_single(self, batch, **fit_params):
        """One step's loss and gradients; records the mean ELBO."""
        self._set_training(True)
        x, _ = unpack_data(batch)
        x = x.to(self.device, torch.float32)
        shape = (self.n_draws, x.shape[0], self.module_.n_latent)
        noise = torch.randn(shape, generator=self.random_generator_).to(self.device)
        negative_elbo = -self.module_.elbo(x, noise)
        if not torch.isfinite(negative_elbo).all():
            raise self.diverged("non-finite ELBO")
        loss = self.get_loss(negative_elbo, X=x, training=True)
        loss.backward()
        self.history.record_batch("elbo", -loss.item())
        return {"loss": loss, "y_pred": negative_elbo}

    def sample(self, n_samples, seed, **prior_options):
        """Decoded means of ``n_samples`` draws of z from the module's prior, on the CPU.

        The draws come from a CPU generator seeded with ``seed``, so they are the same on
        any device; ``prior_options`` go to the prior's ``sample`` (a mixture's
        ``component``).
        """
        self.module_.eval()
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z = self.module_.prior.sample(n_samples, generator, **prior_options)
        return map_batches(self.module_.decode, z, INFERENCE_BATCH_SIZE, torch.device(self.device))


class MixturePriorSeeding(PlacementAfterEpoch):
    """Place a mixture prior's components on the training data's codes, once, after warm-up.

    VaDE (Jiang et al., 2017) fits a Gaussian mixture to the codes of a pretrained
    autoencoder and starts its prior there. Here the prior starts as L copies of N(0, I),
    so the first ``after_epoch`` epochs train a plain VAE; at the end of that epoch the
    posterior means of the training data are handed to ``choose_components``, and the
    prior's components are set to what it returns, the stds widened by the posterior's
    mean variance. It acts once in a net's life.

    Parameters
    ----------
    choose_components : callable
        ``choose_components(codes, n_clusters) -> (means, stds, weights)`` given the float64
        posterior means ``(n, K)``: means ``(L, K)``, and stds ``(L, K)`` and weights
        ``(L,)`` or None to keep the prior's. Must be picklable, as the net is.
    after_epoch : int
        The epoch after which to seed, counted from the net's first. With fewer training
        rows than components the prior is left as it is.
    """

    def __init__(self, choose_components, after_epoch):
        super().__init__(after_epoch)
        self.choose_components = choose_components

    def place(self, net, X, y=None):
        """Set the prior's components from the posterior means of X."""
        module = net.module_
        mean, std = map_batches(
            module.posterior_mean_std, X, INFERENCE_BATCH_SIZE, torch.device(net.device)
        )
        prior = module.prior
        if len(mean) < len(prior.means):
            return  # too few rows to place every component on one
        if not torch.isfinite(mean).all():
            raise net.diverged("non-finite posterior at the mixture's placement")
        means, stds, weights = self.choose_components(
            mean.numpy().astype(np.float64), len(prior.means)
        )
        if stds is not None:
            # Fitted to the posterior means alone, a component is narrower than the codes
            # it stands for, q(z | x) spread around those means: widen its variance by
            # q's mean variance. Without this, a dimension the VAE leaves unused (every
            # mean near 0, every std near 1) gets tiny component stds, and its
            # E_q[(z - mu)**2] / sigma**2 swamps the dimensions in use.
            stds = np.sqrt(np.asarray(stds) ** 2 + (std**2).mean(dim=0).numpy())
        prior.set_components(means, stds, weights)
