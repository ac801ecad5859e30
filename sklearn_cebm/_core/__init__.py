"""The PyTorch core of sklearn-cebm: models, exponential-family algebra and samplers.

Nothing here imports scikit-learn or skorch.
"""

from .biases import GaussianMixtureBias, SphericalGaussianBias
from .encoders import ConvEncoder, MLPEncoder, initialize_layers
from .losses import ContrastiveDivergenceLoss
from .mixture_prior import MixtureOfGaussiansPrior
from .model import ConjugateEnergyModel, map_batches
from .sgld import (
    ReplayBuffer,
    frozen_parameters,
    langevin_dynamics,
    sample_fresh_chains,
    uniform_noise,
)

__all__ = [
    "ConjugateEnergyModel",
    "ContrastiveDivergenceLoss",
    "ConvEncoder",
    "GaussianMixtureBias",
    "MLPEncoder",
    "MixtureOfGaussiansPrior",
    "ReplayBuffer",
    "SphericalGaussianBias",
    "frozen_parameters",
    "initialize_layers",
    "langevin_dynamics",
    "map_batches",
    "sample_fresh_chains",
    "uniform_noise",
]
