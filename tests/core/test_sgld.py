"""SGLD (Eq. 3), the frozen-weights context and the replay buffer of persistent chains."""

import math
import pickle

import pytest
import torch
from torch import nn

from sklearn_cebm._core.chain_init import GaussianChainInit, UniformChainInit
from sklearn_cebm._core.sgld import (
    ReplayBuffer,
    frozen_parameters,
    langevin_dynamics,
    sample_fresh_chains,
    uniform_noise,
)


def _quadratic_energy(mean, std):
    """E(x) = sum_d (x_d - m_d)**2 / (2 s_d**2): the Gaussian N(m, diag(s**2))."""

    def energy(x):
        return (((x - mean) / std) ** 2 / 2).sum(dim=-1)

    return energy


def _tiny_energy_module(seed):
    module = nn.Sequential(nn.Linear(3, 8), nn.SiLU(), nn.Linear(8, 1), nn.Flatten(0))
    # Overwrite the weights from a private generator: the global one is never seeded.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return module


def test_langevin_dynamics_recovers_gaussian_with_ula_bias():
    # Eq. 3 with step a/2 and noise sqrt(a) on E = (x - m)**2 / (2 s**2) is the linear
    # recursion x' = (1 - a / (2 s**2)) x + a m / (2 s**2) + sqrt(a) N(0, 1). Its stationary
    # mean is exactly m; its variance v solves v = (1 - a / (2 s**2))**2 v + a, so
    # v = s**2 / (1 - a / (4 s**2)): the unadjusted Langevin algorithm's known bias.
    alpha = 0.2
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    std = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64)
    n_chains = 10_000
    generator = torch.Generator().manual_seed(0)
    initial = uniform_noise(n_chains, (3,), generator, "cpu").double()

    # Contraction per step is at most 1 - a / (2 * 1.5**2) = 0.956; after 300 steps the
    # start's influence is below 1e-5 of its size, negligible against sampling error.
    samples = langevin_dynamics(
        _quadratic_energy(mean, std),
        initial,
        n_steps=300,
        step_size=alpha / 2,
        noise_std=math.sqrt(alpha),
        generator=generator,
        bounds=None,
    )

    ula_variance = std**2 / (1 - alpha / (4 * std**2))
    # The chains are independent, so the sample mean has std sqrt(v / n) and the sample
    # variance has relative std sqrt(2 / n) = 1.4%; both tolerances are 5 of those.
    mean_tolerance = 5 * torch.sqrt(ula_variance / n_chains)
    assert ((samples.mean(dim=0) - mean).abs() < mean_tolerance).all()
    relative_error = samples.var(dim=0) / ula_variance - 1
    assert (relative_error.abs() < 5 * math.sqrt(2 / n_chains)).all()
    # The narrowest dimension's bias (25%) is far outside that tolerance: the formula, not
    # the exact s**2, is what the sampler reaches.
    assert samples[:, 0].var() / std[0] ** 2 - 1 > 0.15


def test_langevin_dynamics_clamps_chains_to_bounds():
    generator = torch.Generator().manual_seed(1)
    # A steep pull towards (5, -5, 0) drives the chains against the box.
    energy = _quadratic_energy(torch.tensor([5.0, -5.0, 0.0]), torch.tensor([0.1, 0.1, 0.1]))
    initial = uniform_noise(200, (3,), generator, "cpu")

    samples = langevin_dynamics(
        energy,
        initial,
        n_steps=20,
        step_size=0.01,
        noise_std=0.5,
        generator=generator,
        bounds=(-0.5, 0.75),
    )

    assert samples.min() >= -0.5
    assert samples.max() <= 0.75
    torch.testing.assert_close(samples[:, 0], torch.full((200,), 0.75))
    torch.testing.assert_close(samples[:, 1], torch.full((200,), -0.5))


def test_langevin_dynamics_evaluates_the_energy_inside_the_box_only():
    # The clamp acts after every step, so the energy (and its gradient) is never taken
    # outside the box, even when it pushes the chains out of it at every step.
    evaluated = []

    def energy(x):
        evaluated.append(x.detach().clone())
        return -(3.0 * x).sum(dim=1)

    final = langevin_dynamics(
        energy,
        torch.full((4, 2), 0.9),
        n_steps=5,
        step_size=0.1,
        noise_std=0.0,
        generator=torch.Generator().manual_seed(0),
    )

    assert len(evaluated) == 5
    assert max(x.abs().max().item() for x in evaluated) <= 1.0
    torch.testing.assert_close(final, torch.ones(4, 2), rtol=0, atol=0)


