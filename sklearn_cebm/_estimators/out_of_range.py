"""What a score is outside the box the training data span: below every training score.

Every model of this package is defined on the box ``[low, high]`` its training data span
(scaled into ``[-1, 1]``, where the SGLD sampler is confined): it has no density outside,
where its network only extrapolates (an image of all 1000s scored far above the training
digits). The log-density there is ``-inf``. The scores stay finite, so that they can be
averaged, thresholded and ranked, and follow that rule in order:
:func:`score_outside_range` puts every out-of-range input below the lowest score of the
training data, the farther out the lower.
"""

import numpy as np

__all__ = ["distance_outside_range", "project_onto_range", "score_outside_range"]

# Inputs within float32's rounding of the box's ends are in it: the networks compute in
# float32, and a float64 training value cast to float32 (or back) must stay in range.
_ROUNDING_SLACK = 4 * np.finfo(np.float32).eps
# Rows per block of distance_outside_range: 1,024 rows of 784 float64 features are 6 MiB.
_ROWS_PER_BLOCK = 1024


def distance_outside_range(X, low, high, scale):
    """Euclidean distance of each row of ``X`` to the box ``[low, high]``, in box units.

    Each feature's excess over its range counts in units of ``scale``, the half-range
    that maps the box onto ``[-1, 1]``: the sampler's units, so that a feature of a wide
    range does not outweigh one of a narrow range. A feature constant in training
    (``low == high``, scale 1) has a range of one point, so any deviation from it is out
    of range, counted in X's units. Values within float32's rounding of an end are in
    range.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    low, high, scale : ndarray of shape (n_features,)

    Returns
    -------
    ndarray of shape (n_samples,)
        Zero for rows inside the box, positive for the others; float64.
    """
    X = np.asarray(X)
    slack = _ROUNDING_SLACK * np.maximum(np.abs(low), np.abs(high))
    distance = np.zeros(X.shape[0])
    # In blocks of rows, so that the float64 temporaries stay in the cache: on 16,384
    # images of 784 pixels at once they took 1.8 s, three times the conv net's pass.
    for start in range(0, X.shape[0], _ROWS_PER_BLOCK):
        block = np.asarray(X[start : start + _ROWS_PER_BLOCK], dtype=np.float64)
        with np.errstate(over="ignore"):
            excess = np.maximum(low - block, 0.0) + np.maximum(block - high, 0.0)
        out = excess > slack
        if not out.any():
            continue
        excess = np.where(out, excess, 0.0) / scale
        # Scaled by the largest excess first, so that squaring cannot overflow.
        largest = excess.max(axis=1, initial=0.0)
        ratios = np.divide(
            excess, largest[:, None], out=np.zeros_like(excess), where=largest[:, None] > 0
        )
        distance[start : start + len(block)] = largest * np.sqrt(np.sum(np.square(ratios), axis=1))
    return distance


def project_onto_range(X, low, high):
    """The nearest point of the box ``[low, high]`` to each row of ``X`` (feature-wise clip)."""
    return np.clip(np.asarray(X, dtype=np.float64), low, high)


def score_outside_range(scores_at_projection, distance, lowest_training_score):
    """Scores (higher is more typical) that follow the model's support.

    Inside the box (``distance == 0``) a score is the model's own. Outside, the model
    has no density (log-density ``-inf``); the score returned instead is

    ``min(s(pi(x)), s_min) - (1 + d(x))``

    with ``pi(x)`` the projection of ``x`` onto the box, ``s`` the model's score there,
    ``s_min`` the lowest score of the training data (recorded at fit) and ``d(x)`` the
    distance to the box in box units. By construction it lies at least one unit below
    every training score, so any threshold at or below a training score (an outlier
    detector's ``offset_``) flags it, whatever the network extrapolates to; among
    out-of-range inputs the farther out scores lower, and at equal distance the one whose
    projection is less typical. The unit margin is far above float32's rounding of the
    training scores, so recomputing them in other batches cannot reorder them.

    Parameters
    ----------
    scores_at_projection : ndarray of shape (n_samples,)
        The model's score at ``pi(x)``; for an input in the box, at ``x`` itself.
    distance : ndarray of shape (n_samples,)
        :func:`distance_outside_range` of each input.
    lowest_training_score : float
        ``s_min``.

    Returns
    -------
    ndarray of shape (n_samples,)
        In the dtype of ``scores_at_projection``; finite.
    """
    dtype = scores_at_projection.dtype
    floor = np.minimum(scores_at_projection, lowest_training_score)
    with np.errstate(over="ignore"):
        penalised = floor - (1.0 + distance)
    # Finite even for the farthest inputs: their order is kept up to the dtype's range.
    penalised = np.maximum(penalised, -np.finfo(dtype).max)
    return np.where(distance > 0, penalised, scores_at_projection).astype(dtype)
