"""Encoders ``t_theta(x)``: networks that output two raw statistics per latent dimension.

An encoder maps a batch of inputs to a tensor of shape ``(n, 2 * K)``; the
:class:`~sklearn_cebm._core.model.ConjugateEnergyModel` splits it into ``t_1(x)`` and the
constrained ``t_2(x)``. Any ``torch.nn.Module`` with that contract can stand in for these.
"""

import math

import torch
from torch import nn
from torch.nn import functional

from .input_convolution import InputGradientConv2d

__all__ = [
    "ConvEncoder",
    "MLPEncoder",
    "SiLU",
    "encode_flat_batch",
    "gaussian_code",
    "initialize_layers",
    "silu_layers",
]

# The paper's network (Nijkamp et al., 2019a): channels, kernel sizes and strides of the
# four convolutions, all with padding 1.
PAPER_CONV_CHANNELS = (32, 32, 64, 64)
PAPER_CONV_KERNELS = (3, 4, 4, 4)
PAPER_CONV_STRIDES = (1, 2, 2, 2)

# Keeps a Gaussian code's std from collapsing to a point mass.
MIN_CODE_STD = 1e-4


def initialize_layers(module, generator=None):
    """Re-initialise every linear and convolutional layer of ``module`` from ``generator``.

    Uses PyTorch's default scheme (Kaiming-uniform weights with ``a = sqrt(5)`` and uniform
    biases in ``+-1/sqrt(fan_in)``) but draws from a private generator, so initialisation is
    reproducible without seeding the global one.

    Parameters
    ----------
    module : torch.nn.Module
    generator : torch.Generator, optional
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                bound = 1.0 / math.sqrt(layer.weight[0].numel())
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class SiLU(nn.SiLU):
    """``torch.nn.SiLU`` that overwrites its input when autograd records nothing.

    At inference (``torch.inference_mode`` or ``torch.no_grad``) the input, the fresh
    output of the layer before, is not needed again: writing the activation into it saves
    allocating and filling as large a tensor, which on a CPU is a memory-bound pass over
    the widest activations (the paper's conv net on 28x28 images: 13,100 to 15,300 rows/s
    at 128 rows per batch, one thread). With gradients on, it is ``nn.SiLU`` itself.
    """

    def forward(self, x):
        if torch.is_grad_enabled():
            return super().forward(x)
        return nn.functional.silu(x, inplace=True)


def _conv_output_size(size, kernel, stride, padding=1):
    return (size + 2 * padding - kernel) // stride + 1


class ConvEncoder(nn.Module):
    """The paper's convolutional encoder (Sec. 7.1): four SiLU conv layers and a linear head.

    Parameters
    ----------
    image_shape : tuple of int
        ``(channels, height, width)`` of one input.
    n_outputs : int
        Width of the output, ``2 * K`` for K latent dimensions.
    channels, kernel_sizes, strides : tuple of int
        The convolutions; defaults are the paper's 32-32-64-64, 3-4-4-4 and 1-2-2-2.

    Raises
    ------
    ValueError
        If the image is too small for the strided convolutions.
    """

    def __init__(
        self,
        image_shape,
        n_outputs,
        channels=PAPER_CONV_CHANNELS,
        kernel_sizes=PAPER_CONV_KERNELS,
        strides=PAPER_CONV_STRIDES,
    ):
        super().__init__()
        height, width = image_shape[1:]
        for kernel, stride in zip(kernel_sizes, strides, strict=True):
            height = _conv_output_size(height, kernel, stride)
            width = _conv_output_size(width, kernel, stride)
        if height < 1 or width < 1:
            raise ValueError(
                f"image_shape={tuple(image_shape)} is too small for the convolutional encoder: "
                "its strided layers need images of at least 8x8 pixels."
            )
        layers = []
        in_channels = image_shape[0]
        for out_channels, kernel, stride in zip(channels, kernel_sizes, strides, strict=True):
            # Only the first layer, with its few input channels, gains from the matrix-product
            # input gradient; oneDNN's own is faster for the wide layers after it.
            convolution = InputGradientConv2d if not layers else nn.Conv2d
            layers += [convolution(in_channels, out_channels, kernel, stride, padding=1), SiLU()]
            in_channels = out_channels
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(in_channels * height * width, n_outputs)
        # oneDNN's NHWC kernels run SGLD's forward and input-gradient passes about 1.3x
        # faster on CPU (benchmarks/throughput.py); the layout survives pickling.
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.head(self.features(x))


def silu_layers(n_inputs, hidden_layer_sizes, n_outputs):
    """Linear layers of the given widths with a SiLU after each hidden one, as a list."""
    layers, width = [], n_inputs
    for hidden in hidden_layer_sizes:
        layers += [nn.Linear(width, hidden), SiLU()]
        width = hidden
    return [*layers, nn.Linear(width, n_outputs)]


def encode_flat_batch(encoder, x, input_shape, n_outputs, meaning):
    """``encoder`` applied to a flat batch ``x`` reshaped to ``(n, *input_shape)``.

    Parameters
    ----------
    encoder : torch.nn.Module
    x : torch.Tensor of shape (n, prod(input_shape))
    input_shape : tuple of int
    n_outputs : int
        The width the output must have.
    meaning : str
        What the output's columns are, for the error message.

    Returns
    -------
    torch.Tensor of shape (n, n_outputs)

    Raises
    ------
    ValueError
        If the encoder's output is not of shape ``(n, n_outputs)``.
    """
    raw = encoder(x.reshape(x.shape[0], *input_shape))
    if raw.ndim != 2 or tuple(raw.shape) != (x.shape[0], n_outputs):
        raise ValueError(
            f"The encoder must return a tensor of shape (n_samples, {n_outputs}) "
            f"({meaning}); it returned {tuple(raw.shape)}."
        )
    return raw


def gaussian_code(encoder, x, input_shape, n_latent):
    """Mean and std of the diagonal Gaussian ``q(z | x)`` an encoder of ``2 K`` outputs gives.

    The first ``K`` outputs are the mean, the softplus of the others (above a small floor)
    the std: the posterior of a VAE and the stochastic encoder of a BiGAN.

    Parameters
    ----------
    encoder : torch.nn.Module
    x : torch.Tensor of shape (n, prod(input_shape))
    input_shape : tuple of int
    n_latent : int
        Dimension K.

    Returns
    -------
    mean, std : torch.Tensor of shape (n, K)

    Raises
    ------
    ValueError
        If the encoder's output is not of shape ``(n, 2 * K)``.
    """
    raw = encode_flat_batch(
        encoder, x, input_shape, 2 * n_latent, "a mean and a std per latent dimension"
    )
    mean, raw_std = raw.chunk(2, dim=-1)
    return mean, functional.softplus(raw_std) + MIN_CODE_STD


class MLPEncoder(nn.Module):
    """A fully connected SiLU network for tabular data; inputs of any shape are flattened.

    Parameters
    ----------
    n_features : int
        Input width.
    hidden_layer_sizes : tuple of int
        Widths of the hidden layers.
    n_outputs : int
        Width of the output, ``2 * K``.
    """

    def __init__(self, n_features, hidden_layer_sizes, n_outputs):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), *silu_layers(n_features, hidden_layer_sizes, n_outputs)
        )

    def forward(self, x):
        return self.layers(x)
