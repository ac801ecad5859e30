"""Training a mixture bias to cluster: the likelihood first, then the clusters.

Knows torch and skorch, not scikit-learn. :class:`NeighbourClusteringMixin` adds a second
stage to an energy net (:class:`~sklearn_cebm._training.pcd_net.PCDNet` or
:class:`~sklearn_cebm._training.nets.DSMNet`) whose module has a mixture bias
(:class:`~sklearn_cebm._core.biases.GaussianMixtureBias`): the first
``likelihood_epochs`` epochs train the energy by the net's own objective, and every later
update trains the encoder and the mixture either to give each sample the cluster a
partition of the data gives it, or, with no partition, so that near neighbours share a
cluster and the clusters are used evenly. Both come with the data: row i of the ``y``
given to ``partial_fit`` holds sample i's label in the partition (or
``NO_PARTITION``), then the row indices of its nearest neighbours in the same call's
``X``.
"""

import copy
import math
import warnings

import torch
from skorch.dataset import unpack_data

from .._core.losses import neighbour_consistency_loss
from .._core.precision import float32_products
from .._core.weight_average import WeightAverage
from .callbacks import SamplerWarning, copy_training_state, restore_training_state
from .nets import DSMNet
from .pcd_net import PCDNet

__all__ = ["ClusteringDSMNet", "ClusteringPCDNet", "NeighbourClusteringMixin"]


