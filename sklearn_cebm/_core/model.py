"""The conjugate energy-based model: an encoder of neural sufficient statistics and a bias."""

import glob

import torch
from torch import nn

from .encoders import encode_flat_batch
from .exponential_family import negative_precision_term
from .precision import run_in_precision

__all__ = [
    "INFERENCE_BATCH_SIZE",
    "ConditionalEnergy",
    "ConjugateEnergyModel",
    "inference_batch_size",
    "map_batches",
]

# Rows per forward pass at inference: large enough to keep the kernels busy, small enough
# that a conv net's activations for 28x28 images stay well under a gigabyte. The most on
# a CPU, where inference_batch_size may choose fewer, and the number on an accelerator.
INFERENCE_BATCH_SIZE = 1024
# The fewest rows inference_batch_size chooses: below them the per-batch overhead of
# Python and the kernels' launch dominates.
MIN_CPU_INFERENCE_BATCH_SIZE = 16
# The last-level cache assumed where the system does not say (Linux's sysfs does).
FALLBACK_CACHE_BYTES = 8 * 2**20


class ConjugateEnergyModel(nn.Module):
    """A CEBM ``p(x, z) proportional to exp(-E(x, z))`` with a conjugate bias (Eqs. 16-24).

    The encoder's output of width ``2 K`` is split into ``t_1(x)`` and an unconstrained
    ``u(x)``; ``t_2(x) = -(softplus(u(x)) + 1e-6)`` is strictly negative, so the posterior's
    second natural parameter ``lambda_2 + t_2(x)`` is negative for any input and any weights.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps a batch shaped ``(n, *input_shape)`` to ``(n, 2 * K)``.
    bias : torch.nn.Module
        A bias from :mod:`sklearn_cebm._core.biases` over ``K`` latent dimensions.
    input_shape : tuple of int
        Shape the encoder expects for one example; inputs arrive flat, ``(n, prod(shape))``.

    Attributes
    ----------
    compute_dtype : torch.dtype or None
        The dtype the encoder's products run in under autocast in training mode
        (``torch.bfloat16``), or None for float32 throughout
        (:func:`~sklearn_cebm._core.precision.run_in_precision`). Everything after the
        encoder, and the whole model in eval mode, is float32.
    """

    # A class default, so that models pickled before it existed load as float32.
    compute_dtype = None

    def __init__(self, encoder, bias, input_shape):
        super().__init__()
        self.encoder = encoder
        self.bias = bias
        self.input_shape = tuple(input_shape)

    def sufficient_statistics(self, x):
        """Neural sufficient statistics ``(t_1(x), t_2(x))``, each of shape ``(n, K)``.

        Raises
        ------
        ValueError
            If the encoder's output is not of shape ``(n, 2 * K)``.
        """
        n_statistics = 2 * self.bias.natural_params()[0].shape[-1]

        def encode(batch):
            return encode_flat_batch(
                self.encoder,
                batch,
                self.input_shape,
                n_statistics,
                "two statistics per latent dimension",
            )

        # The statistics come back in float32, whatever the encoder computes in: the
        # bias's log-normalisers B(lambda + t) - B(lambda) cancel most of their digits.
        # Inference (eval mode) stays float32: the codes of the digits differ by little,
        # and bfloat16 products cost a conv net's codes 15 points of accuracy there.
        compute_dtype = self.compute_dtype if self.training else None
        raw = run_in_precision(encode, x, compute_dtype)
        statistic_1, unconstrained_2 = raw.chunk(2, dim=-1)
        return statistic_1, negative_precision_term(unconstrained_2)

    def forward(self, x):
        """Marginal energy ``E(x)`` of a flat batch, shape ``(n,)``."""
        return self.bias.energy(self.sufficient_statistics(x))

    def posterior_mean_std(self, x):
        """Mean and std of the conjugate posterior ``p(z | x)`` (Eq. 23)."""
        return self.bias.posterior_mean_std(self.sufficient_statistics(x))

    def bias_method(self, name):
        """``x -> bias.<name>(t(x))``: any statistic-to-output method of the bias applied to x.

        Lets callers reach what a particular bias offers beyond :meth:`forward` and
        :meth:`posterior_mean_std` (a mixture's ``responsibilities``, ``component_energy``)
        without a method here for each.
        """
        method = getattr(self.bias, name)

        def apply(x):
            return method(self.sufficient_statistics(x))

        return apply


