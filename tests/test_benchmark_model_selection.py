"""Smoke and known-answer tests of benchmarks/model_selection.py (issue 18)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sklearn_cebm import CEBMEncoder

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "model_selection", BENCHMARKS / "model_selection.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gaussian_model(bench, mean, std):
    statistics = bench.GaussianMarginalStatistics(mean, std)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.5], [0.5, 0.0]])
    model = CEBMEncoder(
        n_components=2, encoder=statistics, max_iter=1, batch_size=4, random_state=0
    ).fit(3.0 * corners + 2.0)
    return model, statistics


def test_model_selection_gaussian_marginal_has_its_closed_form_log_partition(bench):
    mean, std = np.array([0.2, -0.1]), np.array([0.3, 0.5])
    model, statistics = _gaussian_model(bench, mean, std)
    model.estimate_log_partition(n_chains=200, n_temperatures=300)
    truth = statistics.log_partition() + 2 * np.log(3.0)
    assert abs(model.log_partition_ - truth) < 3 * model.log_partition_std_ + 0.02


def test_model_selection_denoising_score_matching_is_that_of_the_known_score(bench):
    # The model's score in X's units is -(x - m) / s**2 with m = 3 mean + 2, s = 3 std.
    mean, std = np.array([0.2, -0.1]), np.array([0.3, 0.5])
    model, _ = _gaussian_model(bench, mean, std)
    X = 3.0 * np.random.default_rng(1).uniform(-0.3, 0.3, (40, 2)) + 2.0
    sigma = 0.1 * model.input_scale_
    noisy = X + sigma * np.random.default_rng(0).standard_normal(X.shape)  # seed 0, as inside
    assert np.all(np.abs(noisy - 2.0) < 3.0)  # no clipping at this noise
    score = -(noisy - (3.0 * mean + 2.0)) / (3.0 * std) ** 2
    target = (X - noisy) / sigma**2
    expected = -np.mean(np.sum(score**2, axis=1) - 2 * np.sum(score * target, axis=1))
    assert bench.denoising_score_matching(model, X, seed=0) == pytest.approx(expected, rel=1e-2)


@pytest.mark.slow
def test_model_selection_quick_mode_writes_every_part(bench, tmp_path):
    output = tmp_path / "model_selection.md"
    rows = bench.main(["--quick", "--output", str(output)])
    assert len(rows) == 3
    text = output.read_text()
    for heading in ("## 2. Ranking", "Spearman's rho", "## 3. GridSearchCV", "Picked:"):
        assert heading in text
    data = json.loads(output.with_suffix(".json").read_text())
    assert len(data["grid_search"]["mean_test_score"]) == 3
    assert all(np.isfinite(row["score"]) for row in data["ranking"])


def test_model_selection_quick_criteria_write_every_criterion(bench, tmp_path):
    output = tmp_path / "criteria.md"
    arguments = ["--clusterer", "--criteria", "--quick", "--no-score", "--seeds", "0"]
    runs = bench.main([*arguments, "--n-clusters", "2", "3", "--output", str(output)])
    assert [row["n_clusters"] for row in runs[0]] == [2, 3]
    text = output.read_text()
    for name, _ in bench.CRITERIA.values():
        if name != "held-out log-likelihood (score)":
            assert name in text
    data = json.loads(output.with_suffix(".json").read_text())
    assert all(-1 <= row["stability"] <= 1 for row in data["runs"]["0"])
