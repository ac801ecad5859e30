"""Behaviour of CEBMOutlierDetector: thresholds, labels and the two outlier scores.

What every estimator must do (persistence, determinism, bad input, scikit-learn's tools) is
tested over all of them in tests/test_common.py.
"""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sklearn_cebm import CEBMEncoder, CEBMOutlierDetector

from .conftest import CHEAP_SETTINGS

OUTLIER_SCORES = ["log_density", "gradient_norm"]


@pytest.fixture(params=OUTLIER_SCORES)
def fitted(request, X):
    detector = CEBMOutlierDetector(
        **CHEAP_SETTINGS, contamination=0.1, outlier_score=request.param, random_state=0
    )
    return detector.fit(X)


@pytest.mark.parametrize("outlier_score", OUTLIER_SCORES)
@pytest.mark.parametrize("contamination", [0.02, 0.1, 0.25, 0.5])
def test_cebmoutlierdetector_contamination_respected_on_training_data(
    X, outlier_score, contamination
):
    detector = CEBMOutlierDetector(
        **CHEAP_SETTINGS,
        contamination=contamination,
        outlier_score=outlier_score,
        random_state=0,
    )
    labels = detector.fit_predict(X)
    assert abs(np.sum(labels == -1) - contamination * len(X)) <= 1


def test_cebmoutlierdetector_auto_contamination_flags_about_one_percent():
    X = np.random.default_rng(0).normal(size=(500, 3))
    labels = CEBMOutlierDetector(**CHEAP_SETTINGS, random_state=0).fit_predict(X)
    assert np.sum(labels == -1) == 5


def test_cebmoutlierdetector_predict_values_in_minus_one_one(fitted, X):
    labels = fitted.predict(X)
    assert labels.dtype.kind == "i"
    assert set(np.unique(labels)) == {-1, 1}


def test_cebmoutlierdetector_decision_function_sign_consistent_with_predict(fitted, X):
    decision = fitted.decision_function(X)
    np.testing.assert_array_equal(fitted.predict(X), np.where(decision < 0, -1, 1))
    np.testing.assert_allclose(decision, fitted.score_samples(X) - fitted.offset_)


def test_cebmoutlierdetector_scores_are_the_cebm_density_and_gradient(X):
    # The encoder's chain start is the one default the two estimators do not share.
    encoder = CEBMEncoder(**CHEAP_SETTINGS, chain_init="uniform", random_state=0).fit(X)
    by_density = CEBMOutlierDetector(**CHEAP_SETTINGS, random_state=0).fit(X)
    by_gradient = CEBMOutlierDetector(
        **CHEAP_SETTINGS, outlier_score="gradient_norm", random_state=0
    ).fit(X)
    np.testing.assert_array_equal(by_density.score_samples(X), encoder.score_samples(X))
    np.testing.assert_array_equal(by_gradient.score_samples(X), -encoder.score_gradient_norm(X))


# The bounds of (0, 0.5]: scikit-learn's check_param_validation (tests/test_common.py) tries
# only a value below the left one.
@pytest.mark.parametrize("contamination", [0.6, 0.0])
def test_cebmoutlierdetector_rejects_contamination_outside_its_bounds(X, contamination):
    with pytest.raises(ValueError, match="contamination"):
        CEBMOutlierDetector(**CHEAP_SETTINGS, contamination=contamination).fit(X)


def test_cebmoutlierdetector_warm_start_recomputes_the_offset(X):
    detector = CEBMOutlierDetector(
        **CHEAP_SETTINGS, contamination=0.2, warm_start=True, random_state=0
    ).fit(X)
    detector.set_params(contamination=0.4).fit(X)
    assert abs(np.sum(detector.predict(X) == -1) - 0.4 * len(X)) <= 1


# Out-of-range inputs: the model is defined on the box its training data span, and outside
# it its network only extrapolates (an image of all 1000s scored 38,284 against a median
# of -0.23, and was an inlier).
@pytest.mark.parametrize("outlier_score", OUTLIER_SCORES)
def test_cebmoutlierdetector_flags_an_image_far_outside_the_pixel_range(digits, outlier_score):
    X = digits[0]
    detector = CEBMOutlierDetector(
        **CHEAP_SETTINGS, image_shape=(1, 8, 8), outlier_score=outlier_score, random_state=0
    ).fit(X)
    bright = np.full((1, 64), 1000.0)
    assert detector.score_samples(bright)[0] < detector.score_samples(X).min()
    np.testing.assert_array_equal(detector.predict(bright), [-1])


def _uniform_noise_like(X, seed=0):
    return np.random.default_rng(seed).uniform(0, 16, size=X.shape)


def test_cebmoutlierdetector_per_feature_ranges_put_noise_below_the_digits(digits):
    # Without image_shape each pixel has its own range; some are constant in training.
    X = digits[0]
    detector = CEBMOutlierDetector(**CHEAP_SETTINGS, random_state=0).fit(X)
    assert np.any(X.min(axis=0) == X.max(axis=0))
    noise = _uniform_noise_like(X)
    assert detector.score_samples(noise).max() < detector.score_samples(X).min()
    np.testing.assert_array_equal(detector.predict(noise), -1)


def test_cebmoutlierdetector_after_minmaxscaler_puts_noise_below_the_digits(digits):
    X = digits[0]
    pipeline = make_pipeline(MinMaxScaler(), CEBMOutlierDetector(**CHEAP_SETTINGS, random_state=0))
    pipeline.fit(X)
    noise = _uniform_noise_like(X)
    assert pipeline.score_samples(noise).max() < pipeline.score_samples(X).min()
    np.testing.assert_array_equal(pipeline.predict(noise), -1)
