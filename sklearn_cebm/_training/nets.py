"""Training an energy on skorch: the seeded net, the energy net, score matching.

Knows torch and skorch, not scikit-learn. The public estimators build a
:class:`~sklearn_cebm._training.pcd_net.PCDNet` (or, for ``objective='dsm'``, a
:class:`DSMNet`) around an energy model such as
:class:`~sklearn_cebm._core.model.ConjugateEnergyModel`, call ``partial_fit`` on it, and
ask it for samples (:meth:`EnergyNet.sample`). Every net here derives from
:class:`SeededNet`, which the VAE's :class:`~sklearn_cebm._training.vae_nets.ELBONet` shares.
"""

import math

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import (
    Callback,
    EpochTimer,
    PassthroughScoring,
)
from skorch.dataset import unpack_data

from .._core.chain_init import UniformChainInit
from .._core.losses import DenoisingScoreMatchingLoss, scaled_energy_gradient
from .._core.sgld import sample_fresh_chains
from .._core.weight_average import WeightAverage, copy_parameters
from .callbacks import EpochTable, RunProgressBar

__all__ = [
    "DSMNet",
    "EnergyNet",
    "SeededNet",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "check_callbacks",
]

# Energies beyond this magnitude mean the energy has run away: the L2 penalty keeps
# well-behaved runs orders of magnitude below it.
ENERGY_MAGNITUDE_LIMIT = 1e6


def check_callbacks(callbacks):
    """Reject what skorch cannot run here: a non-callback, or one that needs a validation split.

    Raises
    ------
    TypeError
        If an item is neither a skorch callback (instance or class) nor a
        ``(name, callback)`` pair.
    ValueError
        If a callback monitors a validation score (skorch's ``EarlyStopping`` and
        ``Checkpoint`` do by default): the nets train on all of X, without a validation
        split, so that score never exists.
    """
    for item in callbacks or []:
        named = isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
        callback = item[1] if named else item
        is_class = isinstance(callback, type) and issubclass(callback, Callback)
        if not (is_class or isinstance(callback, Callback)):
            raise TypeError(
                "callbacks must hold skorch callbacks (skorch.callbacks.Callback instances or "
                f"classes, or (name, callback) pairs); got {item!r}."
            )
        monitor = getattr(callback, "monitor", None)
        watches = f"monitors {monitor!r}" if isinstance(monitor, str) else None
        if not (watches and monitor.startswith("valid")):
            # skorch's scorings score the validation split unless on_train is set.
            watches = "scores the validation data (on_train=False)"
            if getattr(callback, "on_train", True) is not False:
                continue
        name = callback.__name__ if is_class else type(callback).__name__
        raise ValueError(
            f"The callback {name} {watches}, but these estimators train without a "
            "validation split (train_split=None), so there is no validation score: monitor "
            "'train_loss' (or 'train_loss_best'), or score with on_train=True, instead."
        )


def _raised_by_a_callback(error):
    """Whether ``error`` was raised in a method of a skorch callback, not by a signal.

    The innermost frame of its traceback is where the exception started: a callback's
    own ``raise KeyboardInterrupt`` is a request to stop; Ctrl-C arrives wherever the
    interpreter is, almost always in the training step.
    """
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return isinstance(traceback.tb_frame.f_locals.get("self"), Callback)


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


class TrainingInterrupted(UserWarning):
    """Training was interrupted (Ctrl-C): it stopped at a batch's end, and the model is kept.

    Issued by ``fit`` and ``partial_fit`` of every estimator when a ``KeyboardInterrupt``
    arrives during training. The call then returns normally with a usable model: the
    updates made before the interrupt are kept, the last row of ``history_`` holds the
    means over the batches done in the epoch cut short and ``interrupted=True``, and
    ``n_iter_`` counts that epoch. :class:`GMMCEBMClusterer` stops its whole fit, not only
    the run in progress. To have an interrupt abort the call instead, turn this warning
    into an error (``warnings.simplefilter("error", TrainingInterrupted)``): the call then
    fails and, as every failed call, leaves the estimator as it was before it.

    Examples
    --------
    >>> import warnings
    >>> from sklearn_cebm import TrainingInterrupted
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", TrainingInterrupted)  # Ctrl-C aborts fit instead
    ...     issubclass(TrainingInterrupted, UserWarning)
    True
    """


