"""Smoke tests of the scripts in benchmarks/: their quick modes, made smaller still."""

import importlib.util
import json
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest

from sklearn_cebm import CEBMEncoder, SamplerWarning
from sklearn_cebm.datasets import load_fashion_mnist

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_tables.py"


def _fashion_mnist_available():
    try:
        load_fashion_mnist(subset="test")
    except (OSError, ValueError):
        return False
    return True


def _load_script(name):
    """Import ``benchmarks/<name>.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def paper_tables():
    return _load_script("paper_tables")


def test_paper_tables_quick_mode_writes_every_table(paper_tables, tmp_path):
    pytest.importorskip("matplotlib")
    data = "fashion-mnist" if _fashion_mnist_available() else "synthetic"
    tiny = "--budget 0.5 --n-train 200 --n-test 100 --n-ood 40 --n-kl 100 --n-draws 1 "
    tiny += "--n-full 200 --n-components 4 --sample-steps 2 --n-images 4 --rbm-iter 1 "
    tiny += "--batch-size 16 --sgld-steps 2"
    argv = ["--quick", *tiny.split(), "--data", data, "--output", str(tmp_path)]
    with warnings.catch_warnings():  # plumbing only, as below
        warnings.simplefilter("ignore", SamplerWarning)
        results = paper_tables.main(argv)

    assert set(results) == {"pixels", "PCA", "RBM", "CEBM", "GMM-CEBM", "IGEBM", "VAE"}
    assert set(results["CEBM"]["ood"]) == {"log_density", "gradient_norm"}
    assert results["VAE"]["kl_mi"] is not None and results["IGEBM"]["kl_mi"] is None
    markdown = (tmp_path / "results.md").read_text()
    for heading in ("Table 1", "Table 2", "Table 3", "Nearest-neighbour", "wall-clock"):
        assert heading in markdown
    assert "52 / 70 / 77 / 83" in markdown  # the paper's CEBM row stands beside ours
    for name in ("cebm", "gmm-cebm", "igebm", "vae", "rbm"):
        assert (tmp_path / f"samples_{name}.png").stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["training"]["VAE"]["iterations"] > 0


def test_time_to_accuracy_quick_mode_scores_every_checkpoint(tmp_path):
    module = _load_script("time_to_accuracy")
    models = tmp_path / "models"
    argv = ["--quick", "--pixels", "--settings", "defaults", "dsm-0.1", "--output", str(tmp_path)]
    argv += ["--save-models", str(models)]
    # The quick runs train for seconds on a synthetic stand-in; how far their energy gap
    # drifts depends on the machine's speed, and this test checks the plumbing only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        results = module.main(argv)

    assert set(results) == {"pixels", "defaults", "dsm-0.1"}
    for name in ("defaults", "dsm-0.1"):
        rows = results[name]["rows"]
        assert [row["checkpoint"] for row in rows] == [1.0, 3.0]
        # Timing decides how many updates fit in; the clock only guarantees the order.
        assert rows[1]["iterations"] >= rows[0]["iterations"] > 0
        assert rows[1]["training_seconds"] >= 3.0 and rows[0]["training_seconds"] >= 1.0
        assert len(rows[0]["plain"]) == len(rows[0]["standardized"]) == 3
        assert all(isinstance(row["sampler_warnings"], list) for row in rows)
        restored = joblib.load(models / f"{name}-3s.joblib")
        assert restored.transform(np.zeros((2, 784))).shape == (2, 8)
    assert results["dsm-0.1"]["rows"][0]["energy_gap"] is None
    assert "| defaults |" in (tmp_path / "results.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["results"].keys() == results.keys()


def test_throughput_reports_every_quantity(tmp_path):
    module = _load_script("throughput")
    output = tmp_path / "throughput.json"
    argv = ["--iterations", "2", "--batch-size", "4", "--sgld-steps", "1", "--device", "cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        results = module.main([*argv, "--output", str(output)])

    assert json.loads(output.read_text()) == results
    for key in (
        "seconds_per_iteration_median",
        "sgld_steps_per_second",
        "transform_rows_per_second",
        "score_samples_rows_per_second",
        "peak_memory_mib",
    ):
        assert results[key] > 0, key
    assert results["device"] == "cpu" and results["sgld_steps"] == 1


def test_ood_saved_models_scores_every_set(tmp_path):
    module = _load_script("ood_saved_models")
    inliers = np.random.default_rng(0).uniform(0, 255, (5, 784))
    sets = module.outlier_sets(inliers, np.random.default_rng(1))
    assert all(X.shape == inliers.shape for X in sets.values())
    assert np.ptp(sets["constant"], axis=1).max() == 0
    flipped_back = sets["flipped"].reshape(5, 28, 28)[:, ::-1]
    np.testing.assert_array_equal(flipped_back, inliers.reshape(5, 28, 28))
    if not _fashion_mnist_available():
        pytest.skip("the rest reads Fashion-MNIST")

    model = CEBMEncoder(n_components=2, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    path = tmp_path / "tiny.joblib"
    joblib.dump(model.fit(inliers), path)
    output = tmp_path / "ood.md"
    lines = module.main([str(path), "--n-images", "20", "--output", str(output)])
    assert lines[0] == "| model | uniform noise | constant | flipped |"
    assert lines[-1].startswith("| tiny | ") and output.read_text().count("\n") == 3


def test_chain_init_digits_reports_both_starts_for_every_estimator(tmp_path):
    module = _load_script("chain_init_digits")
    output = tmp_path / "chain_init.md"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        lines = module.main(["--max-iter", "1", "--output", str(output)])

    rows = [line.split(" | ") for line in lines[2:]]
    assert [(row[0], row[1]) for row in rows] == [
        (f"| {name}", start) for name in module.ESTIMATORS for start in ("uniform", "gaussian")
    ]
    assert rows[-1][3] == "-"  # the outlier detector has no codes to score
    assert output.read_text() == "\n".join(lines) + "\n"
