"""The VAE core: decoders, the Gaussian KL and likelihood, and the ELBO."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from sklearn_cebm._core.vae import (
    ConvDecoder,
    MLPDecoder,
    VariationalAutoencoder,
    build_decoder,
    gaussian_kl_to_standard_normal,
    gaussian_log_likelihood,
)


def _inverse_softplus(value):
    return math.log(math.expm1(value))


def test_gaussian_kl_to_standard_normal_matches_torch():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=generator)
    std = torch.rand(5, 3, generator=generator) + 0.1
    expected = kl_divergence(Normal(mean, std), Normal(0.0, 1.0)).sum(dim=-1)
    torch.testing.assert_close(gaussian_kl_to_standard_normal(mean, std), expected)


def test_gaussian_kl_to_standard_normal_is_zero_at_the_prior():
    kl = gaussian_kl_to_standard_normal(torch.zeros(2, 4), torch.ones(2, 4))
    torch.testing.assert_close(kl, torch.zeros(2))


def test_gaussian_log_likelihood_matches_torch():
    generator = torch.Generator().manual_seed(1)
    x, mean = torch.randn(2, 4, 6, generator=generator)
    std = torch.tensor(0.7)
    expected = Normal(mean, std).log_prob(x).sum(dim=-1)
    torch.testing.assert_close(gaussian_log_likelihood(x, mean, std), expected)


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32), (2, 9, 11)])
def test_conv_decoder_mirrors_the_image_shape(image_shape):
    decoder = ConvDecoder(image_shape, n_latent=5)
    assert decoder(torch.zeros(3, 5)).shape == (3, math.prod(image_shape))


def test_conv_decoder_rejects_tiny_images():
    with pytest.raises(ValueError, match="too small"):
        ConvDecoder((1, 4, 4), n_latent=2)


def test_mlp_decoder_reverses_the_hidden_widths():
    decoder = MLPDecoder(n_features=7, hidden_layer_sizes=(16, 8), n_latent=3)
    widths = [layer.out_features for layer in decoder.layers if isinstance(layer, nn.Linear)]
    assert widths == [8, 16, 7]


def test_build_decoder_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    first = build_decoder((1, 8, 8), (16,), 64, 4, torch.Generator().manual_seed(3))
    second = build_decoder((1, 8, 8), (16,), 64, 4, torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def _linear_gaussian_vae(n_features=4, n_latent=2, sigma=0.5):
    """A linear decoder ``W z + b`` with orthogonal columns and the exact posterior as q."""
    generator = torch.Generator().manual_seed(4)
    basis, _ = torch.linalg.qr(torch.randn(n_features, n_latent, generator=generator))
    weight = basis * torch.tensor([1.5, 0.8])  # columns orthogonal: W^T W is diagonal
    offset = torch.randn(n_features, generator=generator)
    decoder = nn.Linear(n_latent, n_features)
    # The exact posterior: Sigma = (I + W^T W / sigma^2)^-1, mu = Sigma W^T (x - b) / sigma^2.
    posterior_var = 1.0 / (1.0 + (weight**2).sum(dim=0) / sigma**2)
    gain = posterior_var[:, None] * weight.T / sigma**2
    encoder = nn.Linear(n_features, 2 * n_latent)
    with torch.no_grad():
        decoder.weight.copy_(weight)
        decoder.bias.copy_(offset)
        encoder.weight.zero_()
        encoder.weight[:n_latent] = gain
        encoder.bias[:n_latent] = -gain @ offset
        raw_std = [_inverse_softplus(math.sqrt(v) - 1e-4) for v in posterior_var.tolist()]
        encoder.bias[n_latent:] = torch.tensor(raw_std)
    vae = VariationalAutoencoder(encoder, decoder, (n_features,), n_latent)
    with torch.no_grad():
        vae.observation_std_raw.fill_(_inverse_softplus(sigma - 1e-3))
    marginal = MultivariateNormal(offset, weight @ weight.T + sigma**2 * torch.eye(n_features))
    return vae, weight, offset, sigma, marginal


def test_expected_log_likelihood_matches_its_closed_form():
    vae, weight, offset, sigma, _ = _linear_gaussian_vae()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(40_000, 1, 2, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        mean, std = vae.posterior_mean_std(x)
        estimate = vae.expected_log_likelihood(x, mean, std, noise)
    # E_q ||x - W z - b||^2 = ||x - W mu - b||^2 + sum_k ||w_k||^2 s_k^2, by hand.
    residual = ((x - mean @ weight.T - offset) ** 2).sum(dim=1)
    spread = ((weight**2).sum(dim=0) * std**2).sum(dim=1)
    closed_form = -0.5 * (residual + spread) / sigma**2 - 4 * math.log(
        sigma * math.sqrt(2 * math.pi)
    )
    torch.testing.assert_close(estimate, closed_form, rtol=0, atol=0.03)


def test_elbo_equals_log_evidence_with_the_exact_posterior():
    vae, _, _, _, marginal = _linear_gaussian_vae()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(7))
    noise = torch.randn(40_000, 1, 2, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        elbo = vae.elbo(x, noise)
    torch.testing.assert_close(elbo, marginal.log_prob(x), rtol=0, atol=0.03)


def test_elbo_is_below_log_evidence_with_a_worse_posterior():
    vae, _, _, _, marginal = _linear_gaussian_vae()
    with torch.no_grad():
        vae.encoder.bias[2:] += 1.0  # posterior stds too wide
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(9))
    noise = torch.randn(40_000, 1, 2, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        assert torch.all(vae.elbo(x, noise) < marginal.log_prob(x) - 0.05)


def test_forward_is_a_deterministic_function_of_each_row():
    vae, *_ = _linear_gaussian_vae()
    vae.score_noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(11))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        together = vae(x)
        alone = torch.cat([vae(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone)
    torch.testing.assert_close(vae(x), together)


def test_posterior_rejects_an_encoder_of_the_wrong_width():
    vae = VariationalAutoencoder(nn.Linear(4, 3), nn.Linear(2, 4), (4,), n_latent=2)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
        vae.posterior_mean_std(torch.zeros(2, 4))
