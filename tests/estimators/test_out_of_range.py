"""The rule for scores outside the training box (sklearn_cebm/_estimators/out_of_range.py)."""

import numpy as np
import pytest

from sklearn_cebm._estimators.out_of_range import (
    distance_outside_range,
    project_onto_range,
    score_outside_range,
)
from sklearn_cebm._estimators.scaling import fit_input_range, fit_unit_range

LOW, HIGH = np.array([0.0, -1.0, 3.0]), np.array([4.0, 1.0, 3.0])
SCALE = np.array([2.0, 1.0, 1.0])  # the last feature is constant: scale 1


def test_distance_is_zero_inside_and_counts_half_ranges_outside():
    X = np.array([[2.0, 0.0, 3.0], [0.0, 1.0, 3.0], [8.0, 0.0, 3.0], [2.0, -4.0, 3.0]])
    np.testing.assert_allclose(distance_outside_range(X, LOW, HIGH, SCALE), [0, 0, 2, 3])


def test_any_deviation_from_a_constant_feature_is_out_of_range():
    X = np.array([[2.0, 0.0, 3.001], [2.0, 0.0, 2.5]])
    np.testing.assert_allclose(distance_outside_range(X, LOW, HIGH, SCALE), [1e-3, 0.5])


def test_float32_rounding_of_the_ends_stays_in_range():
    low, high = np.array([0.1]), np.array([0.3])
    X = np.array([[0.1], [0.3]], dtype=np.float32)
    np.testing.assert_array_equal(distance_outside_range(X, low, high, np.array([0.1])), 0)


def test_distance_does_not_overflow_far_out():
    X = np.full((1, 3), 1e300)
    assert np.isfinite(distance_outside_range(X, LOW, HIGH, SCALE)[0])


def test_distance_is_the_same_across_blocks_of_rows():
    # More rows than one block holds, with rows outside the box in every block and in
    # none of some: each row's distance is its own Euclidean norm of half-range excesses.
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 5.0, size=(2500, 3)) * np.array([1.0, 0.5, 0.0]) + [0, 0, 3]
    X[1100:2100] = [2.0, 0.0, 3.0]
    excess = (np.maximum(LOW - X, 0) + np.maximum(X - HIGH, 0)) / SCALE
    expected = np.linalg.norm(excess, axis=1)
    distance = distance_outside_range(X, LOW, HIGH, SCALE)
    assert (distance[:1000] > 0).any() and (distance[1100:2100] == 0).all()
    np.testing.assert_allclose(distance, expected)


def test_projection_clips_each_feature():
    X = np.array([[-1.0, 5.0, 3.5]])
    np.testing.assert_array_equal(project_onto_range(X, LOW, HIGH), [[0.0, 1.0, 3.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outside_scores_lie_below_the_training_minimum_farther_lower(dtype):
    at_projection = np.array([5.0, 50.0, -10.0, 50.0, 50.0], dtype=dtype)
    distance = np.array([0.0, 0.5, 0.5, 2.0, 1e300])
    scores = score_outside_range(at_projection, distance, lowest_training_score=-1.0)
    assert scores.dtype == dtype
    assert scores[0] == 5.0  # inside: the model's own score
    np.testing.assert_allclose(scores[1:4], [-2.5, -11.5, -4.0])
    assert np.all(np.isfinite(scores))
    assert np.all(np.diff(scores[[1, 3, 4]]) < 0)


def test_fit_unit_range_maps_the_input_range_onto_the_unit_box():
    X = np.array([[0.0, 5.0], [4.0, 5.0], [2.0, 5.0]])
    low, high = fit_input_range(X, per_feature=True)
    center, scale = fit_unit_range(X, per_feature=True)
    np.testing.assert_array_equal(low, [0.0, 5.0])
    np.testing.assert_array_equal(high, [4.0, 5.0])
    np.testing.assert_array_equal(center, [2.0, 5.0])
    np.testing.assert_array_equal(scale, [2.0, 1.0])
