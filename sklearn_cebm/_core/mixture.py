"""The learned parameters of a mixture of L diagonal Gaussians over a latent code.

What the CEBM's mixture bias (:class:`~sklearn_cebm._core.biases.GaussianMixtureBias`)
and the VAE's mixture prior (:class:`~sklearn_cebm._core.mixture_prior.MixtureOfGaussiansPrior`)
share: component means, log-stds and mixing-weight logits, and how they are read.
"""

import torch
from torch import nn

__all__ = ["MixtureParameters"]

# Component stds between exp(-7) and exp(7): wide enough for any scaled data's codes, never
# a point mass that would send an ELBO to infinity, and exp(2 * 7) keeps a CEBM's
# lambda_2 = -1 / (2 std**2) far from float32 overflow and underflow.
_LOG_STD_LIMIT = 7.0


class MixtureParameters(nn.Module):
    """Means ``mu`` and stds ``sigma`` of L components over K dimensions, and weights ``pi``.

    Parameters
    ----------
    n_latent : int
        Dimension K of the latent code.
    n_clusters : int
        Number of components L.
    learn_weights : bool, default=False
        Learn the mixing weights ``pi`` (uniform and fixed otherwise).
    init_scale : float, default=1.0
        Std of the random initial component means. 0 makes the components L copies of
        N(0, I): a single Gaussian, whose copies get equal gradients and so stay equal
        under training until their means are set apart.
    """

    def __init__(self, n_latent, n_clusters, learn_weights=False, init_scale=1.0):
        super().__init__()
        self.init_scale = init_scale
        self.means = nn.Parameter(torch.zeros(n_clusters, n_latent))
        self.log_stds = nn.Parameter(torch.zeros(n_clusters, n_latent))
        self.weight_logits = nn.Parameter(torch.zeros(n_clusters), requires_grad=learn_weights)

    def reset_parameters(self, generator=None):
        """Draw the means from N(0, init_scale**2); stds 1; uniform weights."""
        with torch.no_grad():
            self.means.normal_(0.0, self.init_scale, generator=generator)
            self.log_stds.zero_()
            self.weight_logits.zero_()

    def component_stds(self):
        """Component stds ``sigma``, shape ``(L, K)``, within ``exp(+-7)``."""
        return torch.exp(self.log_stds.clamp(-_LOG_STD_LIMIT, _LOG_STD_LIMIT))

    def log_weights(self):
        """Log mixing weights ``log pi``, shape ``(L,)``."""
        return torch.log_softmax(self.weight_logits, dim=0)

    def mixing_weights(self):
        """Mixing weights ``pi``, shape ``(L,)``; they sum to one."""
        return torch.softmax(self.weight_logits, dim=0)

    def set_means(self, means):
        """Overwrite the component means with ``means`` of shape ``(L, K)``."""
        with torch.no_grad():
            self.means.copy_(torch.as_tensor(means, dtype=self.means.dtype))
