"""Conjugate Energy-Based Models (Wu et al., ICML 2021) as scikit-learn estimators."""

from ._encoder import CEBMEncoder
from ._training import TrainingDivergedError

__all__ = ["CEBMEncoder", "TrainingDivergedError"]
__version__ = "0.1.0.dev0"
