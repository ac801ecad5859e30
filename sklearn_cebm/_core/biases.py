"""Inductive biases ``E_lambda(z)``: exponential families over the latent code (Sec. 5).

A bias turns the encoder's neural sufficient statistics ``t(x)`` into the marginal energy
``E(x)`` and the conjugate posterior ``p(z | x)``; it never sees ``x`` itself.
"""

import torch
from torch import nn

from .exponential_family import (
    gaussian_joint_energy,
    gaussian_log_normalizer,
    gaussian_marginal_energy,
    mean_std_to_natural,
    natural_to_mean_std,
    posterior_natural_params,
)
from .losses import cluster_balance_divergence
from .mixture import MixtureParameters

__all__ = ["GaussianMixtureBias", "SphericalGaussianBias"]


class SphericalGaussianBias(nn.Module):
    """A fixed spherical Gaussian bias N(mean, std**2) on each of K dimensions (Sec. 5, item 1).

    Parameters
    ----------
    n_components : int
        Latent dimension K.
    mean, std : float
        Hyperparameters of the bias; the paper uses ``(0, 1)``.
    """

    def __init__(self, n_components, mean=0.0, std=1.0):
        super().__init__()
        natural_1, natural_2 = mean_std_to_natural(
            torch.full((n_components,), float(mean)), torch.full((n_components,), float(std))
        )
        self.register_buffer("natural_1", natural_1)
        self.register_buffer("natural_2", natural_2)

    def natural_params(self):
        """The bias's natural parameters ``(lambda_1, lambda_2)``, each of shape ``(K,)``."""
        return self.natural_1, self.natural_2

    def energy(self, statistics):
        """Marginal energy ``E(x)`` of shape ``(n,)``; see :func:`gaussian_marginal_energy`."""
        return gaussian_marginal_energy(self.natural_params(), statistics)

    def joint_energy(self, statistics, z):
        """Joint energy ``E(x, z)`` (Eq. 19); see :func:`gaussian_joint_energy`."""
        return gaussian_joint_energy(self.natural_params(), statistics, z)

    def posterior_mean_std(self, statistics):
        """Mean and std of ``p(z | x)``, each of shape ``(n, K)`` (Eq. 23)."""
        return natural_to_mean_std(*posterior_natural_params(self.natural_params(), statistics))

    def reset_parameters(self, generator=None):
        """Nothing to reset: the bias is fixed."""