class NeighbourClusteringMixin:
    """The clustering stage of a mixture bias, added to an energy net.

    From epoch ``likelihood_epochs + 1`` on, updates run at the learning rate
    ``clustering_lr``; earlier epochs run the net's own training step at ``lr``. Given a
    partition, each update descends the cross-entropy of ``p(y | x)`` against the batch's
    labels smoothed by ``PARTITION_LABEL_SMOOTHING`` (the label's cluster gets
    ``1 - eps + eps / L``, every other ``eps / L``; Szegedy et al., 2016), recorded per
    epoch in ``history`` as ``partition_nll``. Against hard labels the optimum is at
    infinite evidence gaps, and the conv net's evidences ran away on the digits after
    about 1,500 updates (the cross-entropy rose from 0.005 to 1e12, NMI 0.85 to 0.09);
    smoothed, the optimum is at log-odds of ``log((1 - eps + eps / L) / (eps / L))``. A
    batch whose cross-entropy is non-finite or above ``DIVERGED_PARTITION_NLL`` times
    ``log L`` (the uniform guess's), or an epoch whose mean is above ``log L`` after an
    epoch below it, has run away: the stage goes back to the weights and optimizer state
    of its last healthy epoch (or to its start), halves ``clustering_lr`` from there on,
    and records the epoch it went back to as ``clustering_rollback``; after
    ``MAX_CLUSTERING_ROLLBACKS`` the next runaway sets the step to 0, so that the model
    keeps its last healthy weights, and warns
    (:class:`~sklearn_cebm._training.callbacks.SamplerWarning`). On small data, with settings for
    a quick try (50 blobs, 8 latent dimensions, batches of 32), the cross-entropy crept
    from 0.3 to 3-7 late in the stage's 2,000 updates (1,000 epochs) for one seed of
    three, and a batch's spiked past 100 times log L in scikit-learn's estimator checks.
    The step rises linearly over the first ``CLUSTERING_WARMUP_SHARE`` of the stage's
    ``clustering_stage_updates`` (Adam starts the stage with fresh moments; at a step of
    1e-3 without the warm-up, 60,000 MNIST-like digits' cross-entropy averaged 9 over the
    stage's first epoch and 42-81 over the others), and the stage's statistics are
    computed in float32, as inference computes them, whatever the model's
    ``compute_dtype``. Without a partition, each update draws one of the listed
    neighbours of every sample of the batch and
    descends ``neighbour_consistency_loss(log p(y | x), log p(y | x'))`` plus the bias's
    balance term (:meth:`GaussianMixtureBias.balance_penalty`), recorded as
    ``consistency``.

    Without a partition, a cluster that no sample of the last ``RELOCATION_WINDOW``
    updates' batches chose (the argmax of ``p(y | x)``) is empty, as k-means would say,
    and is relocated: the cluster the most samples chose is split in two along its principal axis
    (:meth:`GaussianMixtureBias.split_component`), and the empty one takes one half.
    ``p(y | x)`` of a mixture in many dimensions saturates, so that neither term has a
    gradient that could bring an emptied cluster back; the split gives the balance term
    an unsaturated pair to part where the data crowd. Relocation happens in the first
    ``relocation_updates`` updates of the stage only, so that the clusters settle after
    it. Each update records how many it relocated in the history's batches as
    ``relocations``.

    The density the stage leaves is kept apart: the weights of the likelihood stage's
    updates are averaged (``DENSITY_EMA_DECAY``, as
    :class:`~sklearn_cebm._core.weight_average.WeightAverage` averages) and, when the
    stage begins, a frozen copy of the module with those weights becomes
    ``density_module_``, the model of ``p(x)`` (a single Gaussian bias, as trained). The
    clustering stage reshapes the energy for ``p(y | x)`` only, and on the digits SGLD on
    its ``E(x, y = l)`` drew images that a classifier of the real digits gave the
    majority class of cluster l for 5-7% of them, where ``p(x) p(y = l | x)`` with this
    density gave 76-85% (:class:`~sklearn_cebm._core.model.ConditionalEnergy`). The
    average leaves training's trajectory as it was.

    Parameters
    ----------
    likelihood_epochs : int
        Epochs of the net's own objective before the clustering stage.
    clustering_lr : float
        Adam's step size in the clustering stage.
    clustering_stage_updates : int, default=0
        Updates of the whole clustering stage, over which its step is warmed up (the
        estimator sets it); 0 warms up nothing.
    relocation_updates : int, default=0
        Updates at the start of the clustering stage in which empty clusters are
        relocated; 0 never relocates.
    clustering_likelihood : bool, default=False
        Begin each clustering update with the net's own update, its loss and gradients
        divided by the input's dimension D, so that the stage descends
        ``-log p(x) / D`` beside the clustering terms; the chains restart from the chain
        start when the stage begins. Undivided, the likelihood outweighed the
        cross-entropy and flattened ``p(y | x)`` (the digits' conv net, 4 of 10 clusters
        used).
    **kwargs
        Passed to the energy net.
    """

    # Share of each partition label's probability spread evenly over the clusters.
    PARTITION_LABEL_SMOOTHING = 0.1
    # partition_nll above this many times log L (the uniform guess's) has diverged.
    DIVERGED_PARTITION_NLL = 100
    # Runaways of the partition's cross-entropy undone at half the step; the next one
    # stops the stage.
    MAX_CLUSTERING_ROLLBACKS = 3
    # The label in the targets' first column that says no partition was given.
    NO_PARTITION = -1
    # Updates whose batches must all leave a cluster unchosen for it to count as empty.
    RELOCATION_WINDOW = 50
    # Rows of the training data whose codes a relocation splits: enough for the principal
    # axis of one cluster's codes, few enough to cost less than a few updates.
    RELOCATION_ROWS = 4096
    # A class default, so that nets pickled before the setting existed load without it.
    clustering_likelihood = False
    # The step size of the clustering updates rises linearly over this share of the
    # stage's clustering_stage_updates (see the class's Notes).
    CLUSTERING_WARMUP_SHARE = 0.1
    # A class default, so that nets pickled before the setting existed load without it.
    clustering_stage_updates = 0
    # Decay of the likelihood stage's average that becomes density_module_: CEBMEncoder's
    # default ema_decay, whose samples a classifier of the real digits spread over all
    # ten classes, where the last update's weights drew one digit class only.
    DENSITY_EMA_DECAY = 0.99
    density_module_ = None

    def __init__(
        self,
        *args,
        likelihood_epochs,
        clustering_lr,
        relocation_updates=0,
        clustering_likelihood=False,
        clustering_stage_updates=0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.clustering_stage_updates = clustering_stage_updates
        self.likelihood_epochs = likelihood_epochs
        self.clustering_lr = clustering_lr
        self.relocation_updates = relocation_updates
        self.clustering_likelihood = clustering_likelihood

    def in_clustering_stage(self):
        """Whether the current epoch (the last in ``history``) is a clustering epoch."""
        return len(self.history) > self.likelihood_epochs

    @property
    def divergence_advice(self):
        """What to change when training diverges: in the clustering stage, its step."""
        if self.in_clustering_stage():
            if self.clustering_likelihood:
                # The sampler runs on an energy the cross-entropy reshapes too (with the
                # components fitted to the codes rather than to the posteriors, the
                # model samples' energy passed the limit with the MLP on all of
                # Fashion-MNIST).
                return "Lower clustering_learning_rate, or set clustering_likelihood=False"
            return "Lower clustering_learning_rate"
        return super().divergence_advice

    def initialize(self):
        """Initialise the energy net, with no density kept yet."""
        super().initialize()
        self.density_average_ = None
        self.density_module_ = None
        return self

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Take a likelihood update's weights into the density's average."""
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        if not training or self.in_clustering_stage():
            return
        if getattr(self, "density_average_", None) is None:
            self.density_average_ = WeightAverage(self.DENSITY_EMA_DECAY)
        self.density_average_.update(self.module_)

    def _keep_density(self):
        """Freeze the likelihood stage's averaged weights as ``density_module_``."""
        average = getattr(self, "density_average_", None)
        self.density_average_ = None
        if average is None or average.weights is None:
            return  # no likelihood update to average: the module is its own density
        density = copy.deepcopy(self.module_)
        # All parameters, the bias's too: the means placed since are not the density's.
        average.copy_to(density)
        self.set_density_module(density)

    def set_density_module(self, density):
        """Keep ``density``, a module like ``module_``, frozen, as ``density_module_``."""
        # Past skorch's guard on module attributes, which is for the modules initialize
        # builds and the optimizer trains: this one is neither, and device_attributes
        # carry it across devices and pickles.
        object.__setattr__(self, "density_module_", density.eval().requires_grad_(False))

    def reseed(self, seed):
        """Draw the rest of training from ``seed``, so that copies of one net then part."""
        self.random_generator_.manual_seed(seed)
        self.__dict__.pop("_device_generator", None)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Keep the call's data, which the neighbour indices in ``y`` point into."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.neighbour_data_ = torch.as_tensor(X)
        if self.in_clustering_stage():
            # A call that continues the stage can roll back to where it began.
            self.clustering_best_nll_ = math.inf
            self._keep_clustering_snapshot(epoch=len(self.history))

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # The net is pickled with the estimator: keep no reference to the data, nor a
        # second copy of the weights.
        self.neighbour_data_ = None
        snapshot = self.__dict__.pop("clustering_snapshot_", None)
        learned_a_partition = math.isfinite(getattr(self, "clustering_best_nll_", math.inf))
        if snapshot is not None and learned_a_partition and snapshot["epoch"] < len(self.history):
            # The stage ends on its epoch of least cross-entropy against the partition:
            # the model that learned it best (later epochs crept up on small data).
            restore_training_state(self, snapshot)
            self.history.record("clustering_best_epoch", snapshot["epoch"])
        super().on_train_end(net, X=X, y=y, **kwargs)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Start the epoch with the step size of its stage, and the clustering stage afresh."""
        super().on_epoch_begin(
            net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs
        )
        if len(self.history) == self.likelihood_epochs + 1:
            # A new objective: Adam's moment estimates of the likelihood's gradients would
            # scale its first steps by the wrong magnitudes.
            self.initialize_optimizer()
            self._keep_density()
            self.clustering_updates_done_ = 0
            self.chosen_counts_ = None
            self.clustering_rollbacks_ = 0
            self.clustering_best_nll_ = math.inf
            self._keep_clustering_snapshot(epoch=self.likelihood_epochs)
            if self.clustering_likelihood and hasattr(self, "replay_buffer_"):
                # The components' placement changed the energy: the chains of the old
                # one are no sample of it (with components fitted to the codes, their
                # energy reached 2.7e6 on Fashion-MNIST's MLP). They start afresh, as
                # the likelihood stage did.
                self.replay_buffer_ = None
        lr = self.clustering_lr if self.in_clustering_stage() else self.lr
        for group in self.optimizer_.param_groups:
            group["lr"] = lr

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Keep a healthy clustering epoch's weights; undo an epoch that ran away."""
        super().on_epoch_end(
            net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs
        )
        epoch = self.history[-1]
        if not self.in_clustering_stage() or "clustering_rollback" in epoch:
            return
        losses = [batch["partition_nll"] for batch in epoch["batches"] if "partition_nll" in batch]
        if not losses:
            return  # no partition: the neighbour stage has nothing to roll back to
        loss = sum(losses) / len(losses)
        uniform = math.log(max(len(self.module_.bias.means), 2))
        if loss > uniform and self.clustering_best_nll_ < uniform:
            self._roll_back_clustering(
                f"partition_nll {loss:.3g} over the epoch, above the uniform guess's "
                f"{uniform:.3g} after {self.clustering_best_nll_:.3g}"
            )
        elif loss <= self.clustering_best_nll_:
            self.clustering_best_nll_ = loss
            self._keep_clustering_snapshot(epoch=len(self.history))

    def _keep_clustering_snapshot(self, epoch):
        """Copy what a rollback of the clustering stage to the end of ``epoch`` restores."""
        self.clustering_snapshot_ = copy_training_state(self, epoch)

    def _roll_back_clustering(self, what):
        """Restore the last healthy clustering epoch and halve ``clustering_lr``; once the
        rollbacks are spent, keep that epoch's weights for the rest of the stage."""
        snapshot = getattr(self, "clustering_snapshot_", None)
        if snapshot is None:
            raise self.diverged(what)
        restore_training_state(self, snapshot)
        # The optimizer's step after this update skips parameters without a gradient.
        self.optimizer_.zero_grad(set_to_none=True)
        self.clustering_rollbacks_ = getattr(self, "clustering_rollbacks_", 0) + 1
        self.history.record("clustering_rollback", snapshot["epoch"])
        old_lr = self.clustering_lr
        if self.clustering_rollbacks_ <= self.MAX_CLUSTERING_ROLLBACKS:
            # Handled: a smaller step goes on from a healthy state, and history_ says so.
            self.clustering_lr = old_lr / 2
        else:
            # Smaller steps ran away again: the partition was learned as far as this
            # model can on these data, and the stage ends where it was best.
            self.clustering_lr = 0.0
            warnings.warn(
                f"The clustering stage ran away ({what}) after "
                f"{self.MAX_CLUSTERING_ROLLBACKS} rollbacks to smaller steps: it went back "
                f"to the end of epoch {snapshot['epoch']} and keeps those weights for the "
                "rest of the stage (history_'s clustering_rollback records each rollback).",
                SamplerWarning,
                stacklevel=2,
            )
        for group in self.optimizer_.param_groups:
            group["lr"] = self.clustering_lr

    def train_step_single(self, batch, **fit_params):
        """The net's own update in the likelihood stage; a clustering update after it."""
        if not self.in_clustering_stage():
            return super().train_step_single(batch, **fit_params)
        self._schedule_clustering_lr()
        likelihood = None
        if self.clustering_likelihood:
            likelihood = self._likelihood_per_dimension_step(batch, **fit_params)
        self._set_training(True)
        x, targets = unpack_data(batch)
        targets = torch.as_tensor(targets).cpu()
        labels, neighbours = targets[:, 0], targets[:, 1:]
        x = x.to(self.device, torch.float32)
        # A partition is given for all samples or for none (NO_PARTITION). In float32, as
        # predict evaluates p(y | x).
        with float32_products(self.module_):
            if labels[0] != self.NO_PARTITION:
                step = self._partition_step(x, labels)
            else:
                step = self._consistency_step(x, neighbours)
        if likelihood is not None:
            step["loss"] = step["loss"] + likelihood
        return step

    def clustering_lr_factor(self, update, n_updates):
        """The share of ``clustering_lr`` of update ``update`` (from 1) of ``n_updates``:
        a linear warm-up over the first ``CLUSTERING_WARMUP_SHARE`` of them, then 1; 1
        throughout for an unknown number (0)."""
        if n_updates <= 0:
            return 1.0
        warmup = max(1, round(self.CLUSTERING_WARMUP_SHARE * n_updates))
        return min(1.0, update / warmup)

    def _schedule_clustering_lr(self):
        """Count this clustering update and set the optimizer's step for it: Adam reads
        the step after the closure that computes the gradients. Updates beyond the
        stage's (a warm start's) warm up again."""
        done = getattr(self, "clustering_updates_done_", 0) + 1
        self.clustering_updates_done_ = done
        total = self.clustering_stage_updates
        factor = self.clustering_lr_factor((done - 1) % total + 1 if total else done, total)
        for group in self.optimizer_.param_groups:
            group["lr"] = self.clustering_lr * factor

    def _likelihood_per_dimension_step(self, batch, **fit_params):
        """The net's own update, its loss and gradients divided by the input's dimension.

        Runs first in the update, on gradients skorch has just zeroed, so that scaling
        them scales the likelihood's alone. Returns the scaled loss.
        """
        loss = super().train_step_single(batch, **fit_params)["loss"]
        dimension = unpack_data(batch)[0][0].numel()
        for parameter in self.module_.parameters():
            if parameter.grad is not None:
                parameter.grad.div_(dimension)
        return loss / dimension

    def _partition_step(self, x, labels):
        """Descend ``-log p(y = label | x)``, the cross-entropy of the partition."""
        log_responsibilities = self.module_.bias.log_responsibilities(
            self.module_.sufficient_statistics(x)
        )
        loss = torch.nn.functional.cross_entropy(
            log_responsibilities,
            labels.to(self.device),
            label_smoothing=self.PARTITION_LABEL_SMOOTHING,
        )
        # Guessing uniformly costs log L; a hundred times that is a posterior that
        # confidently contradicts the partition, as when the evidences run away.
        n_clusters = max(log_responsibilities.shape[-1], 2)
        limit = self.DIVERGED_PARTITION_NLL * math.log(n_clusters)
        if not torch.isfinite(loss) or loss.item() > limit:
            self._roll_back_clustering(f"partition_nll {loss.item():.3g} above {limit:.3g}")
            return {"loss": loss.detach(), "y_pred": log_responsibilities.detach()}
        loss.backward()
        self.history.record_batch("partition_nll", loss.item())
        return {"loss": loss, "y_pred": log_responsibilities}

    def _consistency_step(self, x, neighbours):
        """Descend the neighbour consistency and balance terms; relocate empty clusters."""
        # One neighbour per sample, drawn afresh at every update: over the epochs each
        # sample is pulled towards all of its neighbours, at the cost of one forward pass.
        pick = torch.randint(
            neighbours.shape[1], (neighbours.shape[0],), generator=self.random_generator_
        )
        rows = neighbours[torch.arange(neighbours.shape[0]), pick]
        x_neighbour = self.neighbour_data_[rows].to(self.device, torch.float32)
        bias = self.module_.bias
        # One forward pass over samples and neighbours together: the encoder has no layer
        # that mixes rows, and one pass of twice the rows is about 15% faster per update.
        both = bias.log_responsibilities(
            self.module_.sufficient_statistics(torch.cat([x, x_neighbour]))
        )
        log_responsibilities, neighbour_log_responsibilities = both.split(len(x))
        consistency = neighbour_consistency_loss(
            log_responsibilities, neighbour_log_responsibilities
        )
        loss = consistency
        if bias.cluster_balance:
            loss = loss + bias.balance_penalty(log_responsibilities)
        if not torch.isfinite(loss):
            raise self.diverged("non-finite clustering loss")
        loss.backward()
        self.history.record_batch("consistency", consistency.item())
        relocated = self._relocate_empty_clusters(log_responsibilities)
        self.history.record_batch("relocations", relocated)
        return {"loss": loss, "y_pred": log_responsibilities}

    def _relocate_empty_clusters(self, log_responsibilities):
        """Count the batch's chosen clusters; at a window's end, relocate the empty ones.

        Returns the number of clusters relocated. The bias's parameters change in place
        after this update's gradients were computed, before the optimizer steps: the
        moved components take at most one step from their old place's gradient.
        """
        done = self.clustering_updates_done_  # counted by _schedule_clustering_lr
        if done > self.relocation_updates:
            return 0
        chosen = torch.bincount(
            log_responsibilities.detach().argmax(dim=-1).cpu(),
            minlength=log_responsibilities.shape[-1],
        )
        counts = getattr(self, "chosen_counts_", None)
        self.chosen_counts_ = counts = chosen if counts is None else counts + chosen
        if done % self.RELOCATION_WINDOW:
            return 0
        self.chosen_counts_ = None
        empty = torch.nonzero(counts == 0).flatten().tolist()
        if not empty:
            return 0
        statistics = self._relocation_statistics()
        bias = self.module_.bias
        relocated = 0
        for target in empty:
            source = int(counts.argmax())
            if bias.split_component(source, target, statistics):
                counts[target] = counts[source] = counts[source] // 2
                relocated += 1
        return relocated

    def _relocation_statistics(self):
        """Sufficient statistics of up to ``RELOCATION_ROWS`` training rows, drawn at random."""
        data = self.neighbour_data_
        rows = torch.randperm(data.shape[0], generator=self.random_generator_)
        x = data[rows[: self.RELOCATION_ROWS]].to(self.device, torch.float32)
        with torch.no_grad():
            return self.module_.sufficient_statistics(x)


class ClusteringPCDNet(NeighbourClusteringMixin, PCDNet):
    """A :class:`~sklearn_cebm._training.pcd_net.PCDNet` followed by the clustering stage."""

    recorded = (*PCDNet.recorded, "consistency", "partition_nll")
    device_attributes = (*PCDNet.device_attributes, "density_average_", "density_module_")
    weight_averages = (*PCDNet.weight_averages, "density_average_")


class ClusteringDSMNet(NeighbourClusteringMixin, DSMNet):
    """A :class:`~sklearn_cebm._training.nets.DSMNet` followed by the clustering stage."""

    recorded = (*DSMNet.recorded, "consistency", "partition_nll")
    device_attributes = (*DSMNet.device_attributes, "density_average_", "density_module_")
    weight_averages = (*DSMNet.weight_averages, "density_average_")
