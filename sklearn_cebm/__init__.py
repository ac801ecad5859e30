"""Conjugate Energy-Based Models (Wu et al., ICML 2021) as scikit-learn estimators."""

from ._clusterer import GMMCEBMClusterer
from ._encoder import CEBMEncoder
from ._outlier import CEBMOutlierDetector
from ._training import TrainingDivergedError

__all__ = ["CEBMEncoder", "CEBMOutlierDetector", "GMMCEBMClusterer", "TrainingDivergedError"]
__version__ = "0.1.0.dev0"