class ConditionalEnergy(nn.Module):
    """The energy ``E(x) - log p(y = component | x)`` of ``p(x | y) ∝ p(x) p(y | x)``, for SGLD.

    ``p(x)`` is the density of ``density`` (its energy ``E(x)``) and ``p(y | x)`` the
    cluster posterior of ``classifier``, a :class:`ConjugateEnergyModel` whose bias has
    ``log_responsibilities`` (:class:`~sklearn_cebm._core.biases.GaussianMixtureBias`).
    Together they define the joint ``p(x, y) = p(x) p(y | x)``, whose marginal is
    ``density``'s and whose conditional of ``x`` given ``y`` this is, up to the constant
    ``log p(y)``. When ``density`` is ``classifier`` itself the energy is the mixture's
    ``E(x, y = component)`` exactly: ``E(x) = -log sum_l exp(-E(x, l))`` and
    ``log p(y | x) = E(x) - E(x, y)``. The wrapped models' parameters are this module's, so
    :func:`~sklearn_cebm._core.sgld.frozen_parameters` freezes them.

    Parameters
    ----------
    density : torch.nn.Module
        Maps a batch ``x`` to its energies ``E(x)``, shape ``(n,)``.
    classifier : ConjugateEnergyModel
        The model whose mixture bias gives ``p(y | x)``.
    component : int
        Index of the mixture component ``y``.

    Raises
    ------
    ValueError
        If the mixture has no component ``component``.
    """

    def __init__(self, density, classifier, component):
        super().__init__()
        # The mixture as built, which a caller's own count of components may no longer match.
        n_components = classifier.bias.means.shape[0]
        if not 0 <= component < n_components:
            raise ValueError(
                f"component must be an integer in [0, {n_components}), the mixture's "
                f"components; got {component!r}."
            )
        self.density = density
        self.classifier = classifier
        self.component = int(component)

    def forward(self, x):
        """``E(x) - log p(y = component | x)``, shape ``(n,)``."""
        statistics = self.classifier.sufficient_statistics(x)
        log_posterior = self.classifier.bias.log_responsibilities(statistics)
        return self.density(x) - log_posterior[:, self.component]


def last_level_cache_bytes():
    """Size of the CPU's largest cache, from Linux's sysfs; ``FALLBACK_CACHE_BYTES`` elsewhere."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        multiplier = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
        digits = text[:-1] if multiplier > 1 else text
        if digits.isdigit():
            sizes.append(int(digits) * multiplier)
    return max(sizes, default=FALLBACK_CACHE_BYTES)


def widest_activation_bytes(function, module, n_features, device):
    """Bytes per row of the largest output of any leaf module of ``module`` under ``function``.

    Measured by calling ``function`` on one row of zeros, shape ``(1, n_features)``, with a
    forward hook on every module of ``module`` that has no children; at least the bytes of
    the row itself.
    """
    widest = [4 * n_features]

    def record(_module, _inputs, output):
        for tensor in output if isinstance(output, tuple) else (output,):
            if isinstance(tensor, torch.Tensor):
                widest[0] = max(widest[0], tensor.numel() * tensor.element_size())

    leaves = [layer for layer in module.modules() if next(layer.children(), None) is None]
    handles = [layer.register_forward_hook(record) for layer in leaves]
    try:
        with torch.inference_mode():
            function(torch.zeros(1, n_features, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return widest[0]


def inference_batch_size(function, module, n_features, device, n_rows=None):
    """Rows per batch for mapping ``function`` over inputs: within the cache on a CPU.

    On a CPU, a batch whose activations spill out of the last-level cache runs from
    memory: the paper's conv net on 28x28 images did 13,600 rows/s at 64 rows per batch
    and 5,300 at 1,024 on one core with a 32 MiB cache (benchmarks/results/throughput.md).
    A layer's input and output are alive together, so the batch is sized to fill half the
    cache with two of the widest activations, between ``MIN_CPU_INFERENCE_BATCH_SIZE`` and
    ``INFERENCE_BATCH_SIZE`` rows. An accelerator gets ``INFERENCE_BATCH_SIZE``, which it
    needs to be kept busy.

    Parameters
    ----------
    function : callable
        Maps a batch ``(n, n_features)`` to tensors; its layers are ``module``'s.
    module : torch.nn.Module
    n_features : int
    device : torch.device
    n_rows : int, optional
        Rows to be mapped. At most ``MIN_CPU_INFERENCE_BATCH_SIZE`` of them are one batch
        whatever the cache, and need no probe of ``function``.

    Returns
    -------
    int
    """
    if device.type != "cpu":
        return INFERENCE_BATCH_SIZE
    if n_rows is not None and n_rows <= MIN_CPU_INFERENCE_BATCH_SIZE:
        return MIN_CPU_INFERENCE_BATCH_SIZE
    widest = widest_activation_bytes(function, module, n_features, device)
    rows = last_level_cache_bytes() // (4 * widest)
    return int(min(INFERENCE_BATCH_SIZE, max(MIN_CPU_INFERENCE_BATCH_SIZE, rows)))


def map_batches(function, x, batch_size, device):
    """Apply ``function`` to ``x`` in batches under ``torch.inference_mode``.

    Parameters
    ----------
    function : callable
        Maps a tensor batch to a tensor or a tuple of tensors.
    x : numpy.ndarray or torch.Tensor
        Inputs, first axis the batch axis.
    batch_size : int
    device : torch.device

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        The outputs concatenated along the first axis, on the CPU.
    """
    x = torch.as_tensor(x)
    outputs = []
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size].to(device, torch.float32)
            result = function(batch)
            result = result if isinstance(result, tuple) else (result,)
            outputs.append(tuple(part.cpu() for part in result))
    joined = tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))
    return joined if len(joined) > 1 else joined[0]
