"""Maximising the evidence lower bound on skorch: the VAE's training layer.

Knows torch and skorch, not scikit-learn. :class:`~sklearn_cebm.VAEEncoder` builds an
:class:`ELBONet` around a :class:`~sklearn_cebm._core.vae.VariationalAutoencoder`.
"""

import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog
from skorch.dataset import unpack_data

from ._training import TrainingDivergedError

__all__ = ["ELBONet", "MeanNegativeELBO"]


class MeanNegativeELBO(torch.nn.Module):
    """The loss: the batch mean of the per-row negative ELBO (the target is ignored)."""

    def forward(self, negative_elbo, target=None):
        return negative_elbo.mean()


class ELBONet(NeuralNet):
    """A skorch net whose training step is one stochastic ELBO ascent step.

    Each step draws ``n_draws`` reparameterisation noises per row from the net's own
    generator (on the CPU, then moved, so the run is reproducible on any device), evaluates
    the module's ``elbo`` and descends its negative mean. The mean ELBO is recorded per
    batch and averaged per epoch in ``history`` as ``elbo``.

    Parameters
    ----------
    n_draws : int
        Monte Carlo draws of ``z`` per row and step.
    seed : int
        Seed of the generator of the noise.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(self, *args, n_draws, seed, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_draws = n_draws
        self.seed = seed

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("elbo", PassthroughScoring(name="elbo", on_train=True)),
            ("print_log", PrintLog()),
        ]

    def initialize(self):
        """Initialise skorch's components and the random generator."""
        super().initialize()
        self.random_generator_ = torch.Generator().manual_seed(self.seed)
        return self

    def train_step_single(self, batch, **fit_params):
        """One step's loss and gradients; records the mean ELBO."""
        self._set_training(True)
        x, _ = unpack_data(batch)
        x = x.to(self.device, torch.float32)
        shape = (self.n_draws, x.shape[0], self.module_.n_latent)
        noise = torch.randn(shape, generator=self.random_generator_).to(self.device)
        negative_elbo = -self.module_.elbo(x, noise)
        if not torch.isfinite(negative_elbo).all():
            raise TrainingDivergedError(
                "VAE training diverged: non-finite ELBO. Lower learning_rate or scale the "
                "inputs to a moderate range; the estimator was left unchanged."
            )
        loss = self.criterion_(negative_elbo)
        loss.backward()
        self.history.record_batch("elbo", -loss.item())
        return {"loss": loss, "y_pred": negative_elbo}
