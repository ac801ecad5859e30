"""The moving average of weights against closed forms: constants, ramps, its warm-up."""

import pytest
import torch

from sklearn_cebm._core.weight_average import WeightAverage, copy_parameters


def _scalar_module():
    return torch.nn.Linear(1, 1, bias=False)


def _feed(average, module, values):
    for value in values:
        with torch.no_grad():
            module.weight.fill_(float(value))
        average.update(module)


def test_weight_average_starts_at_the_first_update_and_keeps_a_constant():
    module = _scalar_module()
    average = WeightAverage(0.99)
    assert average.weights is None
    _feed(average, module, [3.0] * 50)
    assert average.n_updates == 50
    assert average.weights[0].item() == pytest.approx(3.0)


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.99])
def test_weight_average_of_a_ramp_lags_by_the_exponential_average_s_delay(decay):
    # An exponential average with factor d of w_n = n lags it by d / (1 - d) once the
    # transient d**n has died out.
    module = _scalar_module()
    average = WeightAverage(decay)
    n = 5000
    _feed(average, module, range(1, n + 1))
    assert n - average.weights[0].item() == pytest.approx(decay / (1 - decay), rel=1e-4)


@pytest.mark.parametrize("n", [20, 100, 500])
def test_weight_average_warms_up_over_a_tenth_of_the_updates(n):
    # While (1 + n) / (10 + n) < decay, the average of the ramp w_k = k is 0.9 n but for
    # a transient that dies out as n**-9: it lags by a tenth of the updates.
    module = _scalar_module()
    average = WeightAverage(0.999)
    _feed(average, module, range(1, n + 1))
    assert n - average.weights[0].item() == pytest.approx(n / 10, rel=1e-4)


def test_copy_parameters_writes_the_average_into_the_module():
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    average = WeightAverage(0.9)
    average.update(module)
    before = [p.detach().clone() for p in module.parameters()]
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(1.0)
    average.copy_to(module)
    for parameter, expected in zip(module.parameters(), before, strict=True):
        assert torch.equal(parameter, expected)
    with pytest.raises(ValueError):
        copy_parameters(before[:1], module)
