"""Scores of inputs under an energy that need its gradient: the OOD score of Grathwohl et al."""

import torch

__all__ = ["energy_and_input_gradient_norm", "energy_input_gradient_norm"]


def energy_input_gradient_norm(energy, x, input_scale=None):
    """Per-example L2 norm of the input gradient ``||d E(x) / dx||`` of an energy.

    Since ``log p(x) = -E(x) - log Z`` with ``Z`` constant in ``x``, this is also
    ``||d log p(x) / dx||``, the out-of-distribution score of Grathwohl et al. (2019, JEM)
    that the CEBM paper reports beside ``log p(x)`` (Table 1): small near the modes the
    model puts its mass on, large on the slopes. It is computed with autograd even inside
    ``torch.inference_mode`` (as under :func:`~sklearn_cebm._core.model.map_batches`),
    which is switched off locally; the energy must treat examples independently (a module
    in eval mode), as the gradient of the summed energies is taken.

    Parameters
    ----------
    energy : callable
        Maps a batch ``(n, ...)`` to energies ``(n,)``; differentiable in its input.
    x : torch.Tensor of shape (n, ...)
        Inputs in the units the energy expects; not modified.
    input_scale : array-like or torch.Tensor, broadcastable to ``x.shape[1:]``, default=None
        When ``x = (u - center) / input_scale`` for inputs ``u`` in some other units, the
        norm of the gradient in ``u``, ``||(d E / dx) / input_scale||`` (the chain rule);
        ``None`` for the gradient in ``x`` itself.

    Returns
    -------
    torch.Tensor of shape (n,)
        The norms, detached, on ``x``'s device.

    References
    ----------
    W. Grathwohl, K.-C. Wang, J.-H. Jacobsen, D. Duvenaud, M. Norouzi, K. Swersky. Your
    Classifier is Secretly an Energy Based Model and You Should Treat It Like One. ICLR 2020
    (arXiv:1912.03263, 2019).
    """
    return energy_and_input_gradient_norm(energy, x, input_scale)[1]


def energy_and_input_gradient_norm(energy, x, input_scale=None):
    """The energies ``E(x)`` and :func:`energy_input_gradient_norm` from one pass.

    The forward pass the gradient needs gives the energies too: where both are wanted
    (the training scores' extremes), one pass instead of two.

    Parameters
    ----------
    energy, x, input_scale
        As for :func:`energy_input_gradient_norm`.

    Returns
    -------
    energies, norms : torch.Tensor of shape (n,)
        Detached, on ``x``'s device.
    """
    with torch.inference_mode(False), torch.enable_grad():
        # A clone made outside inference mode is an ordinary tensor autograd can track.
        inputs = x.detach().clone().requires_grad_(True)
        energies = energy(inputs)
        (gradient,) = torch.autograd.grad(energies.sum(), inputs)
    if input_scale is not None:
        gradient = gradient / torch.as_tensor(
            input_scale, dtype=gradient.dtype, device=gradient.device
        )
    return energies.detach(), gradient.flatten(start_dim=1).norm(dim=1).detach()
