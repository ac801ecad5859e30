"""Maximising the evidence lower bound on skorch: the VAE's training layer.

Knows torch and skorch, not scikit-learn. :class:`~sklearn_cebm.VAEEncoder` builds an
:class:`ELBONet` around a :class:`~sklearn_cebm._core.vae.VariationalAutoencoder`.
"""

import torch
from skorch.dataset import unpack_data

from ._core.model import INFERENCE_BATCH_SIZE, map_batches
from ._training import SeededNet

__all__ = ["ELBONet", "MeanNegativeELBO"]


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
        Passed to :class:`~sklearn_cebm._training.SeededNet` (``seed``, of the generator
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

    def sample(self, n_samples, seed):
        """Decoded means of ``n_samples`` draws ``z ~ N(0, I)`` of the prior, on the CPU.

        The draws come from a CPU generator seeded with ``seed``, so they are the same on
        any device.
        """
        self.module_.eval()
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn((n_samples, self.module_.n_latent), generator=generator)
        return map_batches(self.module_.decode, z, INFERENCE_BATCH_SIZE, torch.device(self.device))