def _batch_mean(batches, key):
    """Mean of ``key`` over the batches that recorded it, weighted by their sizes, as
    skorch's ``PassthroughScoring`` averages an epoch; None when no batch did."""
    done = [batch for batch in batches if key in batch and "train_batch_size" in batch]
    if not done:
        return None
    sizes = [batch["train_batch_size"] for batch in done]
    return float(np.average([batch[key] for batch in done], weights=sizes))


def _draws_on(generator, device):
    """Whether ``generator`` is on ``device``: ``'cuda'``, without an index, is the GPU in
    use, whose generator says ``'cuda:0'``."""
    same_index = device.index is None or generator.device.index == device.index
    return generator.device.type == device.type and same_index


class SeededNet(NeuralNet):
    """What every net of this package shares: a seeded generator, and loud divergence.

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

    # What the training step records per batch beside the loss, averaged per epoch into
    # history; and which of them the progress bar shows.
    recorded = ()
    shown = None
    # What to change when training diverges.
    divergence_advice = "Lower learning_rate, or scale the inputs to a moderate range"

    def diverged(self, what):
        """The error to raise when training diverged: what happened, and what to change."""
        return TrainingDivergedError(
            f"Training diverged: {what}. {self.divergence_advice}; the estimator was left "
            "unchanged."
        )

    def _monitoring_callbacks(self):
        """Callbacks that watch the recorded values; none by default."""
        return []

    @property
    def _default_callbacks(self):
        scoring = [
            (name, PassthroughScoring(name=name, on_train=True))
            for name in ("train_loss", *self.recorded)
        ]
        progress = []
        if self.verbose:  # one bar over the whole call: batches, rate and ETA
            keys = ["train_loss"] if self.shown is None else ["train_loss", self.shown]
            progress = [("progress_bar", RunProgressBar(postfix_keys=keys))]
        return [
            ("epoch_timer", EpochTimer()),
            *scoring,
            *self._monitoring_callbacks(),
            *progress,
            ("print_log", EpochTable()),
        ]

    # Attributes that hold tensors on the training device, beyond skorch's own: unpickling
    # maps them to the loading machine's device, so that a net trained on CUDA loads on a
    # CPU. The module given to the net is the object skorch trains as module_, but skorch
    # maps only module_ by itself.
    device_attributes = ("module",)

    def initialize(self):
        """Initialise skorch's components and the random generator."""
        super().initialize()
        self.random_generator_ = torch.Generator().manual_seed(self.seed)
        missing = [a for a in self.device_attributes if a not in self.cuda_dependent_attributes_]
        self.cuda_dependent_attributes_ = [*self.cuda_dependent_attributes_, *missing]
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
        if generator is None or not _draws_on(generator, device):
            seed = int(torch.randint(2**62, (1,), generator=self.random_generator_))
            generator = torch.Generator(device).manual_seed(seed)
            self._device_generator = generator
        return generator

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop, noting an interrupt (``interrupted_``) before skorch swallows it.

        skorch's ``partial_fit`` catches ``KeyboardInterrupt`` and ends training quietly;
        the flags let :meth:`on_train_end` close the epoch cut short and the estimator
        say so. A callback that raises it itself (skorch's ``EarlyStopping``, a time
        budget) stops training on purpose: that is no interrupt (``interrupted_`` stays
        False), though its epoch is closed alike (``stopped_``). Nothing of the loop
        itself changes.
        """
        self.interrupted_ = self.stopped_ = False
        # The call's epochs, for the progress bar's total (skorch gives it no callback).
        self.epochs_planned_ = self.max_epochs if epochs is None else epochs
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as error:
            self.stopped_ = True
            self.interrupted_ = not _raised_by_a_callback(error)
            raise

    def _close_interrupted_epoch(self):
        """Give the epoch cut short its means over the batches done, or drop it if none.

        skorch records an epoch's means only at its end, which an interrupted epoch never
        reaches; its row would lack ``train_loss``.
        """
        epoch = self.history[-1] if len(self.history) else None
        if epoch is None or "train_loss" in epoch:
            return  # interrupted between epochs
        means = {key: _batch_mean(epoch["batches"], key) for key in ("train_loss", *self.recorded)}
        if means["train_loss"] is None:
            del self.history[-1]  # not one batch done: the weights have not changed
            return
        for key, mean in means.items():
            if mean is not None:
                self.history.record(key, mean)
        done = [batch for batch in epoch["batches"] if "train_loss" in batch]
        self.history.record("train_batch_count", len(done))
        self.history.record("interrupted", self.interrupted_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Close an interrupted epoch; refuse to finish with non-finite weights."""
        if getattr(self, "stopped_", False):
            self._close_interrupted_epoch()
        super().on_train_end(net, X=X, y=y, **kwargs)
        for name, parameter in self.module_.named_parameters():
            if not torch.isfinite(parameter).all():
                raise self.diverged(f"weight {name} is not finite")

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_device_generator", None)
        return state


