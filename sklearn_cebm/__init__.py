"""Conjugate Energy-Based Models (Wu et al., ICML 2021) as scikit-learn estimators."""

from ._callbacks import SamplerWarning
from ._checkpoint import EpochCheckpoint, resume_fit
from ._clusterer import GMMCEBMClusterer
from ._encoder import CEBMEncoder
from ._gmm_vae import GMMVAEClusterer
from ._igebm import IGEBMEncoder
from ._outlier import CEBMOutlierDetector
from ._presets import paper_settings
from ._training import TrainingDivergedError, TrainingInterrupted
from ._typicality import StatisticsTypicality
from ._vae import VAEEncoder

__all__ = [
    "CEBMEncoder",
    "CEBMOutlierDetector",
    "EpochCheckpoint",
    "GMMCEBMClusterer",
    "GMMVAEClusterer",
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
