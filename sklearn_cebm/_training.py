"""Training an energy on skorch: persistent contrastive divergence or score matching.

Knows torch and skorch, not scikit-learn. The public estimators build a :class:`PCDNet`
(or, for ``objective='dsm'``, a :class:`DSMNet`) around a
:class:`~sklearn_cebm._core.model.ConjugateEnergyModel` and call ``fit`` or
``partial_fit`` on it.
"""

import warnings

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EpochTimer, PassthroughScoring, PrintLog, ProgressBar
from skorch.dataset import unpack_data

from ._core.chain_starts import UniformStart, fit_chain_start
from ._core.sgld import ReplayBuffer, frozen_parameters, langevin_dynamics

__all__ = [
    "DSMNet",
    "EnergyNet",
    "PCDNet",
    "SamplerMonitor",
    "SamplerWarning",
    "TrainingDivergedError",
]

# Energies beyond this magnitude mean the energy has run away: the L2 penalty keeps
# well-behaved runs orders of magnitude below it.
ENERGY_MAGNITUDE_LIMIT = 1e6

# Nijkamp et al. (2019a) read the gap E(data) - E(model) as the health of PCD: it should
# hover near zero. A gap of this many energy units means the chains no longer follow the
# energy (the speed issue's runaway run reached -100).
ENERGY_GAP_WARNING = 10.0
# Root-mean-square change per coordinate over one SGLD run, in the sampler's [-1, 1] box,
# below which the chains are not exploring (pinned to the box's faces, or noise and steps
# too small to move them).
STUCK_CHAIN_DISPLACEMENT = 1e-3

_DIAGNOSTICS = ("energy_data", "energy_model", "energy_gap", "chain_displacement")


class TrainingDivergedError(RuntimeError):
    """Training produced non-finite or exploding energies or weights.

    The estimator that raised it is left as it was before the call.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import CEBMEncoder, TrainingDivergedError
    >>> X, _ = load_digits(return_X_y=True)
    >>> encoder = CEBMEncoder(n_components=8, hidden_layer_sizes=(32,), max_iter=3,
    ...                       sgld_steps=5, learning_rate=10.0, energy_l2=0.0, random_state=0)
    >>> try:
    ...     encoder.fit(X[:256])
    ... except TrainingDivergedError as error:
    ...     print("diverged; fitted:", hasattr(encoder, "net_"))
    diverged; fitted: False
    """


class SamplerWarning(UserWarning):
    """The PCD sampler looks unhealthy: a runaway energy gap, or chains that do not move.

    Issued at most once per kind and fit by :class:`SamplerMonitor`, a default callback of
    every estimator's training.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn_cebm import CEBMEncoder, SamplerWarning
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> frozen = CEBMEncoder(n_components=2, hidden_layer_sizes=(8,), max_iter=1, sgld_steps=2,
    ...                      sgld_step_size=0.0, sgld_noise=0.0, buffer_size=50)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = frozen.fit(X)
    >>> any(issubclass(w.category, SamplerWarning) for w in caught)
    True
    """


def _divergence_message(what):
    return (
        f"CEBM training diverged: {what}. Lower learning_rate or sgld_step_size, raise "
        "energy_l2, or scale the inputs to a moderate range; the estimator was left unchanged."
    )


class SamplerMonitor(Callback):
    """Warn, once per fit, when the per-epoch diagnostics say the sampler is not keeping up.

    Reads ``energy_gap`` and ``chain_displacement`` from the epoch's history and issues a
    :class:`SamplerWarning` naming the setting to change. A gap beyond the limit must last
    ``patience`` epochs in a row: one epoch's excursion that the chains then catch up with
    is common early in training and is no runaway.

    Parameters
    ----------
    gap_limit : float, default=10.0
        Largest healthy ``|E(data) - E(model)|``, in energy units.
    stuck_displacement : float, default=1e-3
        Smallest healthy RMS move of a chain coordinate over one SGLD run.
    patience : int, default=2
        Consecutive epochs the gap must exceed ``gap_limit`` before the warning.
    """

    def __init__(
        self,
        gap_limit=ENERGY_GAP_WARNING,
        stuck_displacement=STUCK_CHAIN_DISPLACEMENT,
        patience=2,
    ):
        self.gap_limit = gap_limit
        self.stuck_displacement = stuck_displacement
        self.patience = patience

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.warned_ = set()

    def on_epoch_end(self, net, **kwargs):
        epoch = net.history[-1]
        gap, displacement = epoch["energy_gap"], epoch["chain_displacement"]
        # Epochs cut short by an interrupt record no gap; they do not break a run.
        measured = [past["energy_gap"] for past in net.history if "energy_gap" in past]
        recent = measured[-self.patience :]
        if len(recent) == self.patience and all(abs(g) > self.gap_limit for g in recent):
            self._warn_once(
                "gap",
                f"The energy gap E(data) - E(model) reached {gap:+.3g} in epoch "
                f"{epoch['epoch']} and stayed beyond {self.gap_limit:g} for {self.patience} "
                "epochs: the SGLD chains no longer follow the energy. Raise sgld_steps or "
                "sgld_step_size, or lower learning_rate.",
            )
        if net.sgld_steps > 0 and displacement < self.stuck_displacement:
            self._warn_once(
                "stuck",
                f"The SGLD chains moved {displacement:.2g} per coordinate in epoch "
                f"{epoch['epoch']}: they look stuck. Raise sgld_step_size or sgld_noise.",
            )

    def _warn_once(self, kind, message):
        if kind not in self.warned_:
            self.warned_.add(kind)
            warnings.warn(message, SamplerWarning, stacklevel=2)


