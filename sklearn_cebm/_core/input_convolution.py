"""A first convolution whose input gradient is one matrix product and a few shifted adds.

SGLD differentiates the energy with respect to the image at every step. For the first
layer of an image encoder (one to three input channels, many output channels) oneDNN's
backward-data kernel is slow: at the paper's setup (batch 100, 1 -> 32 channels, 3x3,
28x28) it takes 3.7-9 ms for 45 MFLOP. Written as ``W^T @ dL/dy`` followed by a
col2im-style scatter of the ``C_in * k * k`` planes it takes 1.2 ms, the same
mathematics (``benchmarks/results/throughput.md``). Weight and bias gradients, and the
forward pass, are PyTorch's own.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InputGradientConv2d"]


def _input_gradient(output_gradient, weight, input_shape, stride, padding):
    """``d loss / d input`` of a convolution without dilation or groups, from ``d loss / d y``.

    Input pixel ``i = stride * o - padding + k`` receives ``dL/dy[o] * W[k]``: one product
    gives every ``(channel, k_h, k_w)`` plane, then each plane is added to the padded
    gradient at its offset. Built of differentiable operations, so double backward works.
    """
    n_samples, out_channels, out_height, out_width = output_gradient.shape
    in_channels, height, width = input_shape[1:]
    kernel_height, kernel_width = weight.shape[2:]
    stride_h, stride_w = stride
    pad_h, pad_w = padding
    # A view, not a copy, when the gradient is channels_last (as it is under ConvEncoder).
    flat = output_gradient.transpose(0, 1).reshape(out_channels, -1)
    # The planes are summed in float32 (or float64) whatever the product's dtype: bfloat16
    # additions are slower on a CPU, and lose the gradient's low bits.
    planes = torch.mm(weight.reshape(out_channels, -1).t(), flat)
    planes = planes.to(torch.promote_types(planes.dtype, torch.float32))
    planes = planes.view(in_channels, kernel_height, kernel_width, n_samples, out_height, out_width)
    padded = planes.new_zeros((n_samples, in_channels, height + 2 * pad_h, width + 2 * pad_w))
    rows_spanned = stride_h * (out_height - 1) + 1
    columns_spanned = stride_w * (out_width - 1) + 1
    for row in range(kernel_height):
        for column in range(kernel_width):
            window = padded[
                :,
                :,
                row : row + rows_spanned : stride_h,
                column : column + columns_spanned : stride_w,
            ]
            window += planes[:, row, column].transpose(0, 1)
    return padded[:, :, pad_h : pad_h + height, pad_w : pad_w + width]


class _InputGradientConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, output_gradient):
        x, weight = ctx.saved_tensors
        needs_input, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        input_gradient = weight_gradient = bias_gradient = None
        # Under autocast the forward ran in a lower dtype than its saved float32 inputs:
        # the backward runs in that dtype too, and its gradients take their inputs' dtypes.
        compute_dtype = output_gradient.dtype
        weight_computed = weight.to(compute_dtype)
        if needs_input:
            input_gradient = _input_gradient(
                output_gradient, weight_computed, x.shape, ctx.stride, ctx.padding
            ).to(x.dtype)
        if needs_weight or needs_bias:
            # PyTorch's own kernel, handed the weight itself: a freshly made contiguous one
            # (as torch.nn.grad.conv2d_weight makes) costs a copy of the channels_last
            # output gradient, 11 ms at batch 256.
            _, weight_gradient, bias_gradient = torch.ops.aten.convolution_backward(
                output_gradient,
                x.to(compute_dtype),
                weight_computed,
                [weight.shape[0]],
                list(ctx.stride),
                list(ctx.padding),
                [1, 1],
                False,
                [0, 0],
                1,
                [False, needs_weight, needs_bias],
            )
            if weight_gradient is not None:
                weight_gradient = weight_gradient.to(weight.dtype)
            if bias_gradient is not None:
                bias_gradient = bias_gradient.to(weight.dtype)
        return input_gradient, weight_gradient, bias_gradient, None, None


class InputGradientConv2d(nn.Conv2d):
    """A ``torch.nn.Conv2d`` with a faster input gradient for few input channels.

    Same parameters, state dict and forward values as ``nn.Conv2d``; only the backward
    pass with respect to the input differs in how it is computed. Dilation, groups and
    padding modes other than zeros are not supported.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, bias :
        As in ``torch.nn.Conv2d``; ``padding`` must be an int or a pair.

    Raises
    ------
    ValueError
        If ``padding`` is a string such as ``'same'``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        if isinstance(padding, str):
            raise ValueError(f"padding must be an int or a pair of ints, got {padding!r}.")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x):
        return _InputGradientConvolution.apply(x, self.weight, self.bias, self.stride, self.padding)
