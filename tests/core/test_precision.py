"""Reduced precision: when bfloat16 is chosen, and that the networks under it stay close to
float32 and hand float32 to what follows them."""

import pytest
import torch
from torch import nn

from sklearn_cebm._core import precision
from sklearn_cebm._core.biases import SphericalGaussianBias
from sklearn_cebm._core.encoders import ConvEncoder, initialize_layers
from sklearn_cebm._core.input_convolution import InputGradientConv2d
from sklearn_cebm._core.model import ConjugateEnergyModel
from sklearn_cebm._core.precision import (
    compute_dtype_for,
    cpu_flags,
    has_native_bfloat16,
    run_in_precision,
)

CPU = torch.device("cpu")

# The detection itself is under test here: conftest.py must not replace it.
pytestmark = pytest.mark.hardware_precision


def _write(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return str(path)


def test_cpu_flags_reads_x86_flags_and_arm_features(tmp_path):
    x86 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nbogomips\t: 1\n"
    assert cpu_flags(_write(tmp_path, x86)) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    arm = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"
    assert "bf16" in cpu_flags(_write(tmp_path, arm))
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize(
    "flags, native",
    [
        ({"avx2", "avx512f", "avx512_bf16"}, True),
        ({"avx2", "amx_bf16"}, True),
        ({"asimd", "bf16"}, True),
        ({"avx2", "fma", "avx512f"}, False),
        (set(), False),
    ],
)
def test_native_bfloat16_on_cpu_follows_the_flags(monkeypatch, flags, native):
    monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert has_native_bfloat16(CPU) is native
    expected = torch.bfloat16 if native else None
    assert compute_dtype_for("auto", CPU) is expected


def test_native_bfloat16_is_not_assumed_off_linux(monkeypatch):
    monkeypatch.setattr(precision.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert not has_native_bfloat16(CPU)
    assert not has_native_bfloat16(torch.device("meta"))


def test_explicit_precisions_ignore_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "has_native_bfloat16", lambda device: False)
    assert compute_dtype_for("bfloat16", CPU) is torch.bfloat16
    assert compute_dtype_for("float32", CPU) is None


def _conv_model(seed=0):
    encoder = ConvEncoder((1, 12, 12), 2 * 4)
    initialize_layers(encoder, torch.Generator().manual_seed(seed))
    return ConjugateEnergyModel(encoder, SphericalGaussianBias(4), (1, 12, 12))


def test_run_in_precision_returns_float32_close_to_float32():
    network = nn.Sequential(nn.Linear(16, 32), nn.SiLU(), nn.Linear(32, 8))
    x = torch.randn(10, 16, generator=torch.Generator().manual_seed(1))
    exact = network(x)
    assert torch.equal(run_in_precision(network, x, None), exact)
    reduced = run_in_precision(network, x, torch.bfloat16)
    assert reduced.dtype == torch.float32
    assert not torch.equal(reduced, exact)  # the products did run in bfloat16
    torch.testing.assert_close(reduced, exact, rtol=0.02, atol=0.02)


def test_bfloat16_energy_and_input_gradient_stay_close_to_float32():
    model = _conv_model(seed=2)
    x = torch.rand(6, 144, generator=torch.Generator().manual_seed(3)) * 2 - 1

    def energy_and_gradient(compute_dtype):
        model.compute_dtype = compute_dtype
        inputs = x.clone().requires_grad_(True)
        energy = model(inputs)
        (gradient,) = torch.autograd.grad(energy.sum(), inputs)
        return energy, gradient

    energy, gradient = energy_and_gradient(None)
    energy_reduced, gradient_reduced = energy_and_gradient(torch.bfloat16)
    assert energy_reduced.dtype == gradient_reduced.dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: relative errors of a few in a thousand per product.
    torch.testing.assert_close(energy_reduced, energy, rtol=1e-2, atol=1e-2)
    cosine = nn.functional.cosine_similarity(gradient_reduced, gradient, dim=1)
    assert cosine.min() > 0.99


def test_input_gradient_convolution_under_autocast_matches_float32_gradients():
    torch.manual_seed(4)
    fast = InputGradientConv2d(1, 8, 3, 1, 1)
    reference = nn.Conv2d(1, 8, 3, 1, 1)
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(5, 1, 9, 9)
    upstream = torch.randn(5, 8, 9, 9)

    def gradients(layer, reduced):
        inputs = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=reduced):
            output = layer(inputs)
        (output.float() * upstream).sum().backward()
        grads = (inputs.grad, layer.weight.grad, layer.bias.grad)
        layer.zero_grad()
        return grads

    for got, expected in zip(
        gradients(fast, reduced=True), gradients(reference, reduced=False), strict=True
    ):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0.03, atol=0.05)


def test_models_in_eval_mode_compute_in_float32():
    model = _conv_model(seed=5)
    x = torch.rand(4, 144, generator=torch.Generator().manual_seed(6)) * 2 - 1
    model.eval()
    exact = model(x)
    model.compute_dtype = torch.bfloat16
    assert torch.equal(model(x), exact)
    model.train()
    assert not torch.equal(model(x), exact)


def test_float32_products_run_a_bfloat16_model_in_float32_within_the_block():
    model = _conv_model(seed=7).train()
    x = torch.rand(4, 144, generator=torch.Generator().manual_seed(8)) * 2 - 1
    exact = model(x)
    model.compute_dtype = torch.bfloat16
    with precision.float32_products(model):
        assert model.compute_dtype is None
        assert torch.equal(model(x), exact)
    assert model.compute_dtype is torch.bfloat16
    assert not torch.equal(model(x), exact)
    with pytest.raises(RuntimeError, match="inside"), precision.float32_products(model):
        raise RuntimeError("inside")
    assert model.compute_dtype is torch.bfloat16
