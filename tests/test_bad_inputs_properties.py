"""Property-based tests of bad input at inference (issue 12), over every estimator that
``tests/test_common.py`` covers: hypothesis generates the arrays, each estimator is fitted
once per module.

1. Cells mixing finite values, NaN and +-infinity: rows holding NaN or infinity raise a
   ValueError that names the problem; otherwise a ValueError or only finite values.
2. Finite cells of any magnitude: a ValueError, or finite outputs of the documented shape;
   ``score_samples`` scores rows outside the training box ``[input_min_, input_max_]``
   below ``lowest_training_score_``.
3. The wrong number of features always raises a ValueError.
4. A call that raised leaves the estimator bit-identical. Compared with test_common's
   ``_snapshot``, not ``joblib.hash``: pickling a fitted estimator twice gives different
   bytes (the torch state pickles differently each time), so its joblib hash changes
   without any call.
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone

from .test_common import ESTIMATORS, FLOAT_OUTPUT_METHODS, _snapshot

# scikit-learn's finiteness check sums X first; a row holding both +inf and -inf makes that
# sum NaN and numpy warns before scikit-learn raises its ValueError (scikit-learn's, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
METHODS = ("predict", *FLOAT_OUTPUT_METHODS)
N_FEATURES = 3
# The module-scoped fixture below is fitted once; conftest's autouse fixture that keeps
# torch to one thread is function-scoped, which hypothesis would otherwise flag.
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HUGE = [1e30, 3.4e38, 1e39, 1e300, np.finfo(np.float64).max]
huge_values = st.sampled_from([sign * value for value in HUGE for sign in (1.0, -1.0)])
n_rows = st.integers(min_value=1, max_value=6)


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def fitted(request):
    """One estimator fitted on the blobs of ``tests/conftest.py``, with its outputs' shapes
    on the training data (what every output must match past the row axis)."""
    rng = np.random.default_rng(0)
    centers = np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 2.0, -2.0]])
    X = centers[rng.integers(0, 3, size=150)] + 0.3 * rng.standard_normal((150, N_FEATURES))
    estimator = clone(ESTIMATORS[request.param]).set_params(random_state=0).fit(X)
    # In eval mode from here on, as after any inference.
    shapes = {m: getattr(estimator, m)(X).shape[1:] for m in METHODS if hasattr(estimator, m)}
    return estimator, shapes


def _calls(estimator, shapes, X):
    """Each inference method's output on X, or the ValueError it raised; any other
    exception fails the test. Checks that a call that raised changed nothing."""
    before = _snapshot(estimator)
    results = {}
    for method in shapes:
        try:
            results[method] = getattr(estimator, method)(X)
        except ValueError as error:
            results[method] = error
            assert _snapshot(estimator) == before, f"{method} raised and changed the estimator"
    return results


@SETTINGS
@given(data=st.data())
def test_non_finite_cells_raise_a_clear_error(fitted, data):
    estimator, shapes = fitted
    cells = st.one_of(
        st.floats(min_value=-10.0, max_value=10.0),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([np.nan, np.inf, -np.inf]),
    )
    X = data.draw(arrays(np.float64, st.tuples(n_rows, st.just(N_FEATURES)), elements=cells))
    non_finite = not np.all(np.isfinite(X))
    for method, result in _calls(estimator, shapes, X).items():
        if isinstance(result, ValueError):
            if non_finite:
                assert re.search("NaN|infinity|finite", str(result)), (method, result)
        else:
            assert not non_finite, f"{method} accepted NaN or infinity"
            assert np.all(np.isfinite(result)), method


@SETTINGS
@given(data=st.data())
def test_finite_cells_of_any_magnitude_give_finite_outputs_or_raise(fitted, data):
    estimator, shapes = fitted
    cells = st.one_of(st.floats(min_value=-1e300, max_value=1e300), huge_values)
    X = data.draw(arrays(np.float64, st.tuples(n_rows, st.just(N_FEATURES)), elements=cells))
    for method, result in _calls(estimator, shapes, X).items():
        if isinstance(result, ValueError):
            continue
        assert result.shape == (len(X), *shapes[method]), method
        if method != "predict":
            assert np.all(np.isfinite(result)), method
    if "score_samples" not in shapes:
        return  # the BiGAN has no density
    scores = _calls(estimator, {"score_samples": shapes["score_samples"]}, X)["score_samples"]
    if not isinstance(scores, ValueError):
        outside = np.any((X < estimator.input_min_) | (X > estimator.input_max_), axis=1)
        # Each score's own lowest training value: a detector scoring by the gradient norm
        # puts out-of-range rows below minus the highest training norm, not below the
        # log-density's lowest training score (score_gradient_norm's rule).
        lowest = (
            -estimator.highest_training_gradient_norm_
            if getattr(estimator, "outlier_score", None) == "gradient_norm"
            else estimator.lowest_training_score_
        )
        assert np.all(scores[outside] < lowest), (X, scores)


@SETTINGS
@given(data=st.data())
def test_the_wrong_number_of_features_raises(fitted, data):
    estimator, shapes = fitted
    n_features = data.draw(st.integers(min_value=1, max_value=8).filter(lambda n: n != N_FEATURES))
    X = data.draw(
        arrays(np.float64, st.tuples(n_rows, st.just(n_features)), elements=st.floats(-10, 10))
    )
    for method, result in _calls(estimator, shapes, X).items():
        assert isinstance(result, ValueError), f"{method} accepted {n_features} features"
        assert re.search("features", str(result)), (method, result)
