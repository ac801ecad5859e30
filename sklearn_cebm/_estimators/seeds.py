"""Seeds for the package's own generators, drawn from a scikit-learn ``random_state``.

Every estimator turns its ``random_state`` into int32 seeds the same way, so that torch's
generators, scikit-learn's estimators inside it and numpy's draws all follow from it.
"""

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["int32_seeds"]

INT32_MAX = np.iinfo(np.int32).max


def int32_seeds(random_state, size=None):
    """Seeds in ``[0, 2**31 - 1)`` drawn from ``random_state``.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None
        As scikit-learn takes it; a ``RandomState`` is drawn from (and advanced).
    size : int or None, default=None
        None for one seed, as a Python int; else an array of ``size`` seeds.

    Returns
    -------
    int or ndarray of shape (size,)
    """
    return check_random_state(random_state).randint(INT32_MAX, size=size)