class GaussianMixtureBias(MixtureParameters):
    """A mixture of L spherical Gaussians over z with learned means and stds (Sec. 5, item 2).

    The energy sums the L conjugate evidences with a log-sum-exp,
    ``E(x) = -logsumexp_l [log pi_l + sum_k (B(lambda_lk + t_k(x)) - B(lambda_lk))]``, and
    ``p(y = l | x)`` is the softmax of the same terms.

    Parameters
    ----------
    n_components : int
        Latent dimension K.
    n_clusters : int
        Number of mixture components L.
    learn_weights : bool, default=False
        Learn the mixing weights ``pi`` (uniform and fixed otherwise).
    init_scale : float, default=1.0
        Std of the random initial component means. 0 makes every component N(0, 1): the
        mixture is then a single Gaussian, whose components the likelihood cannot tell
        apart, so they stay equal under training until :meth:`set_means` parts them.
    cluster_balance : float, default=0.0
        Weight of :meth:`balance_penalty`, the balance term of a clustering objective; the
        likelihood never includes it.
    """

    def __init__(
        self, n_components, n_clusters, learn_weights=False, init_scale=1.0, cluster_balance=0.0
    ):
        super().__init__(n_components, n_clusters, learn_weights, init_scale)
        self.cluster_balance = cluster_balance

    def natural_params(self):
        """Natural parameters ``(lambda_1, lambda_2)`` of every component, each ``(L, K)``."""
        return mean_std_to_natural(self.means, self.component_stds())

    def component_log_evidence(self, statistics):
        """``log pi_l + sum_k [B(lambda_lk + t_k(x)) - B(lambda_lk)]``, shape ``(n, L)``.

        Each term is the log of the integral of ``N(z; mu, sigma**2)`` against the factor
        ``exp(t_1 z + t_2 z**2)``, which, with the factor's centre ``c`` and variance
        ``s**2 = -1 / (2 t_2)`` (:meth:`statistic_means_variances`), is
        ``B(t) - log(sigma**2 + s**2) / 2 - (c - mu)**2 / (2 (sigma**2 + s**2))``. The part
        free of l, ``B(t)``, is summed once per sample rather than once per component
        (the clustering stage's update is about a third faster), and no large
        ``B(lambda + t)`` and ``B(lambda)`` cancel.
        """
        evidence = self._log_evidence(statistics, self.means, self.component_stds())
        return evidence + self.log_weights()

    def _log_evidence(self, statistics, means, stds):
        """``sum_k [B(lambda_k + t_k(x)) - B(lambda_k)]`` of components ``(means, stds)``."""
        codes, code_variances = self.statistic_means_variances(statistics)
        factor = gaussian_log_normalizer(*statistics).sum(dim=-1, keepdim=True)
        variances = stds.square() + code_variances.unsqueeze(-2)
        deviations = codes.unsqueeze(-2) - means
        log_densities = deviations.square() / variances + variances.log()
        return factor - 0.5 * log_densities.sum(dim=-1)

    def energy(self, statistics):
        """Marginal energy ``E(x)``, shape ``(n,)``: y and z summed out.

        Equal components, as in the likelihood stage before the means are placed, share
        one evidence, evaluated once; the value, its gradients and its mixed second
        derivatives (score matching) are those of the L evaluations.
        """
        if not self.components_equal():
            return -torch.logsumexp(self.component_log_evidence(statistics), dim=-1)
        # Evaluating once makes the likelihood stage a third faster (the digits, L = 10).
        # The evidence at the pi-weighted average of the components gives component l
        # pi_l times its gradient, which is p(l | x) times it, as the log-sum-exp of the
        # L evaluations does; the weights get none, as there, so the components stay equal.
        weights = self.mixing_weights().unsqueeze(-1)
        means = (weights * self.means).sum(dim=0, keepdim=True)
        stds = (weights * self.component_stds()).sum(dim=0, keepdim=True)
        return -self._log_evidence(statistics, means, stds).squeeze(-1)

    def components_equal(self):
        """Whether every component has the same mean and std, as before the means part."""
        with torch.no_grad():
            return bool(
                torch.equal(self.means, self.means[:1].expand_as(self.means))
                and torch.equal(self.log_stds, self.log_stds[:1].expand_as(self.log_stds))
            )

    def responsibilities(self, statistics):
        """``p(y | x)``, shape ``(n, L)``; rows sum to one."""
        return torch.softmax(self.component_log_evidence(statistics), dim=-1)

    def log_responsibilities(self, statistics):
        """``log p(y | x)``, shape ``(n, L)``; finite where ``p(y | x)`` underflows."""
        return torch.log_softmax(self.component_log_evidence(statistics), dim=-1)

    def joint_energy(self, statistics, y, z):
        """Joint energy ``E(x, y, z) = -<lambda_y + t(x), eta(z)> + B(lambda_y) - log pi_y``.

        Parameters
        ----------
        statistics : tuple of torch.Tensor
            ``(t_1(x), t_2(x))``, each of shape ``(..., K)``.
        y : int
            Component index.
        z : torch.Tensor of shape (..., K)
        """
        natural_1, natural_2 = self.natural_params()
        component = (natural_1[y], natural_2[y])
        return gaussian_joint_energy(component, statistics, z) - self.log_weights()[y]

    def posterior_mean_std(self, statistics):
        """Mean and std of ``p(z | x, y)`` for every component, each ``(n, L, K)``."""
        expanded = (statistics[0].unsqueeze(-2), statistics[1].unsqueeze(-2))
        return natural_to_mean_std(*posterior_natural_params(self.natural_params(), expanded))

    def component_energy(self, statistics):
        """Energy ``E(x, y = l)`` of every component, shape ``(n, L)``: z summed out.

        ``E(x, l) = -[log pi_l + sum_k (B(lambda_lk + t_k(x)) - B(lambda_lk))]``, so that
        ``exp(-E(x, l))`` is proportional to the paper's ``p(x, y = l)`` (Sec. 5, item 2) and
        ``E(x) = -logsumexp_l (-E(x, l))``. Its gradient in x drives SGLD towards ``p(x | y)``.
        """
        return -self.component_log_evidence(statistics)

    def posterior_mixture_mean(self, statistics):
        """Mean of ``p(z | x) = sum_l p(l | x) p(z | x, l)``, shape ``(n, K)``."""
        means, _ = self.posterior_mean_std(statistics)
        weights = self.responsibilities(statistics).unsqueeze(-1)
        return (weights * means).sum(dim=-2)

    def most_probable_posterior_mean_std(self, statistics):
        """Mean and std of ``p(z | x, y*)`` with ``y* = argmax_l p(l | x)``, each ``(n, K)``."""
        means, stds = self.posterior_mean_std(statistics)
        best = self.component_log_evidence(statistics).argmax(dim=-1)
        index = best[:, None, None].expand(-1, 1, means.shape[-1])
        return means.gather(-2, index).squeeze(-2), stds.gather(-2, index).squeeze(-2)

    def balance_penalty(self, log_responsibilities):
        """``cluster_balance * KL(mean_n p(y | x_n) || pi)`` from a batch's ``log p(y | x)``.

        Not part of the likelihood: a term that penalises a batch whose samples crowd into
        fewer clusters than ``pi`` gives (see :func:`cluster_balance_divergence`), which
        the clustering stage adds to its neighbour term (see the clusterer's Notes).
        """
        divergence = cluster_balance_divergence(log_responsibilities, self.log_weights())
        return self.cluster_balance * divergence

    def statistic_means(self, statistics):
        """Centre ``t_1(x) / (-2 t_2(x))`` of the factor ``exp(<t(x), eta(z)>)``, shape ``(n, K)``.

        The factor is, up to a function of x alone, a Gaussian density in each ``z_k`` with
        this mean ``c_k(x)`` and precision ``-2 t_2k(x)``. Component l's evidence
        ``exp(B(lambda_l + t(x)) - B(lambda_l))`` is that factor integrated against
        ``N(mu_l, sigma_l**2)``, so it is proportional, with a factor free of l, to the density
        of ``N(mu_l, sigma_l**2 - 1 / (2 t_2(x)))`` at ``c(x)``: the nearer ``mu_l`` to the
        centre, the more probable the component. These are the codes on which to place
        component means (the k-means++ initialisation).
        """
        return self.statistic_means_variances(statistics)[0]

    def statistic_means_variances(self, statistics):
        """:meth:`statistic_means` and the factor's variances ``-1 / (2 t_2(x))``, each (n, K)."""
        variance = -0.5 / statistics[1]
        return statistics[0] * variance, variance

    def place_components(self, means, codes, code_variances, relative_floor=0.1, members=None):
        """Put the means at ``means`` and match each component's variances to its codes.

        Component l's evidence is, up to a factor free of l, the density of
        ``N(mu_l, sigma_l**2 + s(x)**2)`` at the code ``c(x)`` (:meth:`statistic_means`),
        with ``s(x)**2`` the factor's variance. The codes nearest ``mu_l`` are thus
        matched in moments by ``sigma_l**2 = var(c) - mean(s**2)`` over them, per latent
        dimension: one M-step of a Gaussian mixture on the codes, given their nearest
        means. Without it the stds stay those of the single Gaussian the likelihood fitted,
        which may be far narrower than the clusters, so that ``p(y | x)`` starts saturated
        and the balance term has no gradient. The variances are floored at
        ``relative_floor`` times the factors' mean variance ``s**2`` over the codes: a
        component far narrower than the factors changes no evidence, only makes
        ``lambda_2 = -1 / (2 sigma**2)`` large, and the energy then loses its float32
        digits to the cancellation of ``B(lambda + t) - B(lambda)``. A component nearest to
        fewer than two codes keeps its stds.

        Parameters
        ----------
        means : array-like of shape (L, K)
        codes, code_variances : torch.Tensor of shape (n, K)
            ``c(x)`` and ``s(x)**2`` of the data (:meth:`statistic_means_variances`).
        relative_floor : float, default=0.1
        members : torch.Tensor of shape (n,), default=None
            Each code's component; by default, the one whose mean is nearest.
        """
        self.set_means(means)
        with torch.no_grad():
            codes = codes.to(self.means.device, self.means.dtype)
            code_variances = code_variances.to(self.means.device, self.means.dtype)
            if members is None:
                members = torch.cdist(codes, self.means).argmin(dim=1)
            members = members.to(codes.device)
            floor = relative_floor * code_variances.mean()
            for component in range(self.means.shape[0]):
                own = members == component
                if own.sum() < 2:
                    continue
                spread = codes[own].var(dim=0, unbiased=False)
                variance = (spread - code_variances[own].mean(dim=0)).clamp_min(floor)
                self.log_stds[component] = 0.5 * variance.log()

    def fit_to_posteriors(self, statistics, members):
        """Fit each component to the posteriors of z of its members: one M-step of EM.

        Sample i, of component ``y_i = members[i]``, has the conjugate posterior
        ``p(z | x_i, y_i) = N(m_i, v_i)`` under the present mixture (Eq. 23, the component's
        natural parameters plus ``t(x_i)``). Component l then becomes the Gaussian that
        maximises the expected log-density of z under its members' posteriors, per latent
        dimension: ``mu_l = mean(m_i)`` and ``sigma_l**2 = mean(v_i + (m_i - mu_l)**2)``
        over them. Together the components keep the posteriors' total mean and second
        moment, so a prior the likelihood was trained under is split along the partition,
        not widened: fitted to the codes ``c(x)`` instead
        (:meth:`place_components`), the components of Fashion-MNIST's MLP came out 5 to 170
        times wider than the trained prior, the energy of the chains' starting points fell
        from about 20 to -6e6 within 60 SGLD steps, and the PCD updates of
        ``clustering_likelihood`` diverged. Components with no member keep theirs.

        Parameters
        ----------
        statistics : tuple of torch.Tensor
            ``(t_1(x), t_2(x))`` of the data, each of shape ``(n, K)``.
        members : torch.Tensor of shape (n,)
            Each sample's component, in ``[0, L)``.
        """
        with torch.no_grad():
            device, dtype = self.means.device, self.means.dtype
            statistics = tuple(s.to(device, dtype) for s in statistics)
            members = torch.as_tensor(members).to(device)
            natural_1, natural_2 = self.natural_params()
            for component in torch.unique(members).tolist():
                own = members == component
                prior = (natural_1[component], natural_2[component])
                means, stds = natural_to_mean_std(
                    *posterior_natural_params(prior, (statistics[0][own], statistics[1][own]))
                )
                mean = means.mean(dim=0)
                variance = (stds.square() + (means - mean).square()).mean(dim=0)
                self.means[component] = mean
                self.log_stds[component] = 0.5 * variance.log()

    def pull_towards_centre(self, codes, code_variances, mean_max_responsibility, bisections=40):
        """Pull the components towards their average until ``p(y | x)`` is that uncertain.

        The means and the log-stds are each moved towards their average over the
        components by one factor ``a`` in ``[0, 1]``: ``mu_l <- mu + a (mu_l - mu)``, alike
        for ``log sigma_l``. At ``a = 0`` the components are equal and ``p(y | x)`` is
        uniform; at ``a = 1`` they stay where they are. ``a`` is found by bisection so
        that the average over the codes' samples of ``max_l p(l | x)`` is
        ``mean_max_responsibility``; where it is already no higher, nothing moves. The
        placement's directions are kept, and only its scale shrinks: in many latent
        dimensions components placed among the codes win their codes with posteriors of
        one to float precision (on Fashion-MNIST the largest log-evidence led the next by
        thousands of nats), where a clustering objective's gradients vanish or explode.

        Parameters
        ----------
        codes, code_variances : torch.Tensor of shape (n, K)
            ``c(x)`` and ``s(x)**2`` of data (:meth:`statistic_means_variances`), as
            :meth:`place_components` takes them.
        mean_max_responsibility : float
            Target for the average of ``max_l p(l | x)``, in ``(1 / L, 1)``.
        bisections : int, default=40
            Halvings of the interval of ``a``.

        Returns
        -------
        float
            The factor ``a`` applied.
        """
        with torch.no_grad():
            codes = codes.to(self.means.device, self.means.dtype)
            code_variances = code_variances.to(self.means.device, self.means.dtype)
            # The statistics whose factor has these centres and variances: the inverse of
            # statistic_means_variances (mean_std_to_natural would square a square root).
            statistics = (codes / code_variances, -0.5 / code_variances)

            def certainty():
                return self.responsibilities(statistics).max(dim=-1).values.mean().item()

            if certainty() <= mean_max_responsibility:
                return 1.0
            means, log_stds = self.means.detach().clone(), self.log_stds.detach().clone()
            mean_centre = means.mean(dim=0, keepdim=True)
            log_std_centre = log_stds.mean(dim=0, keepdim=True)

            def pull(factor):
                self.means.copy_(mean_centre + factor * (means - mean_centre))
                self.log_stds.copy_(log_std_centre + factor * (log_stds - log_std_centre))

            low, high = 0.0, 1.0
            for _ in range(bisections):
                middle = 0.5 * (low + high)
                pull(middle)
                if certainty() < mean_max_responsibility:
                    low = middle
                else:
                    high = middle
            pull(low)
            return low

    def split_component(self, source, target, statistics):
        """Split component ``source`` in two halves, the second taking over ``target``.

        The samples that ``source`` wins (the argmax of :meth:`component_log_evidence`)
        have their codes ``c(x)`` (:meth:`statistic_means`) cut in two at the median of
        their projection on their principal axis, the step of bisecting k-means
        (Steinbach et al., 2000). ``source`` is placed on the first half and ``target``
        on the second: each mean at its half's mean, both with ``source``'s stds. The two
        then share the region ``source`` held, so that ``p(y | x)`` there is no longer
        saturated in one component. (Stds matched to each half, as
        :meth:`place_components` does, were wider than the trained ones on the digits,
        and the two halves took over their neighbours' codes.) Nothing changes when
        ``source`` wins fewer than four samples.

        Parameters
        ----------
        source, target : int
            Components to split and to overwrite.
        statistics : tuple of torch.Tensor
            ``(t_1(x), t_2(x))`` of data, each of shape ``(n, K)``.

        Returns
        -------
        bool
            Whether the component was split.
        """
        with torch.no_grad():
            members = self.component_log_evidence(statistics).argmax(dim=-1) == source
            if members.sum() < 4:
                return False
            member_codes = self.statistic_means(statistics)[members]
            centred = member_codes - member_codes.mean(dim=0)
            # The first right singular vector: the axis of the codes' largest spread.
            axis = torch.linalg.svd(centred, full_matrices=False).Vh[0]
            projections = centred @ axis
            upper = projections > projections.median()
            self.log_stds[target] = self.log_stds[source]
            for component, half in ((source, ~upper), (target, upper)):
                self.means[component] = member_codes[half].mean(dim=0)
            return True