class EnergyNet(NeuralNet):
    """What the energy trainers share: a seeded generator, and loud failure on divergence.

    Parameters
    ----------
    seed : int
        Seed of the generator that drives every random draw of training.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(self, *args, seed, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed

    def _progress_callbacks(self, postfix_keys):
        """skorch's progress bar (batches, rate and ETA per epoch) when ``verbose`` is on."""
        if not self.verbose:
            return []
        bar = ProgressBar(postfix_keys=["train_loss", *postfix_keys])
        return [("progress_bar", bar)]

    def initialize(self):
        """Initialise skorch's components and the random generator."""
        super().initialize()
        self.random_generator_ = torch.Generator().manual_seed(self.seed)
        return self

    def device_generator(self):
        """The generator for draws on the training device.

        On the CPU it is the persistent ``random_generator_``; on another device a generator
        seeded from it, rebuilt after unpickling, so a pickled net never holds device state.
        """
        device = torch.device(self.device)
        if device.type == "cpu":
            return self.random_generator_
        generator = self.__dict__.get("_device_generator")
        if generator is None or generator.device != device:
            seed = int(torch.randint(2**62, (1,), generator=self.random_generator_))
            generator = torch.Generator(device).manual_seed(seed)
            self._device_generator = generator
        return generator

    def _with_regularizer(self, loss, x_data):
        """``loss`` plus the module's own penalty on the data batch, where it has one."""
        regularizer = getattr(self.module_, "regularizer", None)
        penalty = None if regularizer is None else regularizer(x_data)
        return loss if penalty is None else loss + penalty

    def _check_energies(self, **energies):
        for name, energy in energies.items():
            if not torch.isfinite(energy).all():
                raise TrainingDivergedError(_divergence_message(f"non-finite energy of {name}"))
            largest = energy.abs().max().item()
            if largest > ENERGY_MAGNITUDE_LIMIT:
                raise TrainingDivergedError(
                    _divergence_message(f"energy of {name} reached {largest:.3g}")
                )

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Refuse to finish with non-finite weights."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        for name, parameter in self.module_.named_parameters():
            if not torch.isfinite(parameter).all():
                raise TrainingDivergedError(_divergence_message(f"weight {name} is not finite"))

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_device_generator", None)
        return state


class DSMNet(EnergyNet):
    """A skorch net whose training step is one denoising-score-matching update.

    No sampling: each step noises the data batch and matches the energy's score to the
    noise's (:class:`~sklearn_cebm._core.losses.DenoisingScoreMatchingLoss`, the
    criterion). The mean energy of the noised batch is recorded per batch and averaged per
    epoch in ``history`` as ``energy_data``.

    Parameters
    ----------
    seed : int
        Seed of the generator that draws the noise.
    **kwargs
        Passed to :class:`skorch.NeuralNet`; ``criterion__noise_std`` sets the noise.
    """

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("energy_data", PassthroughScoring(name="energy_data", on_train=True)),
            *self._progress_callbacks(["energy_data"]),
            ("print_log", PrintLog()),
        ]

    def train_step_single(self, batch, **fit_params):
        """One score-matching loss and its gradients; records the data energy."""
        self._set_training(True)
        x_data, _ = unpack_data(batch)
        x_data = x_data.to(self.device, torch.float32)
        loss, energies = self.criterion_(self.module_, x_data, self.device_generator())
        self._check_energies(data=energies)
        loss = self._with_regularizer(loss, x_data)
        loss.backward()
        self.history.record_batch("energy_data", energies.mean().item())
        return {"loss": loss, "y_pred": energies}


