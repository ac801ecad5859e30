"""The main job, ``python -m sklearn_cebm``, in its quick setting (a few updates per model)."""

import subprocess
import sys

import numpy as np

from sklearn_cebm.__main__ import main

from .conftest import allow_empty_clusters

CLUSTERERS = {
    "GMMCEBMClusterer (quick)",
    "KMeans(n_init=10)",
    "SpectralClustering (kNN graph)",
}
DETECTORS = {
    "CEBMOutlierDetector (quick)",
    "IsolationForest",
    "LocalOutlierFactor(novelty=True)",
}


@allow_empty_clusters
def test_main_prints_a_row_per_estimator_with_scores_and_seconds(capsys):
    tables = main(["--quick"])
    printed = capsys.readouterr().out
    assert set(tables["clustering"]) == CLUSTERERS
    assert set(tables["novelty"]) == DETECTORS
    for table, n_scores in ((tables["clustering"], 2), (tables["novelty"], 2)):
        for name, (*scores, seconds) in table.items():
            assert len(scores) == n_scores
            assert all(-1 <= score <= 1 for score in scores), name
            assert seconds > 0
            assert f"{name} " in printed
            assert " ".join(f"{score:.3f}" for score in scores) in " ".join(printed.split())


@allow_empty_clusters
def test_main_repeats_its_scores_for_a_seed(capsys):
    first, second = main(["--quick", "--seed", "1"]), main(["--quick", "--seed", "1"])
    for table in ("clustering", "novelty"):
        for name, values in first[table].items():
            np.testing.assert_array_equal(values[:-1], second[table][name][:-1], err_msg=name)


def test_main_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_cebm", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "GMMCEBMClusterer" in result.stdout
    assert "--quick" in result.stdout
