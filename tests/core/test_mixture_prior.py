"""The mixture-of-Gaussians prior: its closed-form KL term, q(y | x) and ancestral draws."""

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal, kl_divergence
from torch.distributions import Independent as IndependentNormal

from sklearn_cebm._core.mixture_prior import MixtureOfGaussiansPrior, gaussian_entropy
from sklearn_cebm._core.vae import StandardNormalPrior, gaussian_kl_to_standard_normal


def _random_prior(n_latent=3, n_clusters=4, seed=0):
    """A prior with distinct means, stds and (learned) weights."""
    generator = torch.Generator().manual_seed(seed)
    prior = MixtureOfGaussiansPrior(n_latent, n_clusters, learn_weights=True)
    with torch.no_grad():
        prior.means.copy_(torch.randn(n_clusters, n_latent, generator=generator))
        prior.log_stds.copy_(0.4 * torch.randn(n_clusters, n_latent, generator=generator))
        prior.weight_logits.copy_(torch.randn(n_clusters, generator=generator))
    return prior


def _random_posterior(n=5, n_latent=3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, n_latent, generator=generator)
    std = 0.2 + torch.rand(n, n_latent, generator=generator)
    return mean, std


def _monte_carlo_kl(prior, mean, std, responsibilities, n_draws=200_000, seed=2):
    """``E_q[log q(z|x) + log q(y|x) - log p(z|y) - log p(y)]`` with draws of z."""
    generator = torch.Generator().manual_seed(seed)
    z = mean + std * torch.randn(n_draws, *mean.shape, generator=generator)
    log_q_z = Normal(mean, std).log_prob(z).sum(dim=-1)  # (S, n)
    components = Normal(prior.means, prior.component_stds())
    log_p_z_given_y = components.log_prob(z.unsqueeze(-2)).sum(dim=-1)  # (S, n, L)
    log_ratio_y = torch.log(responsibilities) - prior.log_weights()  # (n, L)
    per_draw = log_q_z + (responsibilities * (log_ratio_y - log_p_z_given_y)).sum(dim=-1)
    return per_draw.mean(dim=0)


def test_mixture_kl_matches_monte_carlo():
    prior, (mean, std) = _random_prior(), _random_posterior()
    with torch.no_grad():
        closed_form = prior.kl_divergence(mean, std)
        estimate = _monte_carlo_kl(prior, mean, std, prior.responsibilities(mean, std))
    torch.testing.assert_close(closed_form, estimate, rtol=0, atol=0.03)


def test_mixture_kl_is_the_minimum_over_the_cluster_posterior():
    # Any other q(y | x) gives a larger KL term: the responsibilities are its optimum.
    prior, (mean, std) = _random_prior(), _random_posterior()
    with torch.no_grad():
        closed_form = prior.kl_divergence(mean, std)
        uniform = torch.full((5, 4), 0.25)
        assert torch.all(_monte_carlo_kl(prior, mean, std, uniform) > closed_form + 0.05)


