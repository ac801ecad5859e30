"""The conjugate energy-based model and batched inference."""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_cebm._core import model as model_module
from sklearn_cebm._core.biases import SphericalGaussianBias
from sklearn_cebm._core.encoders import ConvEncoder, MLPEncoder, initialize_layers
from sklearn_cebm._core.exponential_family import (
    gaussian_marginal_energy,
    natural_to_mean_std,
    posterior_natural_params,
)
from sklearn_cebm._core.model import (
    INFERENCE_BATCH_SIZE,
    MIN_CPU_INFERENCE_BATCH_SIZE,
    ConjugateEnergyModel,
    inference_batch_size,
    last_level_cache_bytes,
    map_batches,
    widest_activation_bytes,
)


def _model(n_features=4, n_components=3, seed=0):
    encoder = MLPEncoder(n_features, (8,), 2 * n_components)
    initialize_layers(encoder, torch.Generator().manual_seed(seed))
    return ConjugateEnergyModel(encoder, SphericalGaussianBias(n_components), (n_features,))


def _constant_linear(n_features, n_outputs, weight):
    layer = nn.Linear(n_features, n_outputs, bias=False)
    with torch.no_grad():
        layer.weight.fill_(weight)
    return layer


def test_energy_is_bias_marginal_energy_of_statistics():
    model = _model(seed=1)
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(2))

    raw = model.encoder(x)
    statistic_1, statistic_2 = model.sufficient_statistics(x)
    torch.testing.assert_close(statistic_1, raw[:, :3])
    torch.testing.assert_close(statistic_2, -(nn.functional.softplus(raw[:, 3:]) + 1e-6))
    expected = gaussian_marginal_energy(model.bias.natural_params(), (statistic_1, statistic_2))
    torch.testing.assert_close(model(x), expected)
    torch.testing.assert_close(model(x), model.bias.energy((statistic_1, statistic_2)))
    mean, std = model.posterior_mean_std(x)
    expected_mean, expected_std = natural_to_mean_std(
        *posterior_natural_params(model.bias.natural_params(), (statistic_1, statistic_2))
    )
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(std, expected_std)


def test_model_reshapes_flat_inputs_to_input_shape():
    seen_shapes = []

    class Recorder(nn.Module):
        def forward(self, x):
            seen_shapes.append(tuple(x.shape))
            return x.flatten(1)[:, :4]

    model = ConjugateEnergyModel(Recorder(), SphericalGaussianBias(2), (2, 3))
    model(torch.zeros(5, 6))
    assert seen_shapes == [(5, 2, 3)]


@pytest.mark.parametrize("weight", [1e4, -1e4, 1.0, -1.0])
def test_precision_statistic_strictly_negative_for_extreme_encoders(weight):
    # A linear encoder with weights +-1e4 puts raw outputs near +-1e4 * sum(x): softplus
    # saturates at 0 for the negative ones and at the identity for the positive ones.
    model = ConjugateEnergyModel(_constant_linear(3, 4, weight), SphericalGaussianBias(2), (3,))
    x = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.5, -0.2, 0.9], [0.0, 0.0, 0.0]])

    _, statistic_2 = model.sufficient_statistics(x)
    energy = model(x)

    assert (statistic_2 < 0).all()
    assert torch.isfinite(energy).all()
    mean, std = model.posterior_mean_std(x)
    assert torch.isfinite(mean).all()
    assert torch.isfinite(std).all() and (std > 0).all()


@pytest.mark.parametrize(
    "n_outputs, wrap",
    [(5, None), (2, None), (4, "unsqueeze"), (4, "rows")],
)
def test_wrong_encoder_output_shape_raises(n_outputs, wrap):
    layer = nn.Linear(3, n_outputs)
    if wrap == "unsqueeze":
        encoder = nn.Sequential(layer, nn.Unflatten(1, (1, n_outputs)))
    elif wrap == "rows":

        class DropRow(nn.Module):
            def forward(self, x):
                return layer(x)[1:]

        encoder = DropRow()
    else:
        encoder = layer
    model = ConjugateEnergyModel(encoder, SphericalGaussianBias(2), (3,))

    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
        model(torch.zeros(6, 3))