def test_langevin_dynamics_does_not_modify_input_and_detaches():
    generator = torch.Generator().manual_seed(2)
    initial = uniform_noise(10, (3,), generator, "cpu").requires_grad_(True)
    before = initial.detach().clone()

    samples = langevin_dynamics(
        _tiny_energy_module(3),
        initial,
        n_steps=5,
        step_size=0.1,
        noise_std=0.1,
        generator=generator,
    )

    torch.testing.assert_close(initial.detach(), before, rtol=0, atol=0)
    assert initial.grad is None
    assert not samples.requires_grad
    assert samples.grad_fn is None
    assert not torch.equal(samples, before)


def test_langevin_dynamics_same_seed_same_chains():
    module = _tiny_energy_module(4)
    initial = uniform_noise(16, (3,), torch.Generator().manual_seed(5), "cpu")

    def run(seed):
        return langevin_dynamics(
            module,
            initial,
            n_steps=10,
            step_size=0.05,
            noise_std=0.1,
            generator=torch.Generator().manual_seed(seed),
        )

    torch.testing.assert_close(run(6), run(6), rtol=0, atol=0)
    assert not torch.equal(run(6), run(7))


def test_langevin_dynamics_zero_steps_returns_a_copy():
    initial = torch.zeros(4, 3)
    samples = langevin_dynamics(
        _tiny_energy_module(0),
        initial,
        n_steps=0,
        step_size=1.0,
        noise_std=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    samples += 1.0
    assert torch.equal(initial, torch.zeros(4, 3))


def test_frozen_parameters_leaves_no_gradient_and_restores_requires_grad():
    module = _tiny_energy_module(8)
    seen_inside = []

    def energy(x):
        seen_inside.append([parameter.requires_grad for parameter in module.parameters()])
        return module(x)

    with frozen_parameters(module):
        langevin_dynamics(
            energy,
            torch.zeros(5, 3),
            n_steps=3,
            step_size=0.1,
            noise_std=0.1,
            generator=torch.Generator().manual_seed(9),
        )

    assert seen_inside and not any(any(flags) for flags in seen_inside)
    assert all(parameter.requires_grad for parameter in module.parameters())
    assert all(parameter.grad is None for parameter in module.parameters())


def test_frozen_parameters_restores_after_an_exception_and_keeps_frozen_ones_frozen():
    module = _tiny_energy_module(10)
    already_frozen = module[0].bias
    already_frozen.requires_grad_(False)

    with pytest.raises(RuntimeError, match="inside"):
        with frozen_parameters(module):
            assert not any(parameter.requires_grad for parameter in module.parameters())
            raise RuntimeError("raised inside the block")

    for name, parameter in module.named_parameters():
        assert parameter.requires_grad == (name != "0.bias"), name


def test_replay_buffer_from_noise_and_draw_shapes():
    generator = torch.Generator().manual_seed(11)
    buffer = ReplayBuffer.from_noise(50, (2, 3), 0.1, generator)

    assert buffer.samples.shape == (50, 2, 3)
    assert buffer.samples.min() >= -1.0 and buffer.samples.max() < 1.0
    indices, states = buffer.draw(7, generator)
    assert indices.shape == (7,)
    assert indices.dtype == torch.int64
    assert ((indices >= 0) & (indices < 50)).all()
    assert states.shape == (7, 2, 3)


def test_replay_buffer_restart_fraction_and_copies():
    # Chains parked at 5.0, outside noise's [-1, 1), tell restarted states apart. Over n
    # draws the restart count is Binomial(n, p); the tolerance is 5 of its stds.
    reinit_fraction, n_draws = 0.05, 20_000
    buffer = ReplayBuffer(torch.full((100, 2), 5.0), reinit_fraction)
    generator = torch.Generator().manual_seed(12)

    indices, states = buffer.draw(n_draws, generator)

    restarted = (states.abs() <= 1.0).all(dim=1)
    kept = (states == 5.0).all(dim=1)
    assert (restarted | kept).all()
    standard_error = math.sqrt(reinit_fraction * (1 - reinit_fraction) / n_draws)
    assert abs(restarted.double().mean().item() - reinit_fraction) < 5 * standard_error
    # Every chain is picked about n / 100 times: the indices cover the buffer.
    assert torch.bincount(indices, minlength=100).min() > 0
    states.zero_()
    assert (buffer.samples == 5.0).all()


@pytest.mark.parametrize("reinit_fraction, expected", [(0.0, 5.0), (1.0, None)])
def test_replay_buffer_restart_fraction_extremes(reinit_fraction, expected):
    buffer = ReplayBuffer(torch.full((10, 3), 5.0), reinit_fraction)
    _, states = buffer.draw(200, torch.Generator().manual_seed(13))
    if expected is None:
        assert (states.abs() <= 1.0).all()
    else:
        assert (states == expected).all()


def test_replay_buffer_update_writes_back():
    generator = torch.Generator().manual_seed(14)
    buffer = ReplayBuffer.from_noise(20, (3,), 0.0, generator)
    before = buffer.samples.clone()
    indices, states = buffer.draw(6, generator)
    advanced = (states + 10.0).requires_grad_(True)

    buffer.update(indices, advanced * 1.0)

    torch.testing.assert_close(buffer.samples[indices], advanced.detach())
    untouched = torch.ones(20, dtype=torch.bool)
    untouched[indices] = False
    torch.testing.assert_close(buffer.samples[untouched], before[untouched])
    assert not buffer.samples.requires_grad


def test_replay_buffer_pickle_round_trip_on_cpu():
    buffer = ReplayBuffer.from_noise(12, (4,), 0.25, torch.Generator().manual_seed(15))

    state = buffer.__getstate__()
    assert state["samples"].device.type == "cpu"
    restored = pickle.loads(pickle.dumps(buffer))

    assert restored.reinit_fraction == 0.25
    torch.testing.assert_close(restored.samples, buffer.samples, rtol=0, atol=0)
    assert restored.to("cpu") is restored


def test_replay_buffer_restarts_from_its_start():
    # A narrow Gaussian at 0.5 and chains parked at 5.0: restarts are the start's draws.
    start = GaussianChainInit(torch.full((2,), 0.5), torch.full((2,), 1e-3))
    generator = torch.Generator().manual_seed(17)
    buffer = ReplayBuffer.from_start(30, start, 0.5, generator)
    assert buffer.start is start and buffer.samples.shape == (30, 2)
    torch.testing.assert_close(buffer.samples, torch.full((30, 2), 0.5), atol=5e-3, rtol=0)

    buffer.samples.fill_(5.0)
    _, states = buffer.draw(2000, generator)
    restarted = states[(states != 5.0).all(dim=1)]
    assert 800 < len(restarted) < 1200
    torch.testing.assert_close(restarted, torch.full_like(restarted, 0.5), atol=5e-3, rtol=0)


def test_replay_buffer_pickled_before_chain_init_restarts_from_uniform_noise():
    buffer = ReplayBuffer.__new__(ReplayBuffer)
    buffer.__setstate__({"samples": torch.full((4, 3), 5.0), "reinit_fraction": 1.0})

    assert isinstance(buffer.start, UniformChainInit) and buffer.start.sample_shape == (3,)
    _, states = buffer.draw(50, torch.Generator().manual_seed(18))
    assert (states.abs() <= 1.0).all()
    assert isinstance(pickle.loads(pickle.dumps(buffer)).start, UniformChainInit)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_replay_buffer_pickles_cuda_chains_to_cpu():
    generator = torch.Generator("cuda").manual_seed(16)
    buffer = ReplayBuffer.from_noise(12, (4,), 0.25, generator)

    restored = pickle.loads(pickle.dumps(buffer))

    assert buffer.samples.device.type == "cuda"
    assert restored.samples.device.type == "cpu"
    torch.testing.assert_close(restored.samples, buffer.samples.cpu(), rtol=0, atol=0)
    assert restored.to("cuda").samples.device.type == "cuda"


def test_sample_fresh_chains_shape_bounds_and_frozen_weights():
    module = nn.Sequential(nn.Flatten(), nn.Linear(6, 1), nn.Flatten(0))

    samples = sample_fresh_chains(
        module,
        9,
        UniformChainInit((2, 3)),
        n_steps=4,
        step_size=0.5,
        noise_std=0.05,
        generator=torch.Generator().manual_seed(17),
    )

    assert samples.shape == (9, 2, 3)
    assert samples.min() >= -1.0 and samples.max() <= 1.0
    assert all(parameter.requires_grad for parameter in module.parameters())
    assert all(parameter.grad is None for parameter in module.parameters())


def test_sample_fresh_chains_zero_steps_is_its_start():
    samples = sample_fresh_chains(
        nn.Linear(2, 1),
        4000,
        UniformChainInit((2,)),
        n_steps=0,
        step_size=1.0,
        noise_std=1.0,
        generator=torch.Generator().manual_seed(18),
    )
    # Uniform on [-1, 1): mean 0 and variance 1/3, each within 5 standard errors.
    assert samples.mean().abs() < 5 * math.sqrt(1 / 3 / 8000)
    assert abs(samples.var().item() - 1 / 3) < 5 * math.sqrt(4 / 45 / 8000)