def test_mixture_kl_bounds_the_kl_to_the_marginal_mixture():
    # KL(q(y|x) q(z|x) || p(y, z)) >= KL(q(z|x) || p(z)) with p(z) the marginal mixture.
    prior, (mean, std) = _random_prior(), _random_posterior()
    marginal = MixtureSameFamily(
        Categorical(probs=prior.mixing_weights()),
        IndependentNormal(Normal(prior.means, prior.component_stds()), 1),
    )
    z = mean + std * torch.randn(100_000, 5, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        marginal_kl = (Normal(mean, std).log_prob(z).sum(-1) - marginal.log_prob(z)).mean(0)
        assert torch.all(prior.kl_divergence(mean, std) >= marginal_kl - 0.02)


def test_one_component_mixture_kl_is_the_gaussian_kl():
    prior, (mean, std) = _random_prior(n_clusters=1), _random_posterior()
    expected = kl_divergence(Normal(mean, std), Normal(prior.means[0], prior.component_stds()[0]))
    with torch.no_grad():
        torch.testing.assert_close(prior.kl_divergence(mean, std), expected.sum(dim=-1))


@pytest.mark.parametrize("n_clusters", [1, 5])
def test_mixture_of_standard_normals_is_the_vae_kl(n_clusters):
    # init_scale=0: every component is N(0, I), so the prior is the VAE's.
    prior = MixtureOfGaussiansPrior(3, n_clusters, init_scale=0.0)
    prior.reset_parameters(torch.Generator().manual_seed(0))
    mean, std = _random_posterior()
    with torch.no_grad():
        torch.testing.assert_close(
            prior.kl_divergence(mean, std), gaussian_kl_to_standard_normal(mean, std)
        )
        torch.testing.assert_close(
            prior.kl_divergence(mean, std), StandardNormalPrior(3).kl_divergence(mean, std)
        )


def test_responsibilities_are_the_softmax_of_the_expected_log_joint():
    prior, (mean, std) = _random_prior(), _random_posterior()
    with torch.no_grad():
        responsibilities = prior.responsibilities(mean, std)
        torch.testing.assert_close(responsibilities.sum(dim=1), torch.ones(5))
        assert torch.all(responsibilities >= 0)
        # log pi_y + E_q[log N(z; mu_y, sigma_y**2)], by torch's distributions and draws.
        z = mean + std * torch.randn(200_000, 5, 3, generator=torch.Generator().manual_seed(4))
        components = Normal(prior.means, prior.component_stds())
        expected = components.log_prob(z.unsqueeze(-2)).sum(-1).mean(0) + prior.log_weights()
        torch.testing.assert_close(
            prior.expected_log_joint(mean, std), expected, atol=0.02, rtol=0.01
        )


def test_gaussian_entropy_matches_torch():
    _, std = _random_posterior()
    expected = Normal(torch.zeros_like(std), std).entropy().sum(dim=-1)
    torch.testing.assert_close(gaussian_entropy(std), expected)


def test_sample_draws_from_the_mixture_and_from_one_component():
    prior = _random_prior()
    with torch.no_grad():
        z = prior.sample(100_000, torch.Generator().manual_seed(5))
        assert z.shape == (100_000, 3)
        # Labels drawn by pi: the mixture's mean is sum_y pi_y mu_y.
        expected = prior.mixing_weights() @ prior.means
        torch.testing.assert_close(z.mean(dim=0), expected, atol=0.02, rtol=0)
        one = prior.sample(50_000, torch.Generator().manual_seed(6), component=2)
        torch.testing.assert_close(one.mean(dim=0), prior.means[2], atol=0.03, rtol=0)
        torch.testing.assert_close(one.std(dim=0), prior.component_stds()[2], atol=0.03, rtol=0)
    again = prior.sample(100_000, torch.Generator().manual_seed(5))
    torch.testing.assert_close(again, z, rtol=0, atol=0)


def test_set_components_sets_weights_only_when_learned():
    fixed = MixtureOfGaussiansPrior(2, 3, learn_weights=False)
    learned = MixtureOfGaussiansPrior(2, 3, learn_weights=True)
    means, stds, weights = torch.ones(3, 2), torch.full((3, 2), 0.5), torch.tensor([0.2, 0.3, 0.5])
    for prior in (fixed, learned):
        prior.set_components(means, stds, weights)
        torch.testing.assert_close(prior.means.detach(), means)
        torch.testing.assert_close(prior.component_stds().detach(), stds)
    torch.testing.assert_close(fixed.mixing_weights().detach(), torch.full((3,), 1 / 3))
    torch.testing.assert_close(learned.mixing_weights().detach(), weights)


def test_component_stds_stay_finite_and_positive():
    prior = MixtureOfGaussiansPrior(2, 2)
    with torch.no_grad():
        prior.log_stds.fill_(-100.0)
    assert torch.all(prior.component_stds() >= math.exp(-7.0) * 0.999)
