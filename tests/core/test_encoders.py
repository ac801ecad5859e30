"""The encoders of neural sufficient statistics and their seeded initialisation."""

import pytest
import torch
from torch import nn

from sklearn_cebm._core.encoders import ConvEncoder, MLPEncoder, initialize_layers


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32), (2, 9, 13)])
def test_conv_encoder_output_shape(image_shape):
    encoder = ConvEncoder(image_shape, n_outputs=6)
    initialize_layers(encoder, torch.Generator().manual_seed(0))
    x = torch.rand((5, *image_shape), generator=torch.Generator().manual_seed(1))

    output = encoder(x)

    assert output.shape == (5, 6)
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("image_shape", [(1, 7, 7), (1, 28, 4), (3, 2, 32)])
def test_conv_encoder_too_small_image_raises(image_shape):
    with pytest.raises(ValueError, match=r"image_shape=\(\d+, \d+, \d+\) is too small"):
        ConvEncoder(image_shape, n_outputs=4)


def test_conv_encoder_matches_paper_architecture():
    # Sec. 7.1 (Nijkamp et al., 2019a): four 3-4-4-4 convolutions with strides 1-2-2-2,
    # padding 1 and 32-32-64-64 channels, each followed by SiLU, then a linear head.
    encoder = ConvEncoder((1, 28, 28), n_outputs=2 * 16)

    convolutions = [layer for layer in encoder.features if isinstance(layer, nn.Conv2d)]
    activations = [layer for layer in encoder.features if isinstance(layer, nn.SiLU)]
    assert [layer.out_channels for layer in convolutions] == [32, 32, 64, 64]
    assert [layer.in_channels for layer in convolutions] == [1, 32, 32, 64]
    assert [layer.kernel_size for layer in convolutions] == [(3, 3), (4, 4), (4, 4), (4, 4)]
    assert [layer.stride for layer in convolutions] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert all(layer.padding == (1, 1) for layer in convolutions)
    assert len(activations) == 4
    layers = list(encoder.features)
    for index, layer in enumerate(layers[:8]):
        assert isinstance(layer, nn.Conv2d if index % 2 == 0 else nn.SiLU)
    assert isinstance(layers[-1], nn.Flatten)
    # 28 -> 28 -> 14 -> 7 -> 3 pixels per side after the four convolutions.
    assert encoder.head.in_features == 64 * 3 * 3
    assert encoder.head.out_features == 32


@pytest.mark.parametrize("hidden_layer_sizes", [(), (16,), (8, 4)])
def test_mlp_encoder_output_shape_and_layers(hidden_layer_sizes):
    encoder = MLPEncoder(6, hidden_layer_sizes, n_outputs=4)
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(2))

    assert encoder(x).shape == (7, 4)
    linears = [layer for layer in encoder.layers if isinstance(layer, nn.Linear)]
    assert [layer.out_features for layer in linears] == [*hidden_layer_sizes, 4]
    assert sum(isinstance(layer, nn.SiLU) for layer in encoder.layers) == len(hidden_layer_sizes)


def test_mlp_encoder_flattens_inputs_of_any_shape():
    encoder = MLPEncoder(6, (5,), n_outputs=2)
    x = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(encoder(x), encoder(x.reshape(3, 6)))


@pytest.mark.parametrize(
    "build",
    [lambda: MLPEncoder(5, (8, 8), 4), lambda: ConvEncoder((1, 8, 8), 4)],
    ids=["mlp", "conv"],
)
def test_initialize_layers_reproducible_without_touching_global_rng(build):
    first, second = build(), build()
    global_state = torch.random.get_rng_state()

    initialize_layers(first, torch.Generator().manual_seed(4))
    initialize_layers(second, torch.Generator().manual_seed(4))

    assert torch.equal(torch.random.get_rng_state(), global_state)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    third = build()
    initialize_layers(third, torch.Generator().manual_seed(5))
    assert not torch.equal(next(iter(first.parameters())), next(iter(third.parameters())))


def test_initialize_layers_uses_default_pytorch_bounds():
    # Kaiming-uniform with a = sqrt(5) gives weights in +-1/sqrt(fan_in), and the biases
    # share that bound: PyTorch's default Linear initialisation.
    layer = nn.Linear(50, 400)
    initialize_layers(layer, torch.Generator().manual_seed(6))
    bound = 1 / 50**0.5
    assert layer.weight.abs().max() <= bound
    assert layer.weight.abs().max() > 0.95 * bound
    assert layer.bias.abs().max() <= bound
    assert layer.bias.abs().max() > 0.9 * bound


def test_silu_overwrites_its_input_only_without_autograd():
    from sklearn_cebm._core.encoders import SiLU

    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.silu(x)

    source = x.clone().requires_grad_(True)
    output = SiLU()(source)
    torch.testing.assert_close(output, expected)
    assert output.data_ptr() != source.data_ptr()
    (gradient,) = torch.autograd.grad(output.sum(), source)
    sigmoid = torch.sigmoid(x)
    torch.testing.assert_close(gradient, sigmoid * (1 + x * (1 - sigmoid)))

    for context in (torch.no_grad, torch.inference_mode):
        inputs = x.clone()
        with context():
            output = SiLU()(inputs)
        torch.testing.assert_close(output, expected)
        assert output.data_ptr() == inputs.data_ptr()
