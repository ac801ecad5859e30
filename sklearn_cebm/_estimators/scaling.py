"""The affine map between the caller's units and the box ``[-1, 1]`` the sampler works in."""

import numpy as np

__all__ = [
    "check_input_range",
    "fit_input_range",
    "fit_unit_range",
    "from_unit_range",
    "to_unit_range",
    "unit_range_log_volume",
    "unit_range_of",
]


def fit_input_range(X, per_feature):
    """The range ``[low, high]`` of ``X``: the box the model is defined on, in X's units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    per_feature : bool
        One range per column (tabular data), or one for the whole array (pixels, which
        should keep their relative intensities).

    Returns
    -------
    low, high : ndarray of shape (n_features,)
        The smallest and largest value of each feature (of all of X, repeated, when not
        ``per_feature``), in float64.

    Raises
    ------
    ValueError
        If a feature's range overflows float64 (it holds values near both of float64's
        extremes), which would make its scale into ``[-1, 1]`` infinite.
    """
    axis = 0 if per_feature else None
    low = np.broadcast_to(X.min(axis=axis), X.shape[1:]).astype(np.float64)
    high = np.broadcast_to(X.max(axis=axis), X.shape[1:]).astype(np.float64)
    with np.errstate(over="ignore"):
        span = high - low
    if not np.all(np.isfinite(span)):
        feature = int(np.flatnonzero(~np.isfinite(span))[0])
        raise ValueError(
            f"X spans more than float64 can hold in feature {feature} (from {low[feature]:.3g} "
            f"to {high[feature]:.3g}): its scale into [-1, 1] would be infinite. Rescale X."
        )
    return low, high


def fit_unit_range(X, per_feature):
    """Center and scale that map the range of ``X`` onto ``[-1, 1]``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    per_feature : bool
        As for :func:`fit_input_range`.

    Returns
    -------
    center, scale : ndarray of shape (n_features,)
        ``(X - center) / scale`` lies in ``[-1, 1]``; a constant column gets scale 1.

    Raises
    ------
    ValueError
        As :func:`fit_input_range`.
    """
    return unit_range_of(*fit_input_range(X, per_feature))


def unit_range_of(low, high):
    """Center and scale that map the box ``[low, high]`` onto ``[-1, 1]``.

    Parameters
    ----------
    low, high : ndarray of shape (n_features,)
        The box, ``low <= high``; a feature with ``low == high`` gets scale 1.

    Returns
    -------
    center, scale : ndarray of shape (n_features,)
    """
    # Halves first: high + low can overflow where high - low does not.
    center = high / 2.0 + low / 2.0
    span = high - low
    scale = np.where(span > 0, span / 2.0, 1.0)
    return center, scale


def check_input_range(input_range, X):
    """The box ``(low, high)`` a user gave for the data, as arrays of X's width.

    A stream's first chunk need not span the range of the whole stream; the box given
    instead must hold the chunk.

    Parameters
    ----------
    input_range : pair of float or of array-like of shape (n_features,)
        The lowest and highest value of each feature (a float for all of them).
    X : ndarray of shape (n_samples, n_features)
        The first chunk.

    Returns
    -------
    low, high : ndarray of shape (n_features,), float64

    Raises
    ------
    ValueError
        If ``input_range`` is not such a pair of finite bounds with ``low <= high``, or X
        has a value outside the box.
    """
    n_features = X.shape[1]
    try:
        low, high = (
            np.broadcast_to(np.asarray(bound, dtype=np.float64), (n_features,)).copy()
            for bound in input_range
        )
    except (TypeError, ValueError) as error:
        raise ValueError(
            "input_range must be a pair (low, high) of floats or of arrays of one value per "
            f"feature ({n_features}); got {input_range!r}."
        ) from error
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low <= high)):
        raise ValueError(f"input_range needs finite bounds with low <= high; got {input_range!r}.")
    outside = (X < low) | (X > high)
    if np.any(outside):
        row, feature = (int(index[0]) for index in np.nonzero(outside))
        raise ValueError(
            f"X[{row}, {feature}] = {X[row, feature]:.6g} lies outside input_range "
            f"[{low[feature]:.6g}, {high[feature]:.6g}] of that feature: the range must "
            "hold all the data the model is trained on."
        )
    return low, high


def to_unit_range(X, center, scale):
    """Map ``X`` from the caller's units into the sampler's box, as float32.

    Raises
    ------
    ValueError
        If a value, so mapped, lies beyond float32's range: the networks compute in float32,
        where it would become infinite and every output of its row NaN or infinite.
    """
    with np.errstate(over="ignore"):
        X_unit = (np.asarray(X, dtype=np.float64) - center) / scale
    too_large = ~(np.abs(X_unit) <= np.finfo(np.float32).max)
    if np.any(too_large):
        row, feature = (int(index[0]) for index in np.nonzero(too_large))
        raise ValueError(
            f"X holds values too far outside the training data's range for the model: "
            f"X[{row}, {feature}] = {X[row, feature]:.3g} is {X_unit[row, feature]:.3g} "
            "half-ranges from the training data's centre, beyond float32's largest value "
            f"({np.finfo(np.float32).max:.3g}), which the networks compute in."
        )
    return X_unit.astype(np.float32)


def from_unit_range(X_unit, center, scale, dtype=np.float64):
    """Map sampler-box values back to the caller's units."""
    return (np.asarray(X_unit, dtype=np.float64) * scale + center).astype(dtype)


def unit_range_log_volume(scale):
    """``log |det dx / du| = sum(log scale)``: what a log-density loses from box to X's units.

    With ``u = (x - center) / scale`` a density ``q(u)`` on the box is the density
    ``q(u(x)) / prod(scale)`` over X, so a log-density (or a log-normaliser) in X's units is
    the box's one minus (plus) this sum; the same for every row.

    Parameters
    ----------
    scale : ndarray of shape (n_features,)
        As :func:`fit_unit_range` returns it (positive).

    Returns
    -------
    float
    """
    return float(np.sum(np.log(np.asarray(scale, dtype=np.float64))))
