"""Annealed importance sampling (Neal, 2001) of the normaliser ``Z`` of an energy on the box.

A model of this package is the density ``exp(-E(x)) / Z`` on the box ``[-1, 1]^D``. AIS
starts chains from a density ``p_0`` on the box that it can draw from exactly and whose
normaliser it knows (:mod:`sklearn_cebm._core.box_densities`), and moves them through the
geometric path

    ``f_beta(x) = p_0(x)**(1 - beta) * exp(-beta * E(x))``, ``0 = beta_0 < ... < beta_T = 1``,

with one Metropolis-adjusted Langevin (MALA) transition per temperature, which leaves
``f_beta`` exactly invariant (the training's SGLD, without the correction, does not). Each
chain's weight ``w = prod_t f_t(x_{t-1}) / f_{t-1}(x_{t-1})`` has expectation
``Z / Z_0 = Z`` (``p_0`` is normalised), so ``log mean(w)`` estimates ``log Z``: in
expectation from below (Jensen), with a standard error from the weights' spread.

References
----------
R. M. Neal. Annealed importance sampling. Statistics and Computing 11, 125-139 (2001).
R. Salakhutdinov, I. Murray. On the quantitative analysis of deep belief networks. ICML 2008.
R. B. Grosse, C. J. Maddison, R. Salakhutdinov. Annealing between distributions by
averaging moments. NeurIPS 2013 (the sigmoid schedule).
"""

import math
from dataclasses import dataclass

import torch

__all__ = ["AISEstimate", "annealed_importance_sampling", "sigmoid_schedule"]

# MALA's acceptance rate is best near 0.574 (Roberts & Rosenthal, 1998); the pilot run
# steers its step size towards it.
_TARGET_ACCEPTANCE = 0.574
_INITIAL_STEP = 0.1


@dataclass(frozen=True)
class AISEstimate:
    """What one AIS run found.

    Attributes
    ----------
    log_partition : float
        ``log Z``, the log of the mean weight.
    standard_error : float
        Its standard error by the delta method, ``std(w) / (sqrt(n) mean(w))``.
    effective_sample_size : float
        ``(sum w)**2 / sum w**2``: near the number of chains when the weights agree, near 1
        when one chain dominates (the error is then not to be trusted).
    acceptance_rate : float
        Share of MALA proposals accepted, over all chains and temperatures.
    """

    log_partition: float
    standard_error: float
    effective_sample_size: float
    acceptance_rate: float


def sigmoid_schedule(n_temperatures, sharpness=4.0):
    """Inverse temperatures ``0 = beta_0 < ... < beta_T = 1``, ``T = n_temperatures``.

    A sigmoid of evenly spaced points, rescaled to end at 0 and 1 (Grosse et al., 2013): it
    takes small steps at both ends of the path, where the weights change fastest.

    Returns
    -------
    torch.Tensor of shape (n_temperatures + 1,), float64
    """
    points = torch.linspace(-sharpness, sharpness, n_temperatures + 1, dtype=torch.float64)
    curve = torch.sigmoid(points)
    return (curve - curve[0]) / (curve[-1] - curve[0])


def _energy_and_gradient(energy, x):
    """``E(x)`` ``(n,)`` in float64 and ``dE/dx``, with autograd on even in inference mode."""
    with torch.inference_mode(False), torch.enable_grad():
        inputs = x.to(torch.float32).detach().clone().requires_grad_(True)
        values = energy(inputs)
        (gradient,) = torch.autograd.grad(values.sum(), inputs)
    return values.detach().to(torch.float64), gradient.to(torch.float64)


