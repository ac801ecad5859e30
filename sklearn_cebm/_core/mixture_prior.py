"""A learned mixture-of-Gaussians prior for a VAE: VaDE's prior (Jiang et al., 2017).

``p(y) = pi``, ``p(z | y) = N(mu_y, diag(sigma_y**2))``. With the mean-field posterior
``q(y, z | x) = q(y | x) q(z | x)`` and a diagonal Gaussian ``q(z | x) = N(m, diag(s**2))``,
every term of the ELBO but the reconstruction is in closed form (see
:meth:`MixtureOfGaussiansPrior.kl_divergence`).
"""

import math

import torch

from .mixture import MixtureParameters

__all__ = ["MixtureOfGaussiansPrior", "gaussian_entropy"]


def gaussian_entropy(std):
    """Entropy of ``N(mean, diag(std**2))`` per row: ``sum_k [log std_k + log(2 pi e) / 2]``.

    Parameters
    ----------
    std : torch.Tensor of shape (n, K)

    Returns
    -------
    torch.Tensor of shape (n,)
    """
    return (torch.log(std) + 0.5 * math.log(2 * math.pi * math.e)).sum(dim=-1)


class MixtureOfGaussiansPrior(MixtureParameters):
    """``p(y, z) = pi_y N(z; mu_y, diag(sigma_y**2))`` with learned means and stds.

    Parameters
    ----------
    n_latent : int
        Dimension K of z.
    n_clusters : int
        Number of components L.
    learn_weights : bool, default=False
        Learn the mixing weights ``pi`` (uniform and fixed otherwise).
    init_scale : float, default=1.0
        Std of the random initial component means. At 0 the components are L copies of
        N(0, I), so the prior is the standard normal until the components are set apart
        (:meth:`set_components`): a VAE's warm-up.
    """

    def __init__(self, n_latent, n_clusters, learn_weights=False, init_scale=1.0):
        super().__init__(n_latent, n_clusters, learn_weights, init_scale)
        self.n_latent = int(n_latent)

    def expected_log_joint(self, mean, std):
        """``log pi_y + E_q(z|x)[log N(z; mu_y, sigma_y**2)]`` per row and component, ``(n, L)``.

        In closed form: ``log pi_y - 1/2 sum_k [log(2 pi sigma_yk**2)
        + ((m_k - mu_yk)**2 + s_k**2) / sigma_yk**2]`` for ``q(z | x) = N(m, diag(s**2))``.

        Parameters
        ----------
        mean, std : torch.Tensor of shape (n, K)
            Mean and std of ``q(z | x)``.
        """
        stds = self.component_stds()
        squared = (mean.unsqueeze(-2) - self.means) ** 2 + std.unsqueeze(-2) ** 2
        log_density = -0.5 * (
            squared / stds**2 + 2.0 * torch.log(stds) + math.log(2 * math.pi)
        ).sum(dim=-1)
        return log_density + self.log_weights()

    def responsibilities(self, mean, std):
        """``q(y | x)``, the softmax of :meth:`expected_log_joint`, shape ``(n, L)``.

        The ``q(y | x)`` that maximises the ELBO for the given ``q(z | x)``:
        ``q(y | x) proportional to pi_y exp(E_q(z|x)[log p(z | y)])``. VaDE (Jiang et al.,
        2017, Eq. 16) estimates the same optimum by ``p(y | z)`` at one draw of z; this is
        exact, and deterministic given x. Rows sum to one.
        """
        return torch.softmax(self.expected_log_joint(mean, std), dim=-1)

    def kl_divergence(self, mean, std):
        """``KL(q(y | x) q(z | x) || p(y, z))`` per row, at the optimal ``q(y | x)``, ``(n,)``.

        The ELBO is ``E_q[log p(x | z)]`` minus this term. With ``q(y | x)`` the
        :meth:`responsibilities` ``r``, the term
        ``E_q[log q(z | x) + log q(y | x) - log p(z | y) - log p(y)]`` reduces to

            -H[q(z | x)] - logsumexp_y (log pi_y + E_q(z|x)[log N(z; mu_y, sigma_y**2)])

        since ``log r_y`` equals the inner term minus its log-sum-exp. It is at least
        ``KL(q(z | x) || p(z))`` with the marginal mixture ``p(z)``; with one component it
        is the KL between two Gaussians.

        Parameters
        ----------
        mean, std : torch.Tensor of shape (n, K)
            Mean and std of ``q(z | x)``.
        """
        log_joint = self.expected_log_joint(mean, std)
        return -gaussian_entropy(std) - torch.logsumexp(log_joint, dim=-1)

    def sample(self, n_samples, generator, component=None):
        """Ancestral draws ``y ~ pi``, ``z ~ N(mu_y, sigma_y**2)``; ``(n_samples, K)``.

        The labels and the noise come from ``generator``, on the CPU, so that the draws are
        the same on any device; the codes are returned on the prior's device.

        Parameters
        ----------
        n_samples : int
        generator : torch.Generator
            A CPU generator.
        component : int, optional
            Draw every z from this component; ``None`` draws the labels from ``pi``.
        """
        if component is None:
            weights = self.mixing_weights().detach().cpu()
            labels = torch.multinomial(weights, n_samples, replacement=True, generator=generator)
        else:
            labels = torch.full((n_samples,), int(component))
        noise = torch.randn((n_samples, self.n_latent), generator=generator)
        labels, noise = labels.to(self.means.device), noise.to(self.means.device)
        return self.means[labels] + self.component_stds()[labels] * noise

    def set_components(self, means, stds=None, weights=None):
        """Overwrite the means ``(L, K)`` and, where given, the stds and weights.

        ``stds`` is ``(L, K)``, ``weights`` ``(L,)``. Weights are set only when they are
        learned: fixed weights stay uniform.
        """
        self.set_means(means)
        with torch.no_grad():
            if stds is not None:
                stds = torch.as_tensor(stds, dtype=self.log_stds.dtype)
                self.log_stds.copy_(torch.log(stds))
            if weights is not None and self.weight_logits.requires_grad:
                weights = torch.as_tensor(weights, dtype=self.weight_logits.dtype)
                self.weight_logits.copy_(torch.log(weights))
