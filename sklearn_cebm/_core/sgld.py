"""Stochastic gradient Langevin dynamics (Eq. 3) and the replay buffer of persistent chains."""

import contextlib
from typing import NamedTuple

import torch

from .chain_init import UniformChainInit

__all__ = [
    "ChainAdvance",
    "ReplayBuffer",
    "advance_persistent_chains",
    "frozen_parameters",
    "langevin_dynamics",
    "sample_fresh_chains",
    "uniform_noise",
]


@contextlib.contextmanager
def frozen_parameters(module):
    """Switch off ``requires_grad`` on every parameter of ``module`` for the block.

    While sampling only the input gradient is needed; freezing keeps autograd from
    building (and the backward pass from computing) anything for the weights.
    """
    parameters = [p for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield module
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


def uniform_noise(n_samples, sample_shape, generator, device, low=-1.0, high=1.0):
    """Draw ``(n_samples, *sample_shape)`` values uniformly from ``[low, high)``."""
    shape = (n_samples, *sample_shape)
    noise = torch.rand(shape, generator=generator, device=device)
    return low + (high - low) * noise


def langevin_dynamics(energy, x, *, n_steps, step_size, noise_std, generator, bounds=(-1.0, 1.0)):
    """Run SGLD chains ``x <- x - step_size * dE/dx + noise_std * N(0, I)`` (Eq. 3).

    Eq. 3 is the special case ``step_size = alpha / 2`` and ``noise_std = sqrt(alpha)``,
    whose stationary distribution tends to ``exp(-E(x)) / Z`` as ``alpha -> 0``. The EBM
    literature (Du & Mordatch, 2019) decouples the two, with a much smaller noise.

    Parameters
    ----------
    energy : callable
        Maps a batch ``(n, ...)`` to energies ``(n,)``; differentiable in its input.
    x : torch.Tensor
        Initial states of the chains; not modified.
    n_steps : int
    step_size : float
        Multiplier of the energy gradient.
    noise_std : float
        Std of the Gaussian noise added at every step.
    generator : torch.Generator
        Source of the noise, on ``x``'s device.
    bounds : tuple of float or None, default=(-1.0, 1.0)
        Box the chains are clamped to after each step; ``None`` for no clamping.

    Returns
    -------
    torch.Tensor
        Final states, detached from any graph.
    """
    x = x.detach().clone()
    for _ in range(n_steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(energy(x).sum(), x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = (x.detach() - step_size * gradient + noise_std * noise).detach()
        if bounds is not None:
            x.clamp_(*bounds)
    return x


class ReplayBuffer:
    """Persistent chains for PCD (Tieleman, 2008; Du & Mordatch, 2019).

    Parameters
    ----------
    samples : torch.Tensor of shape (n_chains, ...)
        The chains' current states.
    reinit_fraction : float
        Expected share of every drawn batch restarted from ``start``.
    start : UniformChainInit or GaussianChainInit, optional
        Where restarted chains start (:mod:`~sklearn_cebm._core.chain_init`); uniform
        noise on ``[-1, 1]`` by default.

    Notes
    -----
    Pickles with its chains on the CPU, so a buffer filled on a GPU loads anywhere;
    :meth:`to` moves it back.
    """

    def __init__(self, samples, reinit_fraction, start=None):
        self.samples = samples
        self.reinit_fraction = reinit_fraction
        self.start = UniformChainInit(samples.shape[1:]) if start is None else start

    @classmethod
    def from_start(cls, n_chains, start, reinit_fraction, generator):
        """A buffer of ``n_chains`` chains drawn from ``start``, on the generator's device."""
        return cls(start.draw(n_chains, generator), reinit_fraction, start)

    @classmethod
    def from_noise(cls, n_chains, sample_shape, reinit_fraction, generator):
        """A buffer of ``n_chains`` chains started from uniform noise on ``[-1, 1]``."""
        return cls.from_start(n_chains, UniformChainInit(sample_shape), reinit_fraction, generator)

    def to(self, device):
        """Move the chains and their start to ``device``; returns ``self``."""
        self.samples = self.samples.to(device)
        self.start = self.start.to(device)
        return self

    def draw(self, n_samples, generator):
        """Pick ``n_samples`` chains at random; restart some from ``start``.

        Returns
        -------
        indices : torch.Tensor of shape (n_samples,)
            Where to :meth:`update` the advanced chains.
        states : torch.Tensor
            Their current states (a copy).
        """
        device = self.samples.device
        indices = torch.randint(
            self.samples.shape[0], (n_samples,), generator=generator, device=device
        )
        states = self.samples[indices]
        restart = torch.rand(n_samples, generator=generator, device=device) < self.reinit_fraction
        fresh = self.start.draw(n_samples, generator)
        # A select, not a masked write: the mask's count is never read on the host.
        restart = restart.reshape(-1, *[1] * (states.dim() - 1))
        return indices, torch.where(restart, fresh, states)

    def update(self, indices, states):
        """Store the advanced chains back at ``indices``; of repeats, the last one wins.

        :meth:`draw` picks chains with replacement, so a chain can be advanced twice in one
        batch. A plain indexed write leaves which copy is kept undefined, and on CUDA it
        changes from run to run; keeping the last occurrence makes it the same everywhere.
        Every copy of a repeated index writes the last one's state, so the order of the
        writes does not matter, and no count of distinct indices is read on the host.
        """
        positions = torch.arange(len(indices), device=indices.device)
        last = torch.full(
            (self.samples.shape[0],), -1, dtype=positions.dtype, device=indices.device
        )
        last = last.scatter_reduce(0, indices, positions, reduce="amax")
        self.samples[indices] = states.detach()[last[indices]]

    def __getstate__(self):
        return {
            "samples": self.samples.cpu(),
            "reinit_fraction": self.reinit_fraction,
            "start": self.start,
        }

    def __setstate__(self, state):
        # Buffers pickled before chain starts existed restarted from uniform noise.
        state.setdefault("start", UniformChainInit(state["samples"].shape[1:]))
        self.__dict__.update(state)


class ChainAdvance(NamedTuple):
    """What :func:`advance_persistent_chains` returns: the chains and how far they moved."""

    samples: torch.Tensor
    displacement: torch.Tensor


def advance_persistent_chains(
    energy_module, buffer, n_samples, *, n_steps, step_size, noise_std, generator
):
    """Draw ``n_samples`` chains from ``buffer``, advance them by SGLD, write them back.

    The weights are frozen while the chains move. Nothing is read on the host: the
    chains' RMS move per coordinate comes back as a 0-d tensor, so that the whole update
    can be captured as a CUDA graph (:mod:`~sklearn_cebm._core.cuda_graphs`).

    Parameters
    ----------
    energy_module : torch.nn.Module
        Maps a batch to energies ``(n,)``.
    buffer : ReplayBuffer
        On the generator's device.
    n_samples : int
    n_steps, step_size, noise_std :
        As in :func:`langevin_dynamics`.
    generator : torch.Generator

    Returns
    -------
    ChainAdvance
        ``samples`` of shape ``(n_samples, ...)``; ``displacement``, the RMS of
        ``samples - initial`` over all coordinates.
    """
    indices, initial = buffer.draw(n_samples, generator)
    with frozen_parameters(energy_module):
        samples = langevin_dynamics(
            energy_module,
            initial,
            n_steps=n_steps,
            step_size=step_size,
            noise_std=noise_std,
            generator=generator,
        )
    buffer.update(indices, samples)
    return ChainAdvance(samples, (samples - initial).pow(2).mean().sqrt())


def sample_fresh_chains(
    energy_module,
    n_samples,
    start,
    *,
    n_steps,
    step_size,
    noise_std,
    generator,
):
    """Draw ``n_samples`` by SGLD from fresh chains drawn from ``start``, weights frozen.

    Parameters
    ----------
    energy_module : torch.nn.Module
        Maps a batch to energies ``(n,)``.
    n_samples : int
    start : UniformChainInit or GaussianChainInit
        Where the chains start (:mod:`~sklearn_cebm._core.chain_init`).
    n_steps, step_size, noise_std :
        As in :func:`langevin_dynamics`.
    generator : torch.Generator
        On the module's device.

    Returns
    -------
    torch.Tensor of shape (n_samples, *start.sample_shape)
    """
    initial = start.to(generator.device).draw(n_samples, generator)
    with frozen_parameters(energy_module):
        return langevin_dynamics(
            energy_module,
            initial,
            n_steps=n_steps,
            step_size=step_size,
            noise_std=noise_std,
            generator=generator,
        )
