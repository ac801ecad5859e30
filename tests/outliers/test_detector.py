"""Behaviour of CEBMOutlierDetector: thresholds, labels and the two outlier scores.

What every estimator must do (persistence, determinism, bad input, scikit-learn's tools) is
tested over all of them in tests/test_common.py.
"""

import re

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sklearn_cebm import CEBMEncoder, CEBMOutlierDetector
from sklearn_cebm._estimators.base import BaseNeuralEstimator
from sklearn_cebm._outliers.detector import (
    auto_dsm_noise,
    auto_max_iter,
    split_reference_rows,
)
from sklearn_cebm._outliers.typicality import model_statistics
from sklearn_cebm.evaluation import ood_auroc

from ..conftest import CHEAP_SETTINGS

OUTLIER_SCORES = ["typicality", "log_density", "gradient_norm"]


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
    # The detector's objective='auto' trains a table by score matching, the encoder by PCD;
    # the encoder averages its weights by default, the detector does not.
    encoder = CEBMEncoder(**CHEAP_SETTINGS, ema_decay=None, random_state=0).fit(X)
    by_density = CEBMOutlierDetector(**CHEAP_SETTINGS, objective="pcd", random_state=0).fit(X)
    by_gradient = CEBMOutlierDetector(
        **CHEAP_SETTINGS, objective="pcd", outlier_score="gradient_norm", random_state=0
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


# ----------------------------------------------------------------- the 'auto' defaults
@pytest.mark.parametrize(
    "n_samples, batch_size, epochs",
    [
        (25, 128, 1000),  # one batch an epoch: 1,000 epochs make 1,000 updates
        (100, 128, 1000),
        (500, 128, 250),  # 4 batches
        (4224, 128, 31),  # 33 batches: 31 epochs make 1,023 updates
        (4225, 128, 30),  # 34 batches: the floor of 30 epochs
        (60000, 128, 30),  # Fashion-MNIST's training set: as before
        (500, 32, 63),  # 16 batches
    ],
)
def test_auto_max_iter_trains_at_least_30_epochs_and_1000_updates(n_samples, batch_size, epochs):
    assert auto_max_iter(n_samples, batch_size) == epochs
    updates = epochs * -(-n_samples // batch_size)
    assert updates >= 1000 and (epochs == 30 or (epochs - 1) * -(-n_samples // batch_size) < 1000)


def _hidden_widths(detector):
    linear = [m for m in detector.net_.module_.modules() if isinstance(m, torch.nn.Linear)]
    return tuple(layer.out_features for layer in linear[:-1])


@pytest.mark.parametrize("n_features", [2, 50, 200])
def test_cebmoutlierdetector_auto_encoder_has_two_layers_of_256_for_any_table(n_features):
    X = np.random.default_rng(0).normal(size=(20, n_features))
    detector = CEBMOutlierDetector(n_components=4, max_iter=1, random_state=0).fit(X)
    assert _hidden_widths(detector) == (256, 256)


@pytest.mark.slow
def test_cebmoutlierdetector_auto_max_iter_sets_the_epochs_trained():
    X = np.random.default_rng(0).normal(size=(200, 2))
    detector = CEBMOutlierDetector(
        n_components=4, hidden_layer_sizes=(8,), batch_size=8, random_state=0
    ).fit(X)
    # 25 batches an epoch: 40 epochs for 1,000 updates.
    assert detector.n_iter_ == 40
    assert sum(len(epoch["batches"]) for epoch in detector.history_) == 1000
    detector.set_params(batch_size=5).fit(X)  # 40 batches: the floor of 30 epochs
    assert detector.n_iter_ == 30


def test_cebmoutlierdetector_auto_objective_is_dsm_for_tables_and_pcd_for_images(digits):
    X = digits[0]
    settings = dict(CHEAP_SETTINGS, max_iter=1)
    table = CEBMOutlierDetector(**settings, random_state=0).fit(X)
    images = CEBMOutlierDetector(**settings, image_shape=(1, 8, 8), random_state=0).fit(X)
    # Score matching records no contrastive energies; PCD does.
    assert "energy_gap" not in table.history_[-1]
    assert "energy_gap" in images.history_[-1]
    explicit = CEBMOutlierDetector(**settings, objective="dsm", random_state=0).fit(X)
    np.testing.assert_array_equal(table.score_samples(X), explicit.score_samples(X))


def test_auto_dsm_noise_is_half_scotts_bandwidth_of_the_scaled_table():
    rng = np.random.default_rng(0)
    X_unit = rng.uniform(-1, 1, size=(100, 4))
    spread = np.sqrt(np.mean(X_unit.var(axis=0)))
    assert auto_dsm_noise(X_unit, None) == pytest.approx(0.5 * 100 ** (-1 / 8) * spread)
    # More rows of the same spread, less noise; more features, more (a bandwidth's rule).
    assert auto_dsm_noise(np.tile(X_unit, (16, 1)), None) < auto_dsm_noise(X_unit, None)
    wide = np.tile(X_unit, (1, 8))
    assert auto_dsm_noise(wide, None) > auto_dsm_noise(X_unit, None)
    # Features squeezed by an extreme row get less noise than the box's width would give.
    squeezed = np.r_[0.1 * X_unit[:-1], np.ones((1, 4))]
    assert auto_dsm_noise(squeezed, None) < 0.5 * auto_dsm_noise(X_unit, None)


@pytest.mark.parametrize(
    "X_unit, image_shape",
    [
        (np.zeros((1, 3)), None),  # one row: no spread
        (np.full((10, 3), 0.5), None),  # constant features
        (np.random.default_rng(0).uniform(-1, 1, (10, 64)), (1, 8, 8)),  # images
    ],
)
def test_auto_dsm_noise_keeps_the_former_constant_without_a_spread_or_for_images(
    X_unit, image_shape
):
    assert auto_dsm_noise(X_unit, image_shape) == 0.1


def test_cebmoutlierdetector_auto_dsm_noise_is_resolved_on_the_first_training_call():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    settings = dict(n_components=4, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    detector = CEBMOutlierDetector(**settings).fit(X)
    X_unit = (X - detector.input_center_) / detector.input_scale_
    assert detector.dsm_noise_ == pytest.approx(auto_dsm_noise(X_unit, None))
    assert detector.net_.noise_std == detector.dsm_noise_
    # Later calls keep it, as they keep the scaling; a number given instead is used.
    first = detector.dsm_noise_
    detector.partial_fit(rng.normal(size=(5, 3)))
    assert detector.dsm_noise_ == first and detector.net_.noise_std == first
    detector.set_params(dsm_noise=0.3).partial_fit(X)
    assert detector.net_.noise_std == 0.3
    explicit = CEBMOutlierDetector(**settings, dsm_noise=first).fit(X)
    np.testing.assert_array_equal(
        explicit.score_samples(X), detector.set_params(dsm_noise="auto").fit(X).score_samples(X)
    )


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(dsm_noise="wide"), "dsm_noise"),
        (dict(dsm_noise=0.0), "dsm_noise"),
        (dict(max_iter="many"), "max_iter"),
        (dict(max_iter=0), "max_iter"),
        (dict(hidden_layer_sizes="wide"), "hidden_layer_sizes"),
        (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
        (dict(objective="mle"), "objective"),
    ],
)
def test_cebmoutlierdetector_rejects_bad_auto_parameters(X, params, name):
    with pytest.raises(ValueError, match=name):
        CEBMOutlierDetector(**params).fit(X)


def _ring(n, rng):
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = 2.0 + 0.1 * rng.standard_normal(n)
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])


@pytest.mark.slow
def test_cebmoutlierdetector_defaults_rank_a_ring_above_its_hole():
    # Before the 'auto' defaults (30 epochs of PCD: 60 updates here) the model filled the
    # hole and ranked it above the ring (AUROC 0.02 on the benchmark's ring).
    rng = np.random.default_rng(0)
    X_train, X_test = _ring(200, rng), _ring(200, rng)
    hole = 0.7 * rng.standard_normal((100, 2))
    detector = CEBMOutlierDetector(n_components=16, random_state=0).fit(X_train)
    assert ood_auroc(detector, X_test, hole) > 0.9


# ----------------------------------------------------------------- the 'typicality' score
def test_split_reference_rows_is_seeded_disjoint_and_complete():
    training, reference = split_reference_rows(50, 0.1, random_state=3)
    assert len(reference) == 5 and len(training) == 45
    np.testing.assert_array_equal(np.sort(np.r_[training, reference]), np.arange(50))
    again = split_reference_rows(50, 0.1, random_state=3)
    np.testing.assert_array_equal(again[1], reference)
    assert not np.array_equal(split_reference_rows(50, 0.1, random_state=4)[1], reference)
    # At least one row to train on, and two for the mixture.
    assert [len(rows) for rows in split_reference_rows(3, 0.9, random_state=0)] == [1, 2]
    assert [len(rows) for rows in split_reference_rows(4, 0.01, random_state=0)] == [2, 2]
    with pytest.raises(ValueError, match="1 sample"):
        split_reference_rows(1, 0.1, random_state=0)
    with pytest.raises(ValueError, match="at least 3 samples; got 2 samples"):
        split_reference_rows(2, 0.1, random_state=0)


def test_cebmoutlierdetector_auto_score_is_typicality_for_images_only(digits):
    X = digits[0]
    settings = dict(CHEAP_SETTINGS, max_iter=1, random_state=0)
    images = CEBMOutlierDetector(**settings, image_shape=(1, 8, 8)).fit(X)
    table = CEBMOutlierDetector(**settings).fit(X)
    assert hasattr(images, "typicality_test_") and not hasattr(table, "typicality_test_")
    explicit = CEBMOutlierDetector(**settings, image_shape=(1, 8, 8), outlier_score="typicality")
    np.testing.assert_array_equal(images.score_samples(X), explicit.fit(X).score_samples(X))


def test_cebmoutlierdetector_typicality_trains_without_the_reference_rows(digits):
    X = digits[0]
    detector = CEBMOutlierDetector(
        **CHEAP_SETTINGS, outlier_score="typicality", validation_fraction=0.2, random_state=0
    ).fit(X)
    training, _ = split_reference_rows(len(X), 0.2, random_state=0)
    # The box is the training rows' (per feature, on a table): the reference's are not in it.
    np.testing.assert_array_equal(detector.input_min_, X[training].min(axis=0))
    np.testing.assert_array_equal(detector.input_max_, X[training].max(axis=0))
    trained = CEBMOutlierDetector(**CHEAP_SETTINGS, outlier_score="log_density", random_state=0)
    trained.fit(X[training])
    np.testing.assert_array_equal(
        detector.history_[-1, "train_loss"], trained.history_[-1, "train_loss"]
    )


def test_cebmoutlierdetector_typicality_is_the_mixture_of_the_encoder_statistics(digits):
    # On the same network, the detector's statistics are CEBMEncoder's, and its score
    # their density under the mixture it fitted.
    X = digits[0]
    settings = dict(CHEAP_SETTINGS, image_shape=(1, 8, 8), objective="pcd", random_state=0)
    detector = CEBMOutlierDetector(**settings, outlier_score="typicality").fit(X)
    training, _ = split_reference_rows(len(X), 0.1, random_state=0)
    encoder = CEBMEncoder(**settings, ema_decay=None).fit(X[training])
    statistics, codes = model_statistics(encoder, X)
    detector_statistics, detector_codes = detector._model_statistics(X)
    np.testing.assert_allclose(detector_statistics, statistics, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(detector_codes, codes, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        detector.score_samples(X),
        detector.typicality_test_.score(statistics, codes),
        rtol=1e-4,
        atol=1e-4,
    )


def test_cebmoutlierdetector_typicality_needs_two_samples():
    detector = CEBMOutlierDetector(**CHEAP_SETTINGS, outlier_score="typicality")
    with pytest.raises(ValueError, match="1 sample"):
        detector.fit(np.zeros((1, 3)))


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_cebmoutlierdetector_rejects_validation_fraction_outside_0_1(X, fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        CEBMOutlierDetector(**CHEAP_SETTINGS, validation_fraction=fraction).fit(X)


def test_cebmoutlierdetector_typicality_takes_height_width_as_one_channel(digits):
    X = digits[0]
    settings = dict(CHEAP_SETTINGS, max_iter=1, encoder="mlp", random_state=0)
    flat = CEBMOutlierDetector(**settings, image_shape=(8, 8)).fit(X)
    one_channel = CEBMOutlierDetector(**settings, image_shape=(1, 8, 8)).fit(X)
    np.testing.assert_array_equal(flat.score_samples(X), one_channel.score_samples(X))


def _training_must_not_start(*args, **kwargs):
    raise AssertionError("training started")


@pytest.mark.parametrize("image_shape", [(64,), (1, 1, 8, 8), (2, 2, 4, 4)])
def test_cebmoutlierdetector_typicality_rejects_images_without_height_and_width(
    digits, image_shape, monkeypatch
):
    X = digits[0]
    settings = dict(CHEAP_SETTINGS, max_iter=1, encoder="mlp", image_shape=image_shape)
    CEBMOutlierDetector(**settings, outlier_score="log_density", random_state=0).fit(X)
    detector = CEBMOutlierDetector(**settings, outlier_score="typicality", random_state=0)
    match = (
        r"outlier_score='typicality' needs image_shape=\(height, width\) or "
        rf"\(channels, height, width\).*got image_shape={re.escape(str(image_shape))}"
    )
    # Refused before training, not after it, where the score first needs the shape.
    monkeypatch.setattr(BaseNeuralEstimator, "_fit", _training_must_not_start)
    with pytest.raises(ValueError, match=match):
        detector.fit(X)
