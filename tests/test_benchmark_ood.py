"""Smoke tests of benchmarks/ood.py (issue 16): its outlier sets and its report, on tiny
saved models."""

import importlib.util
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from sklearn_cebm import CEBMEncoder

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import _common as common  # noqa: E402


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ood", BENCHMARKS / "ood.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ood_outlier_sets_hold_the_footwear_out_for_the_footwear_free_model(bench):
    rng = np.random.default_rng(0)
    X_test, y_test = rng.uniform(0, 255, (60, 784)), np.arange(60) % 10
    X_in, sets = bench.outliers_for("CEBM-no-footwear", X_test, y_test, 10, seed=0)
    assert X_in.shape == (10, 784)
    assert set(sets) == {*bench.OUTLIER_SETS, "negative", "held-out classes"}
    footwear = X_test[np.isin(y_test, bench.FOOTWEAR)]
    np.testing.assert_array_equal(sets["held-out classes"], footwear[:10])
    np.testing.assert_array_equal(sets["negative"], 255.0 - X_in)
    _, sets = bench.outliers_for("CEBM", X_test, y_test, 10, seed=0)
    assert "held-out classes" not in sets


@pytest.mark.slow
def test_ood_main_scores_every_model_by_every_score(bench, tmp_path):
    if not common.fashion_mnist_available():
        pytest.skip("reads Fashion-MNIST: apt-get install dataset-fashion-mnist")
    inliers = np.random.default_rng(0).uniform(0, 255, (40, 784))
    model = CEBMEncoder(n_components=2, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    joblib.dump((model.fit(inliers), "tiny"), tmp_path / "CEBM.joblib")
    joblib.dump((model, "tiny"), tmp_path / "CEBM-no-footwear.joblib")
    output = tmp_path / "ood.md"
    argv = ["--models", "CEBM", "CEBM-no-footwear", "--load-models", str(tmp_path)]
    lines = bench.main(
        [*argv, "--n-images", "20", "--reference-images", "100", "--output", str(output)]
    )
    rows = [line.split(" | ") for line in lines[2:]]
    assert [(row[0], row[1]) for row in rows] == [
        (f"| {name}", score) for name in ("CEBM", "CEBM-no-footwear") for score in bench.SCORES
    ]
    # Every cell an AUROC, the held-out classes only for the footwear-free model.
    assert all(row[-1] == " |" for row in rows[:3])
    assert all(0 <= float(cell) <= 1 for row in rows for cell in row[2:7])
    assert "- command:" in output.read_text()
