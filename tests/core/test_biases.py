"""The mixture-of-Gaussians bias in the torch core: its algebra against closed forms and
numerical integration, and the modules that sample one component."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sklearn_cebm._core.biases import GaussianMixtureBias, SphericalGaussianBias
from sklearn_cebm._core.encoders import MLPEncoder, initialize_layers
from sklearn_cebm._core.exponential_family import gaussian_log_normalizer
from sklearn_cebm._core.model import ConditionalEnergy, ConjugateEnergyModel
from sklearn_cebm._core.sgld import frozen_parameters


def _random_mixture(n_components, n_clusters, seed, learn_weights=True):
    generator = torch.Generator().manual_seed(seed)
    bias = GaussianMixtureBias(n_components, n_clusters, learn_weights=learn_weights).double()
    bias.reset_parameters(generator)
    with torch.no_grad():
        bias.log_stds.normal_(0.0, 0.5, generator=generator)
        bias.weight_logits.normal_(0.0, 1.0, generator=generator)
    return bias


def _random_statistics(n_samples, n_components, seed):
    generator = torch.Generator().manual_seed(seed)
    statistic_1 = torch.randn(n_samples, n_components, generator=generator, dtype=torch.float64)
    statistic_2 = -torch.rand(n_samples, n_components, generator=generator, dtype=torch.float64)
    return statistic_1, statistic_2


def _model(bias, n_features=3, seed=0):
    n_components = bias.natural_params()[0].shape[-1]
    encoder = MLPEncoder(n_features, (8,), 2 * n_components)
    initialize_layers(encoder, torch.Generator().manual_seed(seed))
    return ConjugateEnergyModel(encoder, bias, (n_features,))


def test_gmm_one_component_reduces_to_spherical_gaussian_bias():
    n_components = 3
    mixture = GaussianMixtureBias(n_components, n_clusters=1)  # means 0, log-stds 0
    spherical = SphericalGaussianBias(n_components)
    mixture_model = _model(mixture, seed=1)
    spherical_model = _model(spherical, seed=1)
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(2))

    # The mixture sums its evidence in another order: equal up to float32 rounding.
    torch.testing.assert_close(mixture_model(x), spherical_model(x))
    mixture_mean, mixture_std = mixture_model.posterior_mean_std(x)
    spherical_mean, spherical_std = spherical_model.posterior_mean_std(x)
    torch.testing.assert_close(mixture_mean[:, 0], spherical_mean)
    torch.testing.assert_close(mixture_std[:, 0], spherical_std)


def test_gmm_marginal_equals_integral_over_y_and_z_one_dimension():
    bias = _random_mixture(n_components=1, n_clusters=3, seed=3)
    statistics = _random_statistics(5, 1, seed=4)
    energy = bias.energy(statistics)
    for row in range(5):
        row_statistics = (statistics[0][row], statistics[1][row])
        total = 0.0
        for component in range(3):

            def density(z, component=component, row_statistics=row_statistics):
                point = torch.tensor([z], dtype=torch.float64)
                return math.exp(-bias.joint_energy(row_statistics, component, point).item())

            total += integrate.quad(density, -np.inf, np.inf, epsabs=0, epsrel=1e-10)[0]
        # The integral over z in R^K adds log(2 pi) / 2 per dimension to -E(x).
        assert math.log(total) == pytest.approx(-energy[row].item() + 0.5 * math.log(2 * math.pi))


def test_gmm_marginal_equals_integral_over_y_and_z_two_dimensions():
    bias = _random_mixture(n_components=2, n_clusters=2, seed=5)
    statistics = _random_statistics(4, 2, seed=6)
    grid = torch.linspace(-12.0, 12.0, 1201, dtype=torch.float64)
    step = (grid[1] - grid[0]).item()
    z = torch.cartesian_prod(grid, grid)
    log_integrals = []
    for row in range(4):
        row_statistics = (statistics[0][row], statistics[1][row])
        per_component = [
            torch.logsumexp(-bias.joint_energy(row_statistics, component, z), dim=0)
            for component in range(2)
        ]
        log_integrals.append(torch.logsumexp(torch.stack(per_component), 0) + 2 * math.log(step))
    expected = -bias.energy(statistics) + math.log(2 * math.pi)
    torch.testing.assert_close(torch.stack(log_integrals), expected, rtol=0, atol=1e-6)


def test_gmm_component_energy_sums_to_marginal_and_gives_responsibilities():
    bias = _random_mixture(n_components=4, n_clusters=5, seed=7)
    statistics = _random_statistics(10, 4, seed=8)
    component_energy = bias.component_energy(statistics)
    assert component_energy.shape == (10, 5)
    torch.testing.assert_close(-torch.logsumexp(-component_energy, -1), bias.energy(statistics))
    responsibilities = bias.responsibilities(statistics)
    torch.testing.assert_close(responsibilities.sum(-1), torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(responsibilities, torch.softmax(-component_energy, -1))


def test_gmm_posterior_summaries_match_per_component_posteriors():
    bias = _random_mixture(n_components=3, n_clusters=4, seed=9)
    statistics = _random_statistics(6, 3, seed=10)
    means, stds = bias.posterior_mean_std(statistics)
    responsibilities = bias.responsibilities(statistics)
    expected_mixture = torch.einsum("nl,nlk->nk", responsibilities, means)
    torch.testing.assert_close(bias.posterior_mixture_mean(statistics), expected_mixture)
    best = responsibilities.argmax(-1)
    best_mean, best_std = bias.most_probable_posterior_mean_std(statistics)
    torch.testing.assert_close(best_mean, means[torch.arange(6), best])
    torch.testing.assert_close(best_std, stds[torch.arange(6), best])


def test_gmm_evidence_is_gaussian_density_at_statistic_means():
    # -E(x, l) - log pi_l - log N(c(x); mu_l, sigma_l**2 - 1 / (2 t_2(x))) is free of l.
    bias = _random_mixture(n_components=3, n_clusters=4, seed=11)
    statistics = _random_statistics(6, 3, seed=12)
    centres = bias.statistic_means(statistics)
    torch.testing.assert_close(centres, statistics[0] / (-2 * statistics[1]))
    variances = bias.component_stds() ** 2 - 0.5 / statistics[1].unsqueeze(1)
    log_density = torch.distributions.Normal(bias.means, variances.sqrt()).log_prob(
        centres.unsqueeze(1)
    )
    evidence = -bias.component_energy(statistics) - bias.log_weights()
    residual = evidence - log_density.sum(-1)
    torch.testing.assert_close(residual - residual[:, :1], torch.zeros_like(residual))


def test_gmm_evidence_equals_difference_of_log_normalisers():
    bias = _random_mixture(n_components=3, n_clusters=4, seed=13)
    statistics = _random_statistics(6, 3, seed=14)
    natural_1, natural_2 = bias.natural_params()
    posterior_1 = natural_1 + statistics[0].unsqueeze(1)
    posterior_2 = natural_2 + statistics[1].unsqueeze(1)
    expected = (
        gaussian_log_normalizer(posterior_1, posterior_2)
        - gaussian_log_normalizer(natural_1, natural_2)
    ).sum(-1) + bias.log_weights()
    torch.testing.assert_close(bias.component_log_evidence(statistics), expected)


def test_gmm_equal_components_energy_evaluated_once_has_the_mixtures_derivatives():
    # Equal components take energy's one-evaluation path: its value, its gradients and the
    # parameters' gradients of its input gradient (score matching's) must be the mixture's.
    bias = _random_mixture(n_components=3, n_clusters=4, seed=16)
    with torch.no_grad():
        bias.means.copy_(bias.means[:1].expand_as(bias.means))
        bias.log_stds.copy_(bias.log_stds[:1].expand_as(bias.log_stds))
    assert bias.components_equal()
    parameters = (bias.means, bias.log_stds, bias.weight_logits)

    def derivatives(energy_of):
        statistics = tuple(s.requires_grad_() for s in _random_statistics(6, 3, seed=18))
        energy = energy_of(statistics)
        gradients = torch.autograd.grad(energy.sum(), (*statistics, *parameters), create_graph=True)
        score_norm = sum(gradient.square().sum() for gradient in gradients[:2])
        return energy, gradients, torch.autograd.grad(score_norm, parameters, allow_unused=True)

    def logsumexp_of_evidences(statistics):
        return -torch.logsumexp(bias.component_log_evidence(statistics), dim=-1)

    energy, gradients, second = derivatives(bias.energy)
    expected, expected_gradients, expected_second = derivatives(logsumexp_of_evidences)
    torch.testing.assert_close(energy, expected)
    expected_all = (*expected_gradients, *expected_second)
    for got, want in zip((*gradients, *second), expected_all, strict=True):
        # allow_unused gives None for a derivative that is zero by construction.
        zeros = torch.zeros_like(got if got is not None else want)
        torch.testing.assert_close(zeros if got is None else got, zeros if want is None else want)
    with torch.no_grad():
        bias.means[2, 1] += 1e-12
    assert not bias.components_equal()


def test_gmm_float32_responsibilities_keep_their_digits_under_narrow_components():
    # With sigma = exp(-5), B(lambda + t) and B(lambda) are ~1e4 while the evidences of
    # the components differ by ~1: p(y | x) must still match float64.
    bias = _random_mixture(n_components=8, n_clusters=3, seed=15)
    with torch.no_grad():
        bias.log_stds.fill_(-5.0)
    statistics = _random_statistics(20, 8, seed=16)
    exact = bias.responsibilities(statistics)
    single = bias.float().responsibilities(tuple(s.float() for s in statistics))
    torch.testing.assert_close(single.double(), exact, rtol=0, atol=1e-5)


def test_gmm_mixing_weights_and_set_means():
    bias = _random_mixture(n_components=2, n_clusters=3, seed=13)
    torch.testing.assert_close(bias.mixing_weights(), bias.log_weights().exp())
    new_means = np.arange(6.0).reshape(3, 2)
    bias.set_means(new_means)
    torch.testing.assert_close(bias.means.detach(), torch.as_tensor(new_means))
    assert bias.means.requires_grad


def test_conditional_energy_of_the_model_itself_is_its_component_energy():
    # E(x) - log p(l | x) = E(x, l) for the mixture's own density.
    model = _model(_random_mixture(n_components=2, n_clusters=3, seed=14).float(), seed=15)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(16))
    energy = ConditionalEnergy(model, model, 2)
    expected = model.bias.component_energy(model.sufficient_statistics(x))[:, 2]
    torch.testing.assert_close(energy(x), expected)
    assert set(energy.parameters()) == set(model.parameters())
    with frozen_parameters(energy):
        assert not any(p.requires_grad for p in model.parameters())
    responsibilities = model.bias_method("responsibilities")(x)
    torch.testing.assert_close(responsibilities.sum(-1), torch.ones(7))


def test_conditional_energy_tilts_another_density_by_the_cluster_posterior():
    # p(x | l) = p(x) p(l | x) / p(l): the density's energy less log p(l | x), whose
    # conditionals, normalised over l at each x, give back p(l | x).
    classifier = _model(_random_mixture(n_components=2, n_clusters=3, seed=17).float(), seed=18)
    density = _model(SphericalGaussianBias(2).float(), seed=19)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(20))
    energies = torch.stack([ConditionalEnergy(density, classifier, y)(x) for y in range(3)], 1)
    log_posterior = classifier.bias_method("log_responsibilities")(x)
    torch.testing.assert_close(energies[:, 1], density(x) - log_posterior[:, 1])
    torch.testing.assert_close(torch.log_softmax(-energies, dim=1), log_posterior)
    energy = ConditionalEnergy(density, classifier, 0)
    assert set(energy.parameters()) == set(density.parameters()) | set(classifier.parameters())
    with pytest.raises(ValueError, match=r"component must be an integer in \[0, 3\)"):
        ConditionalEnergy(density, classifier, 3)


def test_gmm_balance_penalty_is_weighted_balance_divergence():
    bias = _random_mixture(n_components=3, n_clusters=4, seed=20)
    statistics = _random_statistics(7, 3, seed=21)
    log_responsibilities = bias.log_responsibilities(statistics)
    assert bias.balance_penalty(log_responsibilities).item() == 0.0  # cluster_balance=0
    bias.cluster_balance = 2.5
    marginal = bias.responsibilities(statistics).mean(dim=0)
    expected = 2.5 * (marginal * (marginal.log() - bias.log_weights())).sum()
    torch.testing.assert_close(bias.balance_penalty(log_responsibilities), expected)


def test_gmm_place_components_matches_the_nearest_codes_moments():
    generator = torch.Generator().manual_seed(3)
    bias = GaussianMixtureBias(2, 3)
    # Two groups of codes around (0, 0) and (30, 30) with per-dimension spreads (2, 3) and
    # (1, 1.5), each code's factor of variance 0.25; one mean far from every code.
    spread = torch.tensor([[2.0, 3.0], [1.0, 1.5]])
    centres = torch.tensor([[0.0, 0.0], [30.0, 30.0]])
    noise = torch.randn(2, 4000, 2, generator=generator, dtype=torch.float64)
    codes = (centres[:, None] + spread[:, None] * noise).reshape(-1, 2)
    variances = torch.full_like(codes, 0.25)

    means = [[0.5, 0.5], [29.5, 29.5], [100.0, -100.0]]
    bias.place_components(means, codes, variances)

    torch.testing.assert_close(bias.means, torch.tensor(means))
    expected = (codes.reshape(2, 4000, 2).var(dim=1, unbiased=False) - 0.25).sqrt().float()
    torch.testing.assert_close(bias.component_stds()[:2], expected, rtol=1e-5, atol=1e-6)
    # The far component has no codes: it keeps its std of 1.
    torch.testing.assert_close(bias.component_stds()[2], torch.ones(2))


def test_gmm_place_components_floors_variances_the_factors_explain():
    bias = GaussianMixtureBias(1, 1)
    codes = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # Spread 1.25 but factor variance 4: the codes' scatter is all the factors' own.
    bias.place_components([[1.5]], codes, torch.full_like(codes, 4.0), relative_floor=0.1)
    assert bias.component_stds().item() == pytest.approx((0.1 * 4.0) ** 0.5)


def _posterior_moments_by_quadrature(mean, std, statistic_1, statistic_2):
    """E[z] and E[z**2] under N(z; mean, std**2) exp(t_1 z + t_2 z**2), normalised."""

    def density(z):
        return math.exp(-0.5 * ((z - mean) / std) ** 2 + statistic_1 * z + statistic_2 * z**2)

    evidence = integrate.quad(density, -60, 60, points=[mean], limit=200)[0]
    first = integrate.quad(lambda z: z * density(z), -60, 60, points=[mean], limit=200)[0]
    second = integrate.quad(lambda z: z * z * density(z), -60, 60, points=[mean], limit=200)[0]
    return first / evidence, second / evidence


def test_gmm_fit_to_posteriors_is_the_m_step_of_the_members_posteriors():
    bias = GaussianMixtureBias(2, 3)
    with torch.no_grad():
        bias.means.copy_(torch.tensor([[0.5, -1.0], [2.0, 0.0], [-3.0, 4.0]]))
        bias.log_stds.copy_(torch.tensor([[0.0, -0.5], [0.3, 0.2], [1.0, 1.0]]))
    before = (bias.means[2].clone(), bias.log_stds[2].clone())
    statistics = tuple(s.float() for s in _random_statistics(9, 2, seed=5))
    members = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1, 1])  # component 2 has none
    natural = bias.natural_params()
    means, stds = bias.means.detach().double(), bias.component_stds().detach().double()

    bias.fit_to_posteriors(statistics, members)

    for component in (0, 1):
        rows = torch.nonzero(members == component).flatten().tolist()
        for k in range(2):
            moments = [
                _posterior_moments_by_quadrature(
                    means[component, k].item(),
                    stds[component, k].item(),
                    statistics[0][i, k].item(),
                    statistics[1][i, k].item(),
                )
                for i in rows
            ]
            first = np.mean([m for m, _ in moments])
            second = np.mean([s for _, s in moments])
            assert bias.means[component, k].item() == pytest.approx(first, rel=1e-5, abs=1e-5)
            variance = bias.component_stds()[component, k].item() ** 2
            assert variance == pytest.approx(second - first**2, rel=1e-4)
    torch.testing.assert_close(bias.means[2], before[0], rtol=0, atol=0)
    torch.testing.assert_close(bias.log_stds[2], before[1], rtol=0, atol=0)
    assert natural[0].shape == (3, 2)  # the posteriors were those of the mixture before


def test_gmm_fit_to_posteriors_splits_the_prior_where_the_codes_would_widen_it():
    # Weak factors (variance 100 against the prior's 1) whose centres scatter widely: the
    # codes' moments ask for components far wider than the prior the likelihood trained
    # under; the posteriors' moments split that prior and keep its total variance.
    generator = torch.Generator().manual_seed(0)
    codes = 20.0 * torch.randn(4000, 3, generator=generator)
    code_variances = torch.full_like(codes, 100.0)
    statistics = (codes / code_variances, -0.5 / code_variances)
    members = (codes[:, 0] > 0).long()

    by_codes = GaussianMixtureBias(3, 2)
    centres = torch.stack([codes[members == part].mean(dim=0) for part in (0, 1)])
    by_codes.place_components(centres, codes, code_variances, members=members)
    by_posteriors = GaussianMixtureBias(3, 2)
    by_posteriors.fit_to_posteriors(statistics, members)

    assert by_codes.component_stds().min().item() > 5.0
    assert by_posteriors.component_stds().max().item() < 1.1  # the prior: N(0, 1)
    # Law of total variance: within plus between the parts is the posteriors' variance.
    posterior_means, posterior_stds = GaussianMixtureBias(3, 1).posterior_mean_std(statistics)
    posterior_means, posterior_stds = posterior_means[:, 0], posterior_stds[:, 0]
    total = posterior_stds.square().mean(dim=0) + posterior_means.var(dim=0, unbiased=False)
    shares = torch.bincount(members).float() / len(members)
    means, variances = by_posteriors.means, by_posteriors.component_stds().square()
    centre = (shares[:, None] * means).sum(dim=0)
    within_and_between = (shares[:, None] * (variances + (means - centre).square())).sum(dim=0)
    torch.testing.assert_close(within_and_between, total, rtol=1e-4, atol=1e-6)


def _two_groups_of_codes(seed=3):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [30.0, 30.0]])
    noise = torch.randn(2, 500, 2, generator=generator)
    codes = (centres[:, None] + noise).reshape(-1, 2)
    return centres, codes, torch.full_like(codes, 0.25)


def test_gmm_split_component_parts_the_two_groups_one_component_held():
    centres, codes, variances = _two_groups_of_codes()
    bias = GaussianMixtureBias(2, 3)
    # Component 0 wide over both groups, 1 far from every code, 2 narrow far from both.
    bias.set_means([[15.0, 15.0], [1000.0, -1000.0], [-60.0, 60.0]])
    with torch.no_grad():
        bias.log_stds[0] = math.log(20.0)
    untouched = bias.means[2].clone(), bias.log_stds[2].clone()

    statistics = _statistics_of_codes(codes, variances)
    assert bias.split_component(0, 1, statistics)

    # Each half's mean sits on its group (the order depends on the axis's sign).
    order = [0, 1] if bias.means[0, 0] < bias.means[1, 0] else [1, 0]
    torch.testing.assert_close(bias.means[order], centres, atol=0.2, rtol=0)
    torch.testing.assert_close(bias.log_stds[1], bias.log_stds[0])
    torch.testing.assert_close(bias.means[2], untouched[0])
    torch.testing.assert_close(bias.log_stds[2], untouched[1])
    winners = bias.component_log_evidence(statistics).argmax(dim=-1).reshape(2, 500)
    assert (winners[0] == order[0]).all() and (winners[1] == order[1]).all()


def _statistics_of_codes(codes, variances):
    """``(t_1, t_2)`` whose factor has centre ``codes`` and variance ``variances``."""
    statistic_2 = -0.5 / variances
    return codes * -2 * statistic_2, statistic_2


def test_gmm_split_component_leaves_a_component_with_too_few_codes():
    _, codes, variances = _two_groups_of_codes()
    bias = GaussianMixtureBias(2, 2)
    bias.set_means([[15.0, 15.0], [1000.0, -1000.0]])
    before = bias.means.clone(), bias.log_stds.clone()
    # Component 1 wins no code: nothing to split.
    assert not bias.split_component(1, 0, _statistics_of_codes(codes, variances))
    torch.testing.assert_close(bias.means, before[0])
    torch.testing.assert_close(bias.log_stds, before[1])


def test_gmm_pull_towards_centre_reaches_the_certainty_along_the_placement():
    centres, codes, variances = _two_groups_of_codes()
    bias = GaussianMixtureBias(2, 2)
    bias.set_means(centres)
    with torch.no_grad():
        bias.log_stds.copy_(torch.tensor([[0.0, 0.5], [1.0, -0.5]]))
    statistics = _statistics_of_codes(codes, variances)
    placed_means, placed_log_stds = bias.means.clone(), bias.log_stds.clone()
    # As placed, each group's component is certain of it.
    assert bias.responsibilities(statistics).max(dim=-1).values.min() > 1 - 1e-6

    factor = bias.pull_towards_centre(codes, variances, 0.75)

    certainty = bias.responsibilities(statistics).max(dim=-1).values.mean()
    assert certainty.item() == pytest.approx(0.75, abs=1e-4)
    assert 0 < factor < 1
    # Every component moved towards the average by the same factor, the average kept.
    mean_centre = placed_means.mean(dim=0)
    torch.testing.assert_close(bias.means, mean_centre + factor * (placed_means - mean_centre))
    log_std_centre = placed_log_stds.mean(dim=0)
    torch.testing.assert_close(
        bias.log_stds, log_std_centre + factor * (placed_log_stds - log_std_centre)
    )
    # Still the same winners: the placement's directions are kept.
    winners = bias.component_log_evidence(statistics).argmax(dim=-1).reshape(2, 500)
    assert (winners[0] == 0).float().mean() > 0.95 and (winners[1] == 1).float().mean() > 0.95


def test_gmm_pull_towards_centre_leaves_components_already_that_uncertain():
    _, codes, variances = _two_groups_of_codes()
    bias = GaussianMixtureBias(2, 2)
    # Both components wide and near each other: p(y | x) is about one half everywhere.
    bias.set_means([[15.0, 15.0], [15.1, 15.0]])
    with torch.no_grad():
        bias.log_stds.fill_(math.log(100.0))
    before = bias.means.clone(), bias.log_stds.clone()

    assert bias.pull_towards_centre(codes, variances, 0.75) == 1.0

    torch.testing.assert_close(bias.means, before[0], rtol=0, atol=0)
    torch.testing.assert_close(bias.log_stds, before[1], rtol=0, atol=0)
