"""The PCD update makes no host synchronisation, so that a CUDA graph can capture it.

The update (:meth:`PCDNet.contrastive_divergence_step`) runs under a guard that raises at
any read of a device value or any operator of data-dependent output shape
(``tests/host_sync.py``); the training step around it reads the device twice per batch,
after the update: the divergence check and the diagnostics. The guard works on the CPU,
where nothing waits, by catching the calls that would wait on a GPU.
"""

import copy
import functools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklearn_cebm import CEBMEncoder
from sklearn_cebm._core.sgld import ReplayBuffer, frozen_parameters, langevin_dynamics

from ..conftest import CHEAP_SETTINGS
from ..host_sync import HostSyncError, host_syncs

CASES = {
    "mlp": (CEBMEncoder, {}),
    "conv": (CEBMEncoder, {"image_shape": (1, 8, 8)}),
    "gaussian-start": (CEBMEncoder, {"chain_init": "gaussian", "buffer_reinit_fraction": 0.5}),
}


@functools.cache
def _fitted(case):
    estimator_class, extra = CASES[case]
    settings = {**CHEAP_SETTINGS, **extra, "max_iter": 1, "random_state": 0}
    return estimator_class(**settings).fit(load_digits().data[:128])


def _fitted_net(case):
    """A copy of a fitted estimator's PCD net, and a batch of 32 digits, scaled."""
    extra = CASES[case][1]
    X = load_digits().data[:32]
    net = copy.deepcopy(_fitted(case).net_)
    x = torch.as_tensor(X / 8.0 - 1.0, dtype=torch.float32)
    if "image_shape" in extra:
        x = x.reshape(-1, *extra["image_shape"])
    net.history.new_batch()
    return net, x


@pytest.mark.parametrize("case", CASES)
def test_pcd_update_makes_no_host_sync(case):
    net, x = _fitted_net(case)
    with host_syncs(forbid=True):
        step = net.contrastive_divergence_step(x)
    assert step.loss.requires_grad
    assert all(p.grad is not None for p in net.module_.parameters() if p.requires_grad)


@pytest.mark.parametrize("case", ["mlp", "conv"])
def test_pcd_train_step_reads_the_device_once_per_check(case):
    # The divergence check and the diagnostics: one tolist each, nothing else.
    net, x = _fitted_net(case)
    with host_syncs(forbid=False) as caught:
        net.train_step_single((x, None))
    assert caught == ["Tensor.tolist", "Tensor.tolist"]


def test_host_sync_guard_catches_reads_and_data_dependent_shapes():
    x = torch.linspace(-1.0, 1.0, 5)
    reads = {
        "item": lambda: x.sum().item(),
        "bool": lambda: bool(x.sum() > 0),
        "float": lambda: float(x[0]),
        "tolist": lambda: x.tolist(),
        "cpu": lambda: x.cpu(),
        "mask index": lambda: x[x > 0],
        "mask write": lambda: x.clone().__setitem__(x > 0, 0.0),
        "nonzero": lambda: torch.nonzero(x),
        "unique": lambda: torch.unique(x),
    }
    for name, read in reads.items():
        with pytest.raises(HostSyncError, match="host synchronisation"):
            with host_syncs(forbid=True):
                read()
            pytest.fail(f"{name} was not caught")
    with host_syncs(forbid=True):  # selects and integer indices have static shapes
        torch.where(x > 0, x, 0.0)
        x[torch.tensor([1, 2])]


def _masked_reference_step(net, x_data):
    """The PCD update as written before it was made sync-free: masked writes, reads."""
    generator = net.device_generator()
    x_data = x_data + net.data_noise * torch.randn(x_data.shape, generator=generator)
    buffer = net.replay_buffer_
    n_samples = x_data.shape[0]
    indices = torch.randint(buffer.samples.shape[0], (n_samples,), generator=generator)
    states = buffer.samples[indices]
    restart = torch.rand(n_samples, generator=generator) < buffer.reinit_fraction
    fresh = buffer.start.draw(n_samples, generator)
    states[restart] = fresh[restart]
    with frozen_parameters(net.module_):
        samples = langevin_dynamics(
            net.module_,
            states,
            n_steps=net.sgld_steps,
            step_size=net.sgld_step_size,
            noise_std=net.sgld_noise,
            generator=generator,
        )
    positions = torch.arange(n_samples)
    last = torch.full((buffer.samples.shape[0],), -1, dtype=positions.dtype)
    last = last.scatter_reduce(0, indices, positions, reduce="amax")
    keep = last[indices] == positions
    buffer.samples[indices[keep]] = samples[keep]
    loss = net.get_loss(net.module_(x_data), net.module_(samples), X=x_data, training=True)
    loss.backward()
    return loss


@pytest.mark.parametrize("case", ["mlp", "gaussian-start"])
def test_sync_free_update_equals_the_masked_update_bit_for_bit(case):
    # Same generator state, same weights, same chains: the same loss, gradients and chains.
    net, x = _fitted_net(case)
    generator_state = net.device_generator().get_state()
    chains = net.replay_buffer_.samples.clone()
    net.module_.zero_grad(set_to_none=True)
    expected_loss = _masked_reference_step(net, x)
    expected_grads = [p.grad.clone() for p in net.module_.parameters()]
    expected_chains = net.replay_buffer_.samples.clone()

    net.device_generator().set_state(generator_state)
    net.replay_buffer_.samples.copy_(chains)
    net.module_.zero_grad(set_to_none=True)
    step = net.contrastive_divergence_step(x)

    assert torch.equal(step.loss, expected_loss)
    for parameter, expected in zip(net.module_.parameters(), expected_grads, strict=True):
        assert torch.equal(parameter.grad, expected)
    assert torch.equal(net.replay_buffer_.samples, expected_chains)


def test_replay_buffer_draw_and_update_make_no_host_sync():
    generator = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer.from_noise(16, (3,), reinit_fraction=0.5, generator=generator)
    with host_syncs(forbid=True):
        indices, states = buffer.draw(32, generator)  # 32 of 16: repeats for sure
        buffer.update(indices, states + 1.0)
    # Of repeated indices the last one wins.
    for index in np.unique(indices.numpy()):
        last = np.flatnonzero(indices.numpy() == index)[-1]
        assert torch.equal(buffer.samples[index], states[last] + 1.0)


def test_cuda_graphs_setting_runs_the_eager_update_on_the_cpu():
    net, x = _fitted_net("mlp")
    generator_state = net.device_generator().get_state()
    chains = net.replay_buffer_.samples.clone()
    net.module_.zero_grad(set_to_none=True)
    expected = net.contrastive_divergence_step(x)

    net.device_generator().set_state(generator_state)
    net.replay_buffer_.samples.copy_(chains)
    net.module_.zero_grad(set_to_none=True)
    net.cuda_graphs = True
    step = net.contrastive_divergence_step(x)

    assert "_captured_step" not in vars(net)
    for name in step._fields:
        assert torch.equal(getattr(step, name), getattr(expected, name)), name
