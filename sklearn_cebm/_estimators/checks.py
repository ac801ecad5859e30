"""Checks of what an estimator is given, beyond scikit-learn's parameter constraints.

Parameters (no bool for a number, positive sizes, unchanged since the network was built),
the counts that methods take and the finiteness of the networks' outputs.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import InvalidParameterError

__all__ = ["check_count"]


def _check_sizes(name, value, estimator_name):
    """Reject a ``hidden_layer_sizes`` or ``image_shape`` whose elements are not positive ints.

    scikit-learn's constraints see only the container's type; torch would fail on a zero or
    negative size deep inside a layer, and truncate or refuse a float or a bool.
    """
    for size in value:
        if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
            raise InvalidParameterError(
                f"The {name!r} parameter of {estimator_name} must hold positive ints; got "
                f"{value!r}, whose element {size!r} is not one."
            )


def _check_no_bools(params, constraints, estimator_name):
    """Reject a bool given for a number: Python counts it as an int, and 1 or 0 is no intent."""
    for name, value in params.items():
        accepts_bool = {"boolean", "verbose"} & {
            c for c in constraints.get(name, []) if isinstance(c, str)
        }
        if isinstance(value, bool) and not accepts_bool:
            raise InvalidParameterError(
                f"The {name!r} parameter of {estimator_name} must be a number, not a bool; "
                f"got {value!r}."
            )


def check_count(value, name, min_val, method="sample"):
    """Check an int argument of ``method`` (``n_samples``, ``n_steps``); return it as an int.

    Raises
    ------
    TypeError
        If ``value`` is not an int: a bool, 1.5, '3' or None (none is truncated or cast).
    ValueError
        If it is below ``min_val``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(
            f"{method} needs an int {name}; got {value!r} of type {type(value).__name__}."
        )
    if value < min_val:
        raise ValueError(f"{method} needs an integer {name} >= {min_val}; got {value!r}.")
    return int(value)


def _check_finite_outputs(outputs, X_unit):
    """Raise when the float32 networks overflowed on some rows, instead of returning NaN.

    Inputs far outside the training data's range (X * 1e30) are finite in float32 but
    overflow in the layers; a NaN score or code would pass silently into an argmax, a
    threshold or a mean.
    """
    bad_rows = np.zeros(len(X_unit), dtype=bool)
    for output in outputs:
        bad_rows |= ~torch.isfinite(output).reshape(len(X_unit), -1).all(dim=1).numpy()
    if np.any(bad_rows):
        row = int(np.flatnonzero(bad_rows)[0])
        reach = float(np.abs(X_unit[row]).max())
        raise ValueError(
            f"The model's outputs are not finite for {int(bad_rows.sum())} row(s) of X (the "
            f"first: row {row}): its values lie up to {reach:.3g} half-ranges from the "
            "training data's centre, so far outside the training data that the networks' "
            "float32 arithmetic overflows. Such inputs have no meaningful score; drop or "
            "clip them."
        )


def _same_setting(before, now):
    """Whether a parameter still has the value the network was built with."""
    if before is now:
        return True
    if isinstance(before, (list, tuple)) and isinstance(now, (list, tuple)):
        return len(before) == len(now) and all(map(_same_setting, before, now))
    if isinstance(before, torch.nn.Module) or isinstance(now, torch.nn.Module):
        return False
    try:
        return bool(before == now)
    except (TypeError, ValueError):
        return False