class EnergyNet(SeededNet):
    """A net whose module maps inputs to energies ``E(x)``: checks, loss and sampling.

    The loss is the criterion of a prediction and a target (skorch's :meth:`get_loss`)
    plus the module's own penalty on the data batch, where it has one (a mixture bias's
    cluster-balance term).

    Parameters
    ----------
    sgld_step_size : float
        Multiplier of the energy gradient in SGLD.
    sgld_noise : float
        Std of the SGLD noise.
    **kwargs
        Passed to :class:`SeededNet` (``seed``) and :class:`skorch.NeuralNet`.
    """

    divergence_advice = (
        "Lower learning_rate or sgld_step_size, raise energy_l2, or scale the inputs to a "
        "moderate range"
    )

    def __init__(self, *args, sgld_step_size, sgld_noise, ema_decay=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.sgld_step_size = sgld_step_size
        self.sgld_noise = sgld_noise
        self.ema_decay = ema_decay

    # What weight averaging keeps on the net, on the training device.
    device_attributes = (*SeededNet.device_attributes, "weight_average_", "training_weights_")
    # The moving averages of the weights that a rollback restores with the weights.
    weight_averages = ("weight_average_",)

    def initialize(self):
        """Initialise skorch's components, with no weight average yet."""
        super().initialize()
        self.weight_average_ = None
        self.training_weights_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Go on from the weights training had reached, where the module holds the average.

        Between calls the module holds the moving average of the weights (``ema_decay``),
        which inference uses; training goes on from where its own updates had led, so
        that the average never feeds back into them.
        """
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if getattr(self, "training_weights_", None) is not None:
            copy_parameters(self.training_weights_, self.module_)
            self.training_weights_ = None
        if getattr(self, "ema_decay", None) is None:
            self.weight_average_ = None
        elif getattr(self, "weight_average_", None) is None:
            self.weight_average_ = WeightAverage(self.ema_decay)
        else:
            self.weight_average_.decay = self.ema_decay

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Take a training update's weights into the moving average."""
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        if training and getattr(self, "weight_average_", None) is not None:
            self.weight_average_.update(self.module_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Check the weights; then keep them aside and give the module their average."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        average = getattr(self, "weight_average_", None)
        if average is None or average.weights is None:
            return
        self.training_weights_ = [p.detach().clone() for p in self.module_.parameters()]
        average.copy_to(self.module_)

    def _check_energies(self, **energies):
        """Raise if an energy is not finite or beyond the limit; one read of the device.

        The largest magnitude of each batch of energies is NaN or infinite where one of
        them is, so it tells both.
        """
        if not energies:
            return
        largest = torch.stack(
            [energy.detach().abs().max().to(torch.float64) for energy in energies.values()]
        ).tolist()
        for name, value in zip(energies, largest, strict=True):
            if not math.isfinite(value):
                raise self.diverged(f"non-finite energy of {name}")
            if value > ENERGY_MAGNITUDE_LIMIT:
                raise self.diverged(f"energy of {name} reached {value:.3g}")

    def chain_init_distribution(self, sample_shape):
        """Where fresh SGLD chains start: uniform noise on the sampler's box."""
        return UniformChainInit(sample_shape)

    def sample(
        self, n_samples, n_steps, seed, sample_shape, energy=None, step_size=None, noise_std=None
    ):
        """``n_samples`` draws by ``n_steps`` of SGLD from fresh chains, on the CPU.

        Parameters
        ----------
        n_samples, n_steps : int
        seed : int
            Seeds a generator on the training device for the chains and their noise.
        sample_shape : tuple of int
            Shape of one sample, in the sampler's box.
        energy : torch.nn.Module, default=None
            The energy to sample; the module's ``E(x)`` by default (a mixture's
            component energy samples ``p(x | y)``).
        step_size, noise_std : float, default=None
            The SGLD settings; the net's ``sgld_step_size`` and ``sgld_noise`` by default.

        Returns
        -------
        torch.Tensor of shape (n_samples, *sample_shape)
        """
        self.module_.eval()
        generator = torch.Generator(self.device).manual_seed(seed)
        samples = sample_fresh_chains(
            self.module_ if energy is None else energy,
            n_samples,
            self.chain_init_distribution(sample_shape),
            n_steps=n_steps,
            step_size=self.sgld_step_size if step_size is None else step_size,
            noise_std=self.sgld_noise if noise_std is None else noise_std,
            generator=generator,
        )
        return samples.cpu()


class DSMNet(EnergyNet):
    """A skorch net whose training step is one denoising-score-matching update.

    No sampling: each step noises the data batch, ``x + noise_std * eps``, and regresses
    the energy's scaled score ``noise_std * grad_x E`` there onto ``eps``
    (:class:`~sklearn_cebm._core.losses.DenoisingScoreMatchingLoss`, the default
    criterion). The mean energy of the noised batch is recorded per batch and averaged per
    epoch in ``history`` as ``energy_data``.

    Parameters
    ----------
    noise_std : float
        Std of the noise added to the data.
    **kwargs
        Passed to :class:`EnergyNet` (the SGLD settings of :meth:`~EnergyNet.sample`,
        ``seed``) and :class:`skorch.NeuralNet`.
    """

    def __init__(self, module, *args, criterion=DenoisingScoreMatchingLoss, noise_std, **kwargs):
        super().__init__(module, criterion, *args, **kwargs)
        self.noise_std = noise_std

    recorded = ("energy_data",)
    shown = "energy_data"

    def train_step_single(self, batch, **fit_params):
        """One score-matching loss and its gradients; records the data energy."""
        self._set_training(True)
        x_data, _ = unpack_data(batch)
        x_data = x_data.to(self.device, torch.float32)
        noise = torch.randn(x_data.shape, generator=self.device_generator(), device=self.device)
        scaled_gradient, energies = scaled_energy_gradient(
            self.module_, x_data + self.noise_std * noise, self.noise_std
        )
        self._check_energies(data=energies)
        loss = self.get_loss(scaled_gradient, noise, X=x_data, training=True)
        loss.backward()
        self.history.record_batch("energy_data", energies.mean().item())
        return {"loss": loss, "y_pred": energies}
