"""skorch callbacks of the energy trainers: the sampler's health, and the mixture's seeding.

Knows torch and skorch, not scikit-learn: the seeding callback takes the function that
chooses the seeds from its caller.
"""

import copy
import math
import os
import re
import sys
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback, PrintLog
from tqdm import tqdm

from .._core.model import INFERENCE_BATCH_SIZE, map_batches

__all__ = [
    "EpochTable",
    "MixtureMeansSeeding",
    "PlacementAfterEpoch",
    "RunProgressBar",
    "SamplerMonitor",
    "SamplerRollback",
    "SamplerWarning",
    "copy_training_state",
    "restore_training_state",
]

# Nijkamp et al. (2019a) read the gap E(data) - E(model) as the health of PCD: it should
# hover near zero. A gap of this many energy units means the chains no longer follow the
# energy (the speed issue's runaway run reached -100).
ENERGY_GAP_WARNING = 10.0
# Root-mean-square change per coordinate over one SGLD run, in the sampler's [-1, 1] box,
# below which the chains are not exploring (pinned to the box's faces, or noise and steps
# too small to move them).
STUCK_CHAIN_DISPLACEMENT = 1e-3
# Consecutive epochs beyond ENERGY_GAP_WARNING that make a runaway, not an excursion.
GAP_PATIENCE = 2
# The Select Graphic Rendition escapes (colours, reset) that skorch's PrintLog writes.
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _stdout_is_a_terminal():
    """Whether the current ``sys.stdout`` is a terminal, and ``NO_COLOR`` is not set."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


class EpochTable(PrintLog):
    """skorch's per-epoch table, in colour only on a terminal, printed above the run's bar.

    skorch's :class:`~skorch.callbacks.PrintLog` colours the best values with ANSI escape
    codes wherever it prints; in a log file or a captured stream they are noise. Here they
    are kept only when ``sys.stdout`` is a terminal (and the ``NO_COLOR`` environment
    variable is unset). Rows go through ``tqdm.write``, so an open :class:`RunProgressBar`
    is cleared and redrawn below them instead of being cut by them.
    """

    def format_row(self, row, key, color):
        """skorch's formatting, without the colour when stdout is no terminal."""
        formatted = super().format_row(row, key, color)
        if isinstance(formatted, str) and not _stdout_is_a_terminal():
            return ANSI_COLOUR.sub("", formatted)
        return formatted

    def _sink(self, text, verbose):
        if self.sink is not print:
            super()._sink(text, verbose)
        elif verbose:
            tqdm.write(text, file=sys.stdout)


class RunProgressBar(Callback):
    """One progress bar over a whole training call: every batch of every epoch, with ETA.

    skorch's :class:`~skorch.callbacks.ProgressBar` starts a new bar at every epoch, so
    the time left is the epoch's, not the fit's. This bar's total is the call's epochs
    times the batches per epoch (``ceil(n_samples / batch_size)``); it shows the epoch in
    progress and the latest values of ``postfix_keys``, and is written to stderr.

    Parameters
    ----------
    postfix_keys : list of str, default=None
        Batch-level history keys shown beside the bar; ``['train_loss']`` by default.
    """

    def __init__(self, postfix_keys=None):
        self.postfix_keys = postfix_keys

    def on_train_begin(self, net, **kwargs):
        """Close a bar a failed call left open; the next epoch opens this call's."""
        self._close()

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        """Open the call's bar at its first epoch, once the number of epochs is known."""
        if getattr(self, "pbar_", None) is None:
            # SeededNet.fit_loop notes the call's epochs; another net runs max_epochs.
            epochs = getattr(net, "epochs_planned_", None) or net.max_epochs
            batch_size = net.get_params().get("iterator_train__batch_size", net.batch_size)
            batches = 0 if dataset_train is None else math.ceil(len(dataset_train) / batch_size)
            self.pbar_ = tqdm(total=epochs * batches, unit="batch", dynamic_ncols=True)
            self.first_epoch_ = len(net.history)
        self.pbar_.set_description(f"epoch {len(net.history) - self.first_epoch_ + 1}")

    def on_batch_end(self, net, training=True, **kwargs):
        """Advance the bar by one training batch."""
        if not training or getattr(self, "pbar_", None) is None:
            return
        postfix = {}
        for key in self.postfix_keys or ["train_loss"]:
            try:
                postfix[key] = net.history[-1, "batches", -1, key]
            except KeyError:
                pass
        self.pbar_.set_postfix(postfix, refresh=False)
        self.pbar_.update()

    def on_train_end(self, net, **kwargs):
        """Close the bar, left at the batches done when training stopped early."""
        self._close()

    def _close(self):
        if getattr(self, "pbar_", None) is not None:
            self.pbar_.close()
        self.pbar_ = None

    def __getstate__(self):
        # A tqdm bar holds a stream and a lock: it is not pickled.
        state = self.__dict__.copy()
        state.pop("pbar_", None)
        return state


