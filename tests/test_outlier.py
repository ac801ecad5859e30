"""Behaviour of CEBMOutlierDetector: thresholds, labels, errors, persistence."""

import joblib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from sklearn_cebm import CEBMEncoder, CEBMOutlierDetector

from .conftest import CHEAP_SETTINGS

OUTLIER_SCORES = ["log_density", "gradient_norm"]


@pytest.fixture(params=OUTLIER_SCORES)
def fitted(request, blobs):
    detector = CEBMOutlierDetector(
        **CHEAP_SETTINGS, contamination=0.1, outlier_score=request.param, random_state=0
    )
    return detector.fit(blobs[0])


@pytest.mark.parametrize("outlier_score", OUTLIER_SCORES)
@pytest.mark.parametrize("contamination", [0.02, 0.1, 0.25, 0.5])
def test_cebmoutlierdetector_contamination_respected_on_training_data(
    blobs, outlier_score, contamination
):
    X, _ = blobs
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


def test_cebmoutlierdetector_predict_values_in_minus_one_one(fitted, blobs):
    labels = fitted.predict(blobs[0])
    assert labels.dtype.kind == "i"
    assert set(np.unique(labels)) == {-1, 1}


def test_cebmoutlierdetector_decision_function_sign_consistent_with_predict(fitted, blobs):
    X, _ = blobs
    decision = fitted.decision_function(X)
    np.testing.assert_array_equal(fitted.predict(X), np.where(decision < 0, -1, 1))
    np.testing.assert_allclose(decision, fitted.score_samples(X) - fitted.offset_)


def test_cebmoutlierdetector_fit_predict_equals_fit_then_predict(blobs):
    X, _ = blobs
    first = CEBMOutlierDetector(**CHEAP_SETTINGS, contamination=0.1, random_state=0)
    second = CEBMOutlierDetector(**CHEAP_SETTINGS, contamination=0.1, random_state=0)
    np.testing.assert_array_equal(first.fit_predict(X), second.fit(X).predict(X))


def test_cebmoutlierdetector_scores_are_the_cebm_density_and_gradient(blobs):
    X, _ = blobs
    # The encoder's chain start is the one default the two estimators do not share.
    encoder = CEBMEncoder(**CHEAP_SETTINGS, chain_init="uniform", random_state=0).fit(X)
    by_density = CEBMOutlierDetector(**CHEAP_SETTINGS, random_state=0).fit(X)
    by_gradient = CEBMOutlierDetector(
        **CHEAP_SETTINGS, outlier_score="gradient_norm", random_state=0
    ).fit(X)
    np.testing.assert_array_equal(by_density.score_samples(X), encoder.score_samples(X))
    np.testing.assert_array_equal(by_gradient.score_samples(X), -encoder.score_gradient_norm(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cebmoutlierdetector_scores_keep_float_dtype(blobs, dtype):
    X = blobs[0].astype(dtype)
    detector = CEBMOutlierDetector(**CHEAP_SETTINGS, outlier_score="gradient_norm").fit(X)
    assert detector.score_samples(X).dtype == dtype
    assert detector.decision_function(X).dtype == dtype


@pytest.mark.parametrize(
    "params, match",
    [
        ({"contamination": 0.6}, "contamination"),
        ({"contamination": 0.0}, "contamination"),
        ({"contamination": "some"}, "contamination"),
        ({"outlier_score": "likelihood"}, "outlier_score"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_cebmoutlierdetector_rejects_bad_parameters(blobs, params, match):
    with pytest.raises(ValueError, match=match):
        CEBMOutlierDetector(**{**CHEAP_SETTINGS, **params}).fit(blobs[0])


def test_cebmoutlierdetector_rejects_bad_input(fitted, blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="NaN"):
        CEBMOutlierDetector(**CHEAP_SETTINGS).fit(np.where(X > 1.5, np.nan, X))
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :2])
    with pytest.raises(NotFittedError):
        CEBMOutlierDetector(**CHEAP_SETTINGS).decision_function(X)


def test_cebmoutlierdetector_joblib_round_trip(fitted, blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "detector.joblib"
    joblib.dump(fitted, path)
    restored = joblib.load(path)
    assert restored.offset_ == fitted.offset_
    np.testing.assert_array_equal(restored.decision_function(X), fitted.decision_function(X))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))


def test_cebmoutlierdetector_warm_start_recomputes_the_offset(blobs):
    X, _ = blobs
    detector = CEBMOutlierDetector(
        **CHEAP_SETTINGS, contamination=0.2, warm_start=True, random_state=0
    ).fit(X)
    detector.set_params(contamination=0.4).fit(X)
    assert detector.n_iter_ == 2 * CHEAP_SETTINGS["max_iter"]
    assert abs(np.sum(detector.predict(X) == -1) - 0.4 * len(X)) <= 1