class PCDNet(EnergyNet):
    """A skorch net whose training step is one PCD update (Sec. 2.1).

    Each step draws chains from a replay buffer, advances them with SGLD (Eq. 3) with the
    weights frozen, and descends the
    :class:`~sklearn_cebm._core.losses.ContrastiveDivergenceLoss` on the energies of the
    noisy data batch and the model samples. The mean energies of both, their gap and
    the chains' RMS move per coordinate (``chain_displacement``) are recorded per batch and
    averaged per epoch in ``history``; :class:`SamplerMonitor` warns when they look wrong.

    Parameters
    ----------
    sgld_steps : int
        SGLD steps per update.
    sgld_step_size : float
        Multiplier of the energy gradient in SGLD.
    sgld_noise : float
        Std of the SGLD noise.
    buffer_size : int
        Number of persistent chains.
    buffer_reinit_fraction : float
        Share of each batch of chains restarted from the chain start.
    chain_init : {'uniform', 'gaussian'}
        Where chains start (:func:`~sklearn_cebm._core.chain_starts.fit_chain_start`):
        uniform noise on ``[-1, 1]``, or a Gaussian fitted to the first training call's
        data, kept as ``chain_start_``.
    data_noise : float
        Std of the Gaussian noise added to every data batch.
    seed : int
        Seed of the generator that drives the chains and the data noise.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(
        self,
        *args,
        sgld_steps,
        sgld_step_size,
        sgld_noise,
        buffer_size,
        buffer_reinit_fraction,
        data_noise,
        chain_init="uniform",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.sgld_steps = sgld_steps
        self.sgld_step_size = sgld_step_size
        self.sgld_noise = sgld_noise
        self.buffer_size = buffer_size
        self.buffer_reinit_fraction = buffer_reinit_fraction
        self.chain_init = chain_init
        self.data_noise = data_noise

    @property
    def _default_callbacks(self):
        diagnostics = [
            (name, PassthroughScoring(name=name, on_train=True)) for name in _DIAGNOSTICS
        ]
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            *diagnostics,
            ("sampler_monitor", SamplerMonitor()),
            *self._progress_callbacks(["energy_gap"]),
            ("print_log", PrintLog()),
        ]

    def initialize(self):
        """Initialise skorch's components, the random generator and an empty replay buffer."""
        super().initialize()
        self.replay_buffer_ = None
        self.chain_start_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Fit the chain start to the first training call's data."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if getattr(self, "chain_start_", None) is None:
            # Pickles made before chain starts existed have no chain_init: uniform, as then.
            kind = getattr(self, "chain_init", "uniform")
            self.chain_start_ = fit_chain_start(kind, torch.as_tensor(X, device="cpu"))

    def sample_model(self, n_samples, sample_shape):
        """Advance ``n_samples`` persistent chains by ``sgld_steps`` and return them."""
        generator = self.device_generator()
        if self.replay_buffer_ is None:
            start = self.chain_start_
            if start is None:  # a step outside fit, which has seen no data
                if self.chain_init != "uniform":
                    raise RuntimeError("chain_init='gaussian' needs fit to see the data first.")
                start = UniformStart(sample_shape)
            start = start.to(self.device)
            self.replay_buffer_ = ReplayBuffer.from_start(
                self.buffer_size, start, self.buffer_reinit_fraction, generator
            )
        buffer = self.replay_buffer_.to(self.device)
        indices, initial = buffer.draw(n_samples, generator)
        with frozen_parameters(self.module_):
            samples = langevin_dynamics(
                self.module_,
                initial,
                n_steps=self.sgld_steps,
                step_size=self.sgld_step_size,
                noise_std=self.sgld_noise,
                generator=generator,
            )
        buffer.update(indices, samples)
        displacement = (samples - initial).pow(2).mean().sqrt().item()
        self.history.record_batch("chain_displacement", displacement)
        return samples

    def train_step_single(self, batch, **fit_params):
        """One PCD update's loss and gradients; records the energy diagnostics."""
        self._set_training(True)
        x_data, _ = unpack_data(batch)
        x_data = x_data.to(self.device, torch.float32)
        noise = torch.randn(x_data.shape, generator=self.device_generator(), device=self.device)
        x_data = x_data + self.data_noise * noise
        x_model = self.sample_model(x_data.shape[0], x_data.shape[1:])
        # Two forward passes, not one on the concatenated batch: at batch 128 the conv
        # net's first activations (13 MB each) stay in cache, and the update takes 68 ms
        # instead of 90 on two cores (measured against the fused pass).
        energy_data = self.module_(x_data)
        energy_model = self.module_(x_model)
        self._check_energies(data=energy_data, **{"model samples": energy_model})
        loss = self.criterion_(energy_data, energy_model)
        loss = self._with_regularizer(loss, x_data)
        loss.backward()
        mean_data, mean_model = energy_data.mean().item(), energy_model.mean().item()
        self.history.record_batch("energy_data", mean_data)
        self.history.record_batch("energy_model", mean_model)
        self.history.record_batch("energy_gap", mean_data - mean_model)
        return {"loss": loss, "y_pred": energy_data}
