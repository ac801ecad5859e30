"""One net trained on several processes at once, on Hugging Face accelerate (skorch.hf).

Knows torch, skorch and accelerate, not scikit-learn. :func:`data_parallel` turns a
fitted-or-initialised net of this package into one that trains on the processes of an
``accelerate.Accelerator`` for the length of a block, and hands it back plain after, so
that what is pickled, loaded and used for inference is the net a one-process fit makes.

What is shared and what is per process, for PCD (the training guide says it to users):

* **Shared**: the weights and the optimizer's state. skorch's ``AccelerateMixin`` wraps
  the module in ``DistributedDataParallel``, which averages the gradients over the
  processes in every backward pass, so every process takes the same step.
* **Per process**: the data (each process draws its own share of every epoch's batches,
  ``accelerate``'s sharded loader), the replay buffer (each holds ``buffer_size /
  n_processes`` chains, so the buffers together are ``buffer_size``), and the random
  draws (chains' noise, restarts, data noise), from a generator of its own. Process 0
  keeps the net's generator, so that one process gives exactly a plain fit.
* **Decided together**: what any process's check or callback decides from a batch must
  be decided by all, or one process raises or rolls back while the others wait in the
  next gradient average forever. The divergence check takes the worst energies over the
  processes, and at each epoch's end the values recorded per batch in ``history`` become
  their means over the processes, so the epoch's means, the sampler's monitor and its
  rollback see the same numbers everywhere (a callback's per-batch hook sees its own
  process's).

At the end of a block every process holds the same net: the weights by construction,
the buffer gathered from the shards (in process order), the generator process 0's.
"""

import contextlib
import functools
import os

import numpy as np
import torch
from skorch.hf import AccelerateMixin
from torch.utils.data import DataLoader

__all__ = ["check_accelerator", "data_parallel"]


def check_accelerator(accelerator):
    """Refuse the accelerator settings that this package's training steps do not follow.

    Raises
    ------
    ValueError
        If the accelerator counts fewer processes than the launcher started (an
        ``Accelerator()`` without ``cpu=True`` on a machine without GPUs), or asks for
        mixed precision (the estimators' ``precision`` sets it, with what must stay in
        float32 kept there) or for gradient accumulation (the steps call ``backward``
        themselves and would not scale the loss).
    """
    mixed = str(getattr(accelerator, "mixed_precision", "no"))
    if mixed not in ("no", "None"):
        raise ValueError(
            f"The accelerator has mixed_precision={mixed!r}; use the estimator's precision "
            "parameter instead and create the Accelerator with mixed_precision='no'."
        )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise ValueError(
            f"The launcher started {launched} processes (WORLD_SIZE) but the accelerator "
            f"counts {accelerator.num_processes}, so each would train a model of its own; "
            "on CPUs create it as Accelerator(cpu=True)."
        )
    steps = getattr(accelerator, "gradient_accumulation_steps", 1)
    if steps != 1:
        raise ValueError(
            f"The accelerator has gradient_accumulation_steps={steps}, which training does "
            "not support; raise batch_size instead (each process takes batch_size rows)."
        )


class DataParallelTraining:
    """What a net adds to :class:`skorch.hf.AccelerateMixin` to train by PCD or DSM.

    Stands left of ``AccelerateMixin`` in the class made by :func:`_data_parallel_class`.
    """

    def _initialize_accelerator(self):
        """skorch's wrapping, of the modules that have weights to train and the optimizers.

        A criterion without weights (the contrastive-divergence loss) stays as it is:
        ``DistributedDataParallel`` refuses a module with nothing to average.
        """
        if self._wrapped_with_accelerator:
            return self
        for name in [*self._modules, *self._criteria]:
            module = getattr(self, name + "_")
            if isinstance(module, torch.nn.Module) and any(
                parameter.requires_grad for parameter in module.parameters()
            ):
                setattr(self, name + "_", self.accelerator.prepare(module))
        for name in self._optimizers:
            optimizer = getattr(self, name + "_")
            if isinstance(optimizer, torch.optim.Optimizer):
                setattr(self, name + "_", self.accelerator.prepare(optimizer))
        self._wrapped_with_accelerator = True
        return self

    def train_step_single(self, batch, **fit_params):
        """The net's own step, not ``AccelerateMixin``'s supervised one."""
        return super(AccelerateMixin, self).train_step_single(batch, **fit_params)

    def on_epoch_end(self, net, **kwargs):
        """Make each batch's recorded values their means over the processes.

        skorch calls the net's hook before the callbacks', so the epoch's means and every
        callback's decision (the sampler's monitor and rollback) rest on the same numbers
        in every process: one exchange per epoch, not per batch.
        """
        batches = self.history[-1]["batches"]
        names = ["train_loss", *self.recorded]
        local = torch.tensor(
            [[batch.get(name, np.nan) for name in names] for batch in batches],
            dtype=torch.float64,
            device=self.accelerator.device,
        ).reshape(len(batches), len(names))
        # nanmean: a value a batch did not record stays unrecorded.
        gathered = self.accelerator.gather(local.unsqueeze(0))
        means = gathered.reshape(-1, len(batches), len(names)).nanmean(dim=0).tolist()
        for batch, row in zip(batches, means, strict=True):
            for name, mean in zip(names, row, strict=True):
                if name in batch:
                    batch[name] = mean
        super().on_epoch_end(net, **kwargs)

    def get_iterator(self, dataset, training=False):
        """The net's loader, its training batches dealt out to the processes in turn.

        ``accelerate``'s ``BatchSamplerShard`` over the loader's batches (every process
        draws the same permutation from the same seed), not ``Accelerator.prepare``: that
        would rebuild the loader and fetch each batch row by row.
        """
        loader = super(AccelerateMixin, self).get_iterator(dataset, training=training)
        if not training or self.accelerator.num_processes == 1:
            return loader
        from accelerate.data_loader import BatchSamplerShard  # the optional dependency

        shard = BatchSamplerShard(
            loader.sampler,
            num_processes=self.accelerator.num_processes,
            process_index=self.accelerator.process_index,
            even_batches=True,
        )
        return DataLoader(loader.dataset, sampler=shard, batch_size=None)

    def _check_energies(self, **energies):
        """The package's divergence check on the worst energies over all processes."""
        if not energies:
            return
        worst = []
        for energy in energies.values():
            largest = energy.detach().abs().max().to(torch.float64)
            worst.append(torch.where(torch.isfinite(largest), largest, torch.inf))
        gathered = self.accelerator.gather(torch.stack(worst).unsqueeze(0))
        overall = gathered.reshape(-1, len(worst)).max(dim=0).values
        super()._check_energies(**{name: overall[i : i + 1] for i, name in enumerate(energies)})

    def sampling_module(self):
        """The module itself, outside the gradient-averaging wrapper: the chains of each
        process are its own, and no weight gradient is taken while they move."""
        return self.accelerator.unwrap_model(self.module_)