class SamplerWarning(UserWarning):
    """The PCD sampler looks unhealthy: a runaway energy gap, or chains that do not move.

    Issued at most once per kind and fit by :class:`SamplerMonitor`, and at each rollback
    by :class:`SamplerRollback`: default callbacks of every estimator's training by
    persistent contrastive divergence.

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


def gaps_since_rollback(history):
    """The epoch energy gaps recorded since the last :class:`SamplerRollback`, oldest first.

    Epochs that record no gap (cut short by an interrupt, or a mixture's clustering stage)
    are passed over; the epoch that rolled back and those before it are not counted.
    """
    gaps = []
    for epoch in history:
        if "sampler_rollback" in epoch:
            gaps = []
        elif "energy_gap" in epoch:
            gaps.append(epoch["energy_gap"])
    return gaps


def gap_ran_away(history, gap_limit, patience):
    """Whether the last ``patience`` measured epoch gaps all exceed ``gap_limit``."""
    recent = gaps_since_rollback(history)[-patience:]
    return len(recent) == patience and all(abs(gap) > gap_limit for gap in recent)


class SamplerMonitor(Callback):
    """Warn, once per fit, when the per-epoch diagnostics say the sampler is not keeping up.

    Reads ``energy_gap`` and ``chain_displacement`` from the epoch's history and issues a
    :class:`SamplerWarning` naming the setting to change. A gap beyond the limit must last
    ``patience`` epochs in a row: one epoch's excursion that the chains then catch up with
    is common early in training and is no runaway. An epoch that :class:`SamplerRollback`
    undid is not counted, nor are the epochs before it.

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
        patience=GAP_PATIENCE,
    ):
        self.gap_limit = gap_limit
        self.stuck_displacement = stuck_displacement
        self.patience = patience

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.warned_ = set()

    def on_epoch_end(self, net, **kwargs):
        epoch = net.history[-1]
        if "energy_gap" not in epoch or "sampler_rollback" in epoch:
            # An epoch without sampling (interrupted, or a mixture's clustering stage), or
            # one that SamplerRollback undid and has warned of.
            return
        gap, displacement = epoch["energy_gap"], epoch["chain_displacement"]
        if gap_ran_away(net.history, self.gap_limit, self.patience):
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


def copy_training_state(net, epoch):
    """What a rollback to the end of ``epoch`` restores: copies of the module's weights,
    the optimizer's state and the moving averages of the weights the net keeps, if any
    (its ``weight_averages`` name them)."""
    return {
        "epoch": epoch,
        "module": copy.deepcopy(net.module_.state_dict()),
        "optimizer": copy.deepcopy(net.optimizer_.state_dict()),
        "weight_averages": {
            name: copy.deepcopy(getattr(net, name, None)) for name in net.weight_averages
        },
    }


def restore_training_state(net, state):
    """Put back what :func:`copy_training_state` copied."""
    net.module_.load_state_dict(state["module"])
    net.optimizer_.load_state_dict(state["optimizer"])
    for name, average in state["weight_averages"].items():
        if getattr(net, name, None) is not None:
            # The epochs undone leave the moving average too.
            setattr(net, name, copy.deepcopy(average))


