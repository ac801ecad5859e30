"""Training objectives for the marginal energy ``E(x)``."""

from torch import nn

__all__ = ["ContrastiveDivergenceLoss"]


class ContrastiveDivergenceLoss(nn.Module):
    """The PCD surrogate whose gradient is the maximum-likelihood gradient (Sec. 2.1).

    ``mean E(x_data) - mean E(x_model) + energy_l2 * (mean E(x_data)**2 + mean E(x_model)**2)``.
    Its gradient in the weights estimates ``-grad log p(x_data)`` with model samples standing
    in for the expectation of Eq. 2; the L2 term on the energies (Du & Mordatch, 2019) keeps
    their magnitudes from drifting, which the likelihood alone does not fix.

    Parameters
    ----------
    energy_l2 : float, default=0.0
        Weight ``alpha`` of the energy-magnitude penalty.
    """

    def __init__(self, energy_l2=0.0):
        super().__init__()
        self.energy_l2 = energy_l2

    def forward(self, energy_data, energy_model):
        """Scalar loss from the energies of a data batch and a model batch."""
        contrast = energy_data.mean() - energy_model.mean()
        magnitude = (energy_data**2).mean() + (energy_model**2).mean()
        return contrast + self.energy_l2 * magnitude
