"""Conjugate Energy-Based Models (Wu et al., ICML 2021) as scikit-learn estimators."""

from ._clustering.clusterer import GMMCEBMClusterer
from ._clustering.gmm_vae import GMMVAEClusterer
from ._estimators.presets import paper_settings
from ._outliers.detector import CEBMOutlierDetector
from ._outliers.typicality import StatisticsTypicality
from ._representation.bigan import BIGANEncoder
from ._representation.encoder import CEBMEncoder
from ._representation.igebm import IGEBMEncoder
from ._representation.vae import VAEEncoder
from ._training.adversarial_net import GameCollapseWarning
from ._training.callbacks import SamplerWarning
from ._training.checkpoint import EpochCheckpoint, resume_fit
from ._training.nets import TrainingDivergedError, TrainingInterrupted

__all__ = [
    "BIGANEncoder",
    "CEBMEncoder",
    "CEBMOutlierDetector",
    "EpochCheckpoint",
    "GMMCEBMClusterer",
    "GMMVAEClusterer",
    "GameCollapseWarning",
    "IGEBMEncoder",
    "SamplerWarning",
    "StatisticsTypicality",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "VAEEncoder",
    "paper_settings",
    "resume_fit",
]
__version__ = "0.1.0.dev0"