@functools.cache
def _data_parallel_class(net_class):
    """``net_class`` with :class:`DataParallelTraining` and skorch's ``AccelerateMixin``."""
    return type(
        f"DataParallel{net_class.__name__}",
        (DataParallelTraining, AccelerateMixin, net_class),
        {"__module__": __name__},
    )


def _process_generator(generator, process_index):
    """A generator of its own for process ``process_index`` > 0, seeded from the shared
    ``generator``'s state without advancing it."""
    probe = torch.Generator().set_state(generator.get_state())
    base = int(torch.randint(2**62, (1,), generator=probe))
    seed = np.random.SeedSequence([base, process_index]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(seed))


def _shard_size(buffer_size, n_processes):
    return max(1, -(-buffer_size // n_processes))


def _shard(samples, buffer_size, accelerator):
    """This process's chains of ``samples``: the next ``_shard_size`` rows in process
    order, wrapping around, so that every shard has the same size for the gather."""
    size = _shard_size(buffer_size, accelerator.num_processes)
    start = accelerator.process_index * size
    rows = torch.arange(start, start + size, device=samples.device) % samples.shape[0]
    return samples[rows]


def _enter(net, accelerator):
    """Make ``net`` train on the accelerator's processes; returns what :func:`_leave` needs."""
    plain_class = type(net)
    index, n_processes = accelerator.process_index, accelerator.num_processes
    saved = {"class": plain_class, "buffer_size": getattr(net, "buffer_size", None)}
    net.__class__ = _data_parallel_class(plain_class)
    net.accelerator = accelerator
    net.unwrap_after_train = True
    net._wrapped_with_accelerator = False
    if index > 0:
        saved["generator"] = net.random_generator_
        net.random_generator_ = _process_generator(net.random_generator_, index)
        net.__dict__.pop("_device_generator", None)
    if saved["buffer_size"] is not None:
        net.buffer_size = _shard_size(saved["buffer_size"], n_processes)
        buffer = getattr(net, "replay_buffer_", None)
        if buffer is not None:  # a continued training: each process takes its share
            buffer.samples = _shard(buffer.samples, saved["buffer_size"], accelerator)
    net._initialize_accelerator()
    return saved


def _gather_buffer(net, accelerator, buffer_size):
    """Every process's chains, in process order, as the net's buffer on each."""
    buffer = getattr(net, "replay_buffer_", None)
    if buffer is not None:
        buffer.samples = accelerator.gather(buffer.samples.contiguous())[:buffer_size]


def _leave(net, accelerator, saved):
    """Hand ``net`` back plain, the same on every process."""
    net._unwrap_accelerator()
    for name in net._optimizers:
        optimizer = getattr(net, name + "_")
        setattr(net, name + "_", getattr(optimizer, "optimizer", optimizer))
    if saved["buffer_size"] is not None:
        _gather_buffer(net, accelerator, saved["buffer_size"])
        net.buffer_size = saved["buffer_size"]
    state = net.random_generator_.get_state() if accelerator.process_index == 0 else None
    if "generator" in saved:
        net.random_generator_ = saved["generator"]
        net.__dict__.pop("_device_generator", None)
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        state = broadcast_object_list([state], from_process=0)[0]
    net.random_generator_.set_state(state)
    for name in ("accelerator", "unwrap_after_train", "_wrapped_with_accelerator"):
        net.__dict__.pop(name, None)
    net.__class__ = saved["class"]


@contextlib.contextmanager
def data_parallel(net, accelerator):
    """Train ``net`` on the processes of ``accelerator`` inside the block.

    Parameters
    ----------
    net : SeededNet
        An initialised net of this package (``PCDNet``, ``DSMNet`` or a subclass).
    accelerator : accelerate.Accelerator
        Its processes (``accelerate launch --num_processes N``) each run the block with
        the same data and settings.

    Yields
    ------
    net : SeededNet
        The same object, training data-parallel until the block ends; then a plain net
        again, the same on every process, also when the block raised.
    """
    check_accelerator(accelerator)
    saved = _enter(net, accelerator)
    try:
        yield net
    finally:
        _leave(net, accelerator, saved)