class SamplerRollback(Callback):
    """Take PCD back to its last healthy epoch when the energy gap runs away.

    At the end of every epoch in which each batch kept ``|E(data) - E(model)|`` within
    ``gap_limit``, keeps a copy of the module's weights, the optimizer's state, the replay
    buffer's chains and the moving average of the weights, if any. When the epoch gaps have
    exceeded ``gap_limit`` for ``patience`` epochs in a row (:class:`SamplerMonitor`'s
    rule), restores that copy, multiplies the net's learning rate by ``lr_factor`` from
    there on, records the epoch it went back to as ``sampler_rollback`` in this epoch's
    history and issues a :class:`SamplerWarning`. The random draws go on from where they
    are, so the retry differs from the run that broke down. At most ``max_rollbacks`` in a
    net's life; after them a runaway goes on, and :class:`SamplerMonitor` warns of it.

    A runaway does not end by itself: on 60,000 Fashion-MNIST images, one fit's gap went
    from -0.01 to -190 within an epoch and then stayed at the energy penalty's fixed
    point, the data's energies near ``-1 / (2 energy_l2)`` and the chains' near
    ``+1 / (2 energy_l2)``, for every later epoch. The epochs rolled back still count
    towards the call's epochs.

    Parameters
    ----------
    gap_limit : float, default=10.0
        Largest healthy ``|E(data) - E(model)|``, in energy units.
    patience : int, default=2
        Consecutive epochs beyond ``gap_limit`` that make a runaway.
    lr_factor : float, default=0.5
        Factor of the learning rate at each rollback.
    max_rollbacks : int, default=3
        Rollbacks in the net's life.
    """

    def __init__(
        self, gap_limit=ENERGY_GAP_WARNING, patience=GAP_PATIENCE, lr_factor=0.5, max_rollbacks=3
    ):
        self.gap_limit = gap_limit
        self.patience = patience
        self.lr_factor = lr_factor
        self.max_rollbacks = max_rollbacks

    def initialize(self):
        self.snapshot_ = None
        self.rollbacks_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        epoch = net.history[-1]
        if "energy_gap" not in epoch or getattr(net, "replay_buffer_", None) is None:
            return  # no sampling this epoch: nothing to judge, nothing new to keep
        batch_gaps = [batch["energy_gap"] for batch in epoch["batches"] if "energy_gap" in batch]
        if batch_gaps and max(abs(gap) for gap in batch_gaps) <= self.gap_limit:
            self.snapshot_ = {
                **copy_training_state(net, epoch["epoch"]),
                "chains": net.replay_buffer_.samples.detach().clone(),
            }
            return
        if (
            self.snapshot_ is None
            or self.rollbacks_ >= self.max_rollbacks
            or not gap_ran_away(net.history, self.gap_limit, self.patience)
        ):
            return
        restore_training_state(net, self.snapshot_)
        net.replay_buffer_.samples = self.snapshot_["chains"].clone()
        old_lr = net.lr
        net.lr = old_lr * self.lr_factor
        for group in net.optimizer_.param_groups:
            group["lr"] = net.lr
        self.rollbacks_ += 1
        net.history.record("sampler_rollback", self.snapshot_["epoch"])
        warnings.warn(
            f"The energy gap E(data) - E(model) reached {epoch['energy_gap']:+.3g} in epoch "
            f"{epoch['epoch']} and stayed beyond {self.gap_limit:g} for {self.patience} "
            f"epochs: training went back to the end of epoch {self.snapshot_['epoch']} "
            f"(weights, optimizer and chains) and goes on at learning rate {net.lr:.3g} "
            f"instead of {old_lr:.3g} (rollback {self.rollbacks_} of at most "
            f"{self.max_rollbacks}).",
            SamplerWarning,
            stacklevel=2,
        )

    def __getstate__(self):
        # The copy is for this process's training only: a pickled net need not carry
        # a second set of weights and chains.
        state = self.__dict__.copy()
        state["snapshot_"] = None
        return state


