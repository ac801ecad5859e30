"""The affine map between the caller's units and the box ``[-1, 1]`` the sampler works in."""

import numpy as np

__all__ = ["fit_unit_range", "from_unit_range", "to_unit_range"]


def fit_unit_range(X, per_feature):
    """Center and scale that map the range of ``X`` onto ``[-1, 1]``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    per_feature : bool
        One range per column (tabular data), or one for the whole array (pixels, which
        should keep their relative intensities).

    Returns
    -------
    center, scale : ndarray of shape (n_features,)
        ``(X - center) / scale`` lies in ``[-1, 1]``; a constant column gets scale 1.
    """
    axis = 0 if per_feature else None
    low = np.broadcast_to(X.min(axis=axis), X.shape[1:]).astype(np.float64)
    high = np.broadcast_to(X.max(axis=axis), X.shape[1:]).astype(np.float64)
    center = (high + low) / 2.0
    half_range = (high - low) / 2.0
    scale = np.where(half_range > 0, half_range, 1.0)
    return center, scale


def to_unit_range(X, center, scale):
    """Map ``X`` from the caller's units into the sampler's box, as float32."""
    return ((X - center) / scale).astype(np.float32)


def from_unit_range(X_unit, center, scale, dtype=np.float64):
    """Map sampler-box values back to the caller's units."""
    return (np.asarray(X_unit, dtype=np.float64) * scale + center).astype(dtype)