class _AnnealedState:
    """Chains on the path at inverse temperature ``beta``: states, energies, gradients."""

    def __init__(self, energy, start, x):
        self.energy, self.start, self.x = energy, start, x
        self.energies, self.energy_gradients = _energy_and_gradient(energy, x)
        self.start_log_densities, self.start_gradients = self._start_terms(x)

    def _start_terms(self, x):
        with torch.inference_mode(False), torch.enable_grad():
            inputs = x.detach().clone().requires_grad_(True)
            values = self.start.log_density(inputs)
            if not values.requires_grad:  # a constant density (the uniform)
                return values, torch.zeros_like(x)
            (gradient,) = torch.autograd.grad(values.sum(), inputs)
        return values.detach(), gradient

    def log_density(self, beta):
        """``log f_beta`` of each chain's state."""
        return (1 - beta) * self.start_log_densities - beta * self.energies

    def gradient(self, beta):
        return (1 - beta) * self.start_gradients - beta * self.energy_gradients

    def mala_step(self, beta, step, preconditioner, generator):
        """One MALA transition at ``beta``; returns the share of chains that moved.

        The proposal is ``x' = x + step**2 M grad / 2 + step sqrt(M) xi`` with the diagonal
        ``M = preconditioner**2``; a proposal outside the box has density zero and is
        rejected. The Metropolis-Hastings ratio includes both proposal densities.
        """
        scale = step * preconditioner
        drift = 0.5 * scale**2
        noise = torch.randn(
            self.x.shape, generator=generator, device=self.x.device, dtype=self.x.dtype
        )
        proposal = self.x + drift * self.gradient(beta) + scale * noise
        inside = ((proposal >= self.start.low) & (proposal <= self.start.high)).all(dim=1)
        candidate = _AnnealedState(
            self.energy, self.start, proposal.clamp(self.start.low, self.start.high)
        )
        backward = (self.x - proposal - drift * candidate.gradient(beta)) / scale
        log_ratio = (
            candidate.log_density(beta)
            - self.log_density(beta)
            - 0.5 * backward.square().sum(dim=1)
            + 0.5 * noise.square().sum(dim=1)
        )
        uniform = torch.rand(
            len(log_ratio), generator=generator, device=self.x.device, dtype=torch.float64
        )
        accept = inside & (torch.log(uniform) < log_ratio)
        for name in ("x", "energies", "energy_gradients", "start_log_densities", "start_gradients"):
            current, new = getattr(self, name), getattr(candidate, name)
            mask = accept.reshape(-1, *([1] * (current.dim() - 1)))
            setattr(self, name, torch.where(mask, new, current))
        return accept.to(torch.float64).mean().item()


def _anneal(energy, start, betas, n_chains, generator, steps=None):
    """One AIS run; adapts the step size per temperature when ``steps`` is None.

    Returns the log-weights ``(n_chains,)``, the step sizes used ``(T,)`` and the mean
    acceptance rate.
    """
    state = _AnnealedState(energy, start, start.draw(n_chains, generator))
    preconditioner = start.preconditioner().to(state.x.device)
    log_weights = torch.zeros(n_chains, dtype=torch.float64, device=state.x.device)
    used, acceptances, step = [], [], _INITIAL_STEP
    for index in range(1, len(betas)):
        beta_before, beta = betas[index - 1].item(), betas[index].item()
        # The weight's factor f_beta(x) / f_beta_before(x) at the state before the move.
        log_weights += (beta - beta_before) * (-state.energies - state.start_log_densities)
        step = step if steps is None else steps[index - 1]
        rate = state.mala_step(beta, step, preconditioner, generator)
        used.append(step)
        acceptances.append(rate)
        if steps is None:
            step = min(step * math.exp(rate - _TARGET_ACCEPTANCE), 1.0)
    return log_weights, used, sum(acceptances) / len(acceptances)


def annealed_importance_sampling(energy, start, *, n_chains, n_temperatures, generator):
    """Estimate ``log Z`` of ``exp(-energy(x))`` on the box from the normalised ``start``.

    A pilot run with a quarter of the chains (at least 8) adapts MALA's step size at each
    temperature towards an acceptance rate of 0.574; the estimate comes from a second run
    with those step sizes fixed, so that its transitions depend on none of its own chains
    and every weight is exactly unbiased for ``Z``.

    Parameters
    ----------
    energy : callable
        Maps a float32 batch ``(n, D)`` to energies ``(n,)``; differentiable in its input,
        treating rows independently (a module in eval mode, its parameters frozen).
    start : UniformBox or TruncatedDiagonalGaussian
        Normalised density on the box, with ``draw``, ``log_density``, ``preconditioner``
        and the box's ``low`` and ``high``.
    n_chains : int
        Chains of the estimating run.
    n_temperatures : int
        Intermediate distributions, one MALA step each.
    generator : torch.Generator
        Source of all randomness, on the device the energy runs on.

    Returns
    -------
    AISEstimate
    """
    betas = sigmoid_schedule(n_temperatures)
    _, steps, _ = _anneal(energy, start, betas, max(8, n_chains // 4), generator)
    log_weights, _, acceptance = _anneal(energy, start, betas, n_chains, generator, steps)
    log_weights = log_weights.cpu()
    largest = log_weights.max()
    weights = torch.exp(log_weights - largest)
    mean = weights.mean()
    standard_error = (weights.std(correction=1) / math.sqrt(n_chains) / mean).item()
    return AISEstimate(
        log_partition=(largest + torch.log(mean)).item(),
        standard_error=standard_error if n_chains > 1 else math.inf,
        effective_sample_size=(weights.sum() ** 2 / weights.square().sum()).item(),
        acceptance_rate=acceptance,
    )