class PlacementAfterEpoch(Callback):
    """Once in a net's life, at the end of epoch ``after_epoch``, act on the training data.

    Keeps the first training call's X and y from the start of training, puts the module
    in evaluation mode and hands them to :meth:`place` at the end of that epoch, and
    drops them when training ends, so that the net pickles without them. The mixtures' placements
    (:class:`MixtureMeansSeeding`, and the VAE's
    :class:`~sklearn_cebm._training.vae_nets.MixturePriorSeeding`) extend it.

    Parameters
    ----------
    after_epoch : int, default=1
        The epoch, counted from the net's first, at whose end :meth:`place` runs.
    """

    def __init__(self, after_epoch=1):
        self.after_epoch = after_epoch

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.training_data_, self.training_targets_ = X, y

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) != self.after_epoch or self.training_data_ is None:
            return
        net.module_.eval()
        self.place(net, self.training_data_, self.training_targets_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # The net is pickled with its callbacks: keep no reference to the data.
        self.training_data_ = self.training_targets_ = None

    def __getstate__(self):
        # A checkpoint pickles the net in the middle of training: without the data too.
        state = dict(self.__dict__)
        state["training_data_"] = state["training_targets_"] = None
        return state

    def place(self, net, X, y=None):
        """What to do with the trained ``net`` and its training data ``X`` and targets
        ``y``; subclasses say."""
        raise NotImplementedError


class MixtureMeansSeeding(PlacementAfterEpoch):
    """Place a mixture bias's component means on the data's codes after an epoch.

    The evidence of component ``l`` is, up to a factor that does not depend on ``l``, the
    density of ``N(mu_l, sigma_l**2 - 1 / (2 t_2(x)))`` at the code
    ``c(x) = t_1(x) / (-2 t_2(x))`` (the bias's ``statistic_means``), so means placed
    among the codes of the training data, once the encoder has trained, give every
    component a share of the data. Given a partition of the training data (the first
    column of the training targets, as the clusterer's net takes them), component ``l``
    is placed at the mean of the codes of part ``l`` and its stds matched to them: the
    M-step of a Gaussian mixture on the codes given the partition; or, with
    ``to_posteriors``, fitted to the posteriors ``p(z | x)`` of part ``l``'s samples
    under the trained mixture, one M-step of EM
    (:meth:`GaussianMixtureBias.fit_to_posteriors`). Otherwise the means are seeded
    among the codes (``choose_seeds``) and each component's stds matched to the codes
    nearest its mean (:meth:`GaussianMixtureBias.place_components`). The
    components are then pulled towards their average until the training data's
    ``max_l p(l | x)`` averages ``1 / sqrt(L)``: halfway, in log-probability, between the
    uniform posterior of equal components and a certain one
    (:meth:`GaussianMixtureBias.pull_towards_centre`). As placed, the components win
    their codes with posteriors of one to float precision, where the clustering
    objective's gradients vanish or explode. It acts once in a net's
    life: at the end of the net's epoch ``after_epoch``.

    Parameters
    ----------
    choose_seeds : callable
        ``choose_seeds(codes, n_seeds) -> ndarray of shape (n_seeds, K)``: the seeds,
        given the float64 codes ``(n, K)`` of the training data (k-means++ for the
        clusterer), where no partition is given. Must be picklable, as the net is.
    after_epoch : int, default=1
        The epoch at whose end the means are placed.
    to_posteriors : bool, default=False
        Given a partition, fit the components to the parts' posteriors rather than to
        their codes: the trained prior is split along the partition instead of replaced
        by components that are, where the codes' factors are weak, many times wider, so
        that the energy stays the one the sampler was trained on. For a stage that keeps
        training the likelihood; the codes' wider components start ``p(y | x)`` nearer
        the partition, which a stage that only learns the partition needs.
    """

    # Rows of the training data on which the average certainty of p(y | x) is measured.
    CERTAINTY_ROWS = 4096
    # A class default, so that nets pickled before the setting existed load without it.
    to_posteriors = False

    def __init__(self, choose_seeds, after_epoch=1, to_posteriors=False):
        super().__init__(after_epoch)
        self.choose_seeds = choose_seeds
        self.to_posteriors = to_posteriors

    def place(self, net, X, y=None):
        """Place the components on X's parts (their codes or posteriors), or among its codes.

        ``y``: None, or an array whose first column holds each row's part in a partition
        of X (negative: none given).
        """
        module = net.module_
        statistics = map_batches(
            module.sufficient_statistics, X, INFERENCE_BATCH_SIZE, torch.device(net.device)
        )
        codes, code_variances = module.bias.statistic_means_variances(statistics)
        means = module.bias.means.detach().cpu().numpy().copy()
        labels = None if y is None else np.asarray(y)[:, 0]
        if labels is not None and labels.min() >= 0:
            parts = np.unique(labels)
            n_seeds = len(parts)
            members = torch.as_tensor(labels)
            if self.to_posteriors:
                module.bias.fit_to_posteriors(statistics, members)
            else:
                for part in parts:
                    means[part] = codes[members == part].mean(dim=0).numpy()
                module.bias.place_components(means, codes, code_variances, members=members)
        else:
            n_seeds = min(len(means), len(codes))
            means[:n_seeds] = self.choose_seeds(codes.numpy().astype(np.float64), n_seeds)
            module.bias.place_components(means, codes, code_variances)
        n_clusters = len(means)
        # With fewer rows than components some stay where they were, unplaced: the pull
        # would move those too.
        if n_seeds == n_clusters > 1:
            # Evenly spaced rows: enough to measure the average certainty, with no draw.
            rows = np.unique(np.linspace(0, len(codes) - 1, self.CERTAINTY_ROWS).astype(int))
            module.bias.pull_towards_centre(codes[rows], code_variances[rows], n_clusters**-0.5)