@pytest.mark.parametrize("batch_size", [1, 3, 7, 20, 100])
def test_map_batches_equals_unbatched(batch_size):
    model = _model(seed=3)
    x = np.random.default_rng(4).standard_normal((20, 4))
    with torch.no_grad():
        expected = model(torch.as_tensor(x, dtype=torch.float32))

    energy = map_batches(model, x, batch_size, torch.device("cpu"))

    assert isinstance(energy, torch.Tensor)
    assert energy.device.type == "cpu"
    assert energy.dtype == torch.float32
    torch.testing.assert_close(energy, expected)


@pytest.mark.parametrize("batch_size", [1, 6, 50])
def test_map_batches_handles_tuple_outputs(batch_size):
    model = _model(seed=5)
    x = torch.randn(13, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        expected_mean, expected_std = model.posterior_mean_std(x.float())

    result = map_batches(model.posterior_mean_std, x, batch_size, torch.device("cpu"))

    assert isinstance(result, tuple) and len(result) == 2
    mean, std = result
    assert mean.shape == std.shape == (13, 3)
    assert mean.device.type == std.device.type == "cpu"
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(std, expected_std)


def test_map_batches_runs_without_autograd():
    model = _model(seed=7)
    energy = map_batches(model, torch.zeros(4, 4), 2, torch.device("cpu"))
    assert not energy.requires_grad


def test_widest_activation_bytes_is_the_largest_layer_output_per_row():
    # 4 inputs -> 8 hidden (SiLU) -> 6 outputs, float32: the widest output is 8 floats.
    model = _model(n_features=4, n_components=3)
    widest = widest_activation_bytes(model, model, 4, torch.device("cpu"))
    assert widest == 8 * 4
    # The hooks are gone afterwards.
    assert all(not layer._forward_hooks for layer in model.modules())


def test_widest_activation_bytes_is_at_least_the_input_row():
    model = _model(n_features=50, n_components=2)
    assert widest_activation_bytes(model, model, 50, torch.device("cpu")) == 50 * 4


def test_cpu_inference_batch_keeps_two_widest_activations_in_half_the_cache(monkeypatch):
    monkeypatch.setattr(model_module, "last_level_cache_bytes", lambda: 32 * 2**20)
    encoder = ConvEncoder((1, 28, 28), 2 * 8)
    model = ConjugateEnergyModel(encoder, SphericalGaussianBias(8), (1, 28, 28))
    # The first convolution's output, 32 channels of 28x28 float32, is the widest.
    widest = 32 * 28 * 28 * 4
    assert widest_activation_bytes(model, model, 784, torch.device("cpu")) == widest
    rows = inference_batch_size(model, model, 784, torch.device("cpu"))
    assert rows == 32 * 2**20 // (4 * widest)

    monkeypatch.setattr(model_module, "last_level_cache_bytes", lambda: 2**10)
    assert inference_batch_size(model, model, 784, torch.device("cpu")) == (
        MIN_CPU_INFERENCE_BATCH_SIZE
    )
    small = _model(n_features=4)
    monkeypatch.setattr(model_module, "last_level_cache_bytes", lambda: 2**30)
    assert inference_batch_size(small, small, 4, torch.device("cpu")) == INFERENCE_BATCH_SIZE


def test_a_call_of_few_rows_needs_no_probe():
    def never_called(batch):
        raise AssertionError("rows that fit in the smallest batch need no probe")

    model = _model()
    cpu = torch.device("cpu")
    rows = inference_batch_size(never_called, model, 4, cpu, MIN_CPU_INFERENCE_BATCH_SIZE)
    assert rows == MIN_CPU_INFERENCE_BATCH_SIZE


def test_accelerator_inference_batch_is_the_fixed_one():
    def never_called(batch):
        raise AssertionError("an accelerator's batch needs no probe")

    model = _model()
    rows = inference_batch_size(never_called, model, 4, torch.device("cuda"))
    assert rows == INFERENCE_BATCH_SIZE


def test_last_level_cache_bytes_falls_back_without_sysfs(monkeypatch):
    assert last_level_cache_bytes() > 0
    monkeypatch.setattr(model_module.glob, "glob", lambda pattern: [])
    assert last_level_cache_bytes() == model_module.FALLBACK_CACHE_BYTES


def test_last_level_cache_bytes_reads_the_largest_sysfs_size(tmp_path, monkeypatch):
    paths = []
    for index, text in enumerate(["48K\n", "1024K\n", "32768K\n", "bad\n"]):
        path = tmp_path / f"index{index}_size"
        path.write_text(text)
        paths.append(str(path))
    monkeypatch.setattr(model_module.glob, "glob", lambda pattern: paths)
    assert last_level_cache_bytes() == 32768 * 2**10
