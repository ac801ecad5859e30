"""The input-gradient norm of an energy, against closed forms."""

import torch

from sklearn_cebm._core.model import map_batches
from sklearn_cebm._core.scores import energy_input_gradient_norm


def _quadratic_energy(x):
    return 0.5 * (x**2).sum(dim=1)


def test_energy_input_gradient_norm_of_a_quadratic_is_the_input_norm():
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    norms = energy_input_gradient_norm(_quadratic_energy, x)
    torch.testing.assert_close(norms, x.norm(dim=1))
    assert not norms.requires_grad


def test_energy_input_gradient_norm_applies_the_chain_rule_for_input_scale():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    scale = torch.tensor([1.0, 10.0, 0.5])
    norms = energy_input_gradient_norm(_quadratic_energy, x, input_scale=scale)
    torch.testing.assert_close(norms, (x / scale).norm(dim=1))


def test_energy_input_gradient_norm_works_under_inference_mode():
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(2))

    def gradient_norm(batch):
        return energy_input_gradient_norm(_quadratic_energy, batch)

    norms = map_batches(gradient_norm, x, batch_size=3, device=torch.device("cpu"))
    torch.testing.assert_close(norms, x.norm(dim=1))


def test_energy_input_gradient_norm_flattens_image_shaped_inputs():
    x = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(3))

    def energy(batch):
        return 0.5 * (batch**2).sum(dim=(1, 2, 3))

    torch.testing.assert_close(energy_input_gradient_norm(energy, x), x.flatten(1).norm(dim=1))
