"""Smoke and known-answer tests of benchmarks/tabular_outliers.py (issue 19)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "tabular_outliers", BENCHMARKS / "tabular_outliers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tabular_outliers_class_tasks_split_each_normal_class_in_halves(bench):
    tasks = {name: task for name, *task in bench.class_tasks(seed=0)}
    # digits 10, wine 3, iris 3, breast cancer 2 classes
    assert len(tasks) == 18
    X_train, X_in, X_out, log_density = tasks["iris:0"]
    assert len(X_train) == 25 and len(X_in) == 25 and len(X_out) == 100
    assert log_density is None
    again = {name: task for name, *task in bench.class_tasks(seed=0)}
    np.testing.assert_array_equal(again["iris:0"][0], X_train)


def test_tabular_outliers_oracle_knows_the_synthetic_answers(bench):
    tasks = {task[0]: task for task in bench.synthetic_tasks(seed=0, n=200)}
    results = bench.run_task(tasks["gauss10-uniform"], {}, seed=0)
    assert results["oracle"][0] > 0.99
    # The true density of the ring ranks its centre below it.
    results = bench.run_task(tasks["ring-centre"], {}, seed=0)
    assert results["oracle"][0] > 0.95


def test_tabular_outliers_main_writes_the_report_and_json(bench, tmp_path):
    output = tmp_path / "report.md"
    argv = ["--tasks", "iris:0", "wine:2", "--set", "max_iter=2", "--output", str(output)]
    per_task, summary = bench.main(argv)
    assert set(per_task) == {"iris:0", "wine:2"}
    report = output.read_text()
    assert "CEBMOutlierDetector" in report and "machine:" in report and "max_iter" in report
    saved = json.loads(output.with_suffix(".json").read_text())
    assert saved["cebm_params"] == {"max_iter": 2}
    for detector in (*bench.CLASSIC, "CEBMOutlierDetector"):
        assert 0.0 <= summary[detector]["mean_auroc"] <= 1.0
    best = summary["best classic"]["mean_auroc"]
    assert best == pytest.approx(
        np.mean([max(per_task[t][d][0] for d in bench.CLASSIC) for t in per_task])
    )


def test_tabular_outliers_heldout_suite_has_its_own_tables(bench, tmp_path):
    tasks = {name: task for name, *task in bench.heldout_tasks(seed=0)}
    assert len(tasks) == 9
    assert not set(tasks) & {task[0] for task in bench.class_tasks(0) + bench.synthetic_tasks(0)}
    X_train, X_in, X_out, _ = tasks["blobs8-uniform"]
    assert X_train.shape == (400, 8) and X_in.shape == (400, 8) and X_out.shape == (160, 8)
    output = tmp_path / "heldout.md"
    argv = ["--suite", "heldout", "--tasks", "circles", "--set", "max_iter=1"]
    per_task, _ = bench.main([*argv, "--output", str(output)])
    assert set(per_task) == {"circles-outer-inner"}
    assert "suite: heldout" in output.read_text()
