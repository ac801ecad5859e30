"""Training an energy by persistent contrastive divergence (Sec. 2.1) on skorch.

:class:`PCDNet` is the :class:`~sklearn_cebm._training.nets.EnergyNet` whose step is one
PCD update: chains drawn from a replay buffer, advanced by SGLD, and the contrast of
their energies with the data's. On CUDA it can replay the update from a CUDA graph
(:mod:`sklearn_cebm._core.cuda_graphs`).
"""

import torch
from skorch.dataset import unpack_data

from .._core.chain_init import fit_chain_init
from .._core.cuda_graphs import CapturedStep, side_stream
from .._core.losses import ContrastiveDivergenceLoss
from .._core.pcd_step import contrastive_divergence_step, step_statistics
from .._core.sgld import ReplayBuffer, advance_persistent_chains
from .callbacks import SamplerMonitor, SamplerRollback
from .nets import EnergyNet

__all__ = ["PCDNet"]


def _tensor_attributes(start):
    """The tensors a chain start holds (a Gaussian's mean and scale; none for uniform)."""
    return [value for value in vars(start).values() if isinstance(value, torch.Tensor)]


class PCDNet(EnergyNet):
    """A skorch net whose training step is one PCD update (Sec. 2.1).

    Each step draws chains from a replay buffer, advances them with SGLD (Eq. 3) with the
    weights frozen, and descends the criterion
    (:class:`~sklearn_cebm._core.losses.ContrastiveDivergenceLoss` by default) of the
    energies of the noisy data batch (the prediction) and of the model samples (in the
    target's place). The mean energies of both, their gap and the chains' RMS move per
    coordinate (``chain_displacement``) are recorded per batch and averaged per epoch in
    ``history``; :class:`~sklearn_cebm._training.callbacks.SamplerMonitor` warns when they look
    wrong.

    Parameters
    ----------
    sgld_steps : int
        SGLD steps per update.
    buffer_size : int
        Number of persistent chains.
    buffer_reinit_fraction : float
        Share of each batch of chains restarted from the chain start.
    chain_init : {'uniform', 'gaussian'}
        Where chains start (:func:`~sklearn_cebm._core.chain_init.fit_chain_init`):
        uniform noise on ``[-1, 1]``, or a Gaussian fitted to the first training call's
        data, kept as ``chain_init_``.
    data_noise : float
        Std of the Gaussian noise added to every data batch.
    cuda_graphs : bool, default=False
        On a CUDA device, replay each update's SGLD run, energies, loss and backward pass
        as one CUDA graph (:class:`~sklearn_cebm._core.cuda_graphs.CapturedStep`), after
        ``cuda_graph_warmup`` eager updates; the optimiser steps eagerly. Ignored on other
        devices. The update makes no host sync either way; its diagnostics are read once
        per batch, after it.
    **kwargs
        Passed to :class:`EnergyNet` (``sgld_step_size``, ``sgld_noise``, ``seed``) and
        :class:`skorch.NeuralNet`.
    """

    def __init__(
        self,
        module,
        *args,
        criterion=ContrastiveDivergenceLoss,
        sgld_steps,
        buffer_size,
        buffer_reinit_fraction,
        data_noise,
        chain_init="uniform",
        cuda_graphs=False,
        **kwargs,
    ):
        super().__init__(module, criterion, *args, **kwargs)
        self.sgld_steps = sgld_steps
        self.buffer_size = buffer_size
        self.buffer_reinit_fraction = buffer_reinit_fraction
        self.chain_init = chain_init
        self.data_noise = data_noise
        self.cuda_graphs = cuda_graphs

    recorded = ("energy_data", "energy_model", "energy_gap", "chain_displacement")
    shown = "energy_gap"

    def _monitoring_callbacks(self):
        # The rollback first: the monitor then passes over the epoch it undid.
        return [("sampler_rollback", SamplerRollback()), ("sampler_monitor", SamplerMonitor())]

    def initialize(self):
        """Initialise skorch's components, the random generator and an empty replay buffer."""
        super().initialize()
        self.replay_buffer_ = None
        self.chain_init_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Fit the chain start to the first training call's data."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if getattr(self, "chain_init_", None) is None:
            # Pickles made before chain starts existed have no chain_init: uniform, as then.
            kind = getattr(self, "chain_init", "uniform")
            self.chain_init_ = fit_chain_init(kind, torch.as_tensor(X, device="cpu"))

    def chain_init_distribution(self, sample_shape):
        """Where chains start: the start fitted to the training data, once there is one."""
        start = getattr(self, "chain_init_", None)
        if start is not None:
            return start
        if self.chain_init != "uniform":
            raise RuntimeError("chain_init='gaussian' needs fit to see the data first.")
        return super().chain_init_distribution(sample_shape)

    def sampling_module(self):
        """The module the chains move on in training: ``module_``."""
        return self.module_

    def advance_chains(self, n_samples, sample_shape):
        """Advance ``n_samples`` persistent chains by ``sgld_steps``, with no host sync.

        Returns
        -------
        ChainAdvance
            The samples and their RMS move, a 0-d tensor
            (:func:`~sklearn_cebm._core.sgld.advance_persistent_chains`).
        """
        generator = self.device_generator()
        if self.replay_buffer_ is None:
            start = self.chain_init_distribution(sample_shape).to(self.device)
            self.replay_buffer_ = ReplayBuffer.from_start(
                self.buffer_size, start, self.buffer_reinit_fraction, generator
            )
        return advance_persistent_chains(
            self.sampling_module(),
            self.replay_buffer_.to(self.device),
            n_samples,
            n_steps=self.sgld_steps,
            step_size=self.sgld_step_size,
            noise_std=self.sgld_noise,
            generator=generator,
        )

    def contrastive_divergence_step(self, x_data):
        """The update's loss and gradients, with no host sync: replayed as a CUDA graph
        where ``cuda_graphs`` asks for it and the device is CUDA, else run eagerly.

        Returns
        -------
        ContrastiveDivergenceStep
        """
        if getattr(self, "cuda_graphs", False) and x_data.device.type == "cuda":
            return self._graphed_step(x_data)
        return self._eager_step(x_data)

    def _eager_step(self, x_data):
        return contrastive_divergence_step(
            self.module_,
            x_data,
            self.advance_chains,
            lambda energy_data, energy_model, x: self.get_loss(
                energy_data, energy_model, X=x, training=True
            ),
            data_noise=self.data_noise,
            generator=self.device_generator(),
        )

    # Eager updates, on a side stream, before the first capture of a CUDA graph.
    cuda_graph_warmup = 3

    def _graphed_step(self, x_data):
        """:meth:`contrastive_divergence_step` replayed from a CUDA graph, captured anew
        when what it reads has moved (a rollback's new chains, new weights) and skipped
        for a batch of another size (an epoch's last)."""
        warmups = self.__dict__.get("_graph_warmups", 0)
        if self.replay_buffer_ is None or warmups < self.cuda_graph_warmup:
            self._graph_warmups = warmups + 1
            with side_stream(x_data.device):
                return self._eager_step(x_data)
        generator = self.device_generator()
        parameters = list(self.module_.parameters())
        buffer = self.replay_buffer_.to(self.device)
        static = [buffer.samples, *_tensor_attributes(buffer.start)]
        captured = self.__dict__.get("_captured_step")
        if captured is not None and captured.matches(x_data, parameters, static, generator):
            return captured(x_data)
        if captured is not None and tuple(x_data.shape) != tuple(captured.input.shape):
            return self._eager_step(x_data)
        self._captured_step = CapturedStep(self._eager_step, x_data, parameters, generator, static)
        return self._captured_step(x_data)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_captured_step", None)  # a CUDA graph neither pickles nor copies
        state.pop("_graph_warmups", None)
        return state

    def train_step_single(self, batch, **fit_params):
        """One PCD update's loss and gradients; records the energy diagnostics.

        The update itself makes no host sync (:meth:`contrastive_divergence_step`); the
        divergence check and the diagnostics then read the device once each.
        """
        self._set_training(True)
        x_data, _ = unpack_data(batch)
        x_data = x_data.to(self.device, torch.float32)
        step = self.contrastive_divergence_step(x_data)
        self._check_energies(data=step.energy_data, **{"model samples": step.energy_model})
        mean_data, mean_model, displacement = step_statistics(step).tolist()
        self.history.record_batch("chain_displacement", displacement)
        self.history.record_batch("energy_data", mean_data)
        self.history.record_batch("energy_model", mean_model)
        self.history.record_batch("energy_gap", mean_data - mean_model)
        return {"loss": step.loss, "y_pred": step.energy_data}
