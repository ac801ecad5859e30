"""The first-layer convolution whose input gradient is a matrix product: same values and
gradients as ``torch.nn.Conv2d``, to every order the estimators use."""

import pytest
import torch
from torch import nn

from sklearn_cebm._core.input_convolution import (
    InputGradientConv2d,
    _InputGradientConvolution,
)

# (in_channels, out_channels, kernel, stride, padding, height, width): the paper's first
# layer, RGB inputs, strides the scatter has to skip, odd sizes and no padding.
CONFIGURATIONS = [
    (1, 4, 3, 1, 1, 7, 7),
    (3, 5, 4, 2, 1, 9, 8),
    (2, 3, (3, 2), (2, 3), (0, 1), 8, 11),
    (1, 2, 1, 1, 0, 5, 4),
]


def _pair(in_channels, out_channels, kernel, stride, padding, bias=True):
    fast = InputGradientConv2d(in_channels, out_channels, kernel, stride, padding, bias=bias)
    reference = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=bias)
    reference.load_state_dict(fast.state_dict())
    return fast.double(), reference.double()


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_all_gradients_match_conv2d(configuration, bias):
    *layer, height, width = configuration
    torch.manual_seed(0)
    fast, reference = _pair(*layer, bias=bias)
    x = torch.randn(3, layer[0], height, width, dtype=torch.float64, requires_grad=True)
    weights = torch.randn_like(reference(x))

    outputs = []
    for module in (fast, reference):
        y = module(x)
        gradients = torch.autograd.grad((weights * y).sum(), [x, *module.parameters()])
        outputs.append((y, gradients))

    (y_fast, gradients_fast), (y_reference, gradients_reference) = outputs
    torch.testing.assert_close(y_fast, y_reference)
    assert len(gradients_fast) == len(gradients_reference) == (3 if bias else 2)
    for fast_gradient, reference_gradient in zip(gradients_fast, gradients_reference, strict=True):
        torch.testing.assert_close(fast_gradient, reference_gradient)


@pytest.mark.parametrize("configuration", CONFIGURATIONS[:2])
def test_gradcheck_and_gradgradcheck(configuration):
    # Second order matters: denoising score matching backpropagates through dE/dx.
    *layer, height, width = configuration
    torch.manual_seed(1)
    fast, _ = _pair(*layer)
    x = torch.randn(2, layer[0], height, width, dtype=torch.float64, requires_grad=True)

    def function(x, weight, bias):
        # The SiLU makes the second derivative in x non-zero.
        y = _InputGradientConvolution.apply(x, weight, bias, fast.stride, fast.padding)
        return torch.nn.functional.silu(y)

    inputs = (x, fast.weight, fast.bias)
    assert torch.autograd.gradcheck(function, inputs)
    assert torch.autograd.gradgradcheck(function, inputs)


def test_string_padding_raises():
    with pytest.raises(ValueError, match="padding must be an int or a pair"):
        InputGradientConv2d(1, 2, 3, padding="same")


def test_channels_last_gradient_matches_contiguous():
    # ConvEncoder runs channels_last, where the transposed gradient reshapes as a view.
    torch.manual_seed(2)
    fast, reference = _pair(1, 8, 3, 1, 1)
    fast, reference = fast.float(), reference.float()
    x = torch.randn(4, 1, 10, 10, requires_grad=True)
    y_fast = fast.to(memory_format=torch.channels_last)(x)
    (gradient_fast,) = torch.autograd.grad(y_fast.square().sum(), x)
    (gradient_reference,) = torch.autograd.grad(reference(x).square().sum(), x)
    torch.testing.assert_close(gradient_fast, gradient_reference, rtol=1e-5, atol=1e-5)
