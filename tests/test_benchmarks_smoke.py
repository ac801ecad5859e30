"""Smoke tests of the scripts in benchmarks/ (their quick modes, made smaller still) and
of what they share, benchmarks/_common.py."""

import importlib
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KernelDensity

from sklearn_cebm import CEBMEncoder, GMMCEBMClusterer, GMMVAEClusterer, SamplerWarning

from .conftest import CHEAP_SETTINGS, allow_empty_clusters

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# The scripts import their shared code as ``_common``, found first on sys.path when they
# run as ``python benchmarks/<name>.py``; here it has to be put there.
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
common = importlib.import_module("_common")


def _load_script(name):
    """Import ``benchmarks/<name>.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------- _common
@pytest.mark.parametrize(
    "shape, value_range", [((5, 784), common.PIXEL_RANGE), ((4, 64), common.DIGITS_RANGE)]
)
def test_common_outlier_sets_are_shaped_like_the_inliers_and_in_range(shape, value_range):
    inliers = np.random.default_rng(0).uniform(*value_range, shape)
    sets = common.outlier_sets(inliers, np.random.default_rng(1), value_range=value_range)
    assert list(sets) == list(common.OUTLIER_BUILDERS)
    low, high = value_range
    for name, outliers in sets.items():
        assert outliers.shape == shape, name
        assert low <= outliers.min() and outliers.max() <= high, name
    assert np.ptp(sets["constant"], axis=1).max() == 0
    side = round(np.sqrt(shape[1]))
    flipped_back = sets["flipped"].reshape(-1, side, side)[:, ::-1]
    np.testing.assert_array_equal(flipped_back, inliers.reshape(-1, side, side))
    again = common.outlier_sets(inliers, np.random.default_rng(1), value_range=value_range)
    for name in sets:
        np.testing.assert_array_equal(sets[name], again[name])


def test_common_outlier_sets_reject_rows_that_are_not_square_images():
    with pytest.raises(ValueError, match="not square"):
        common.outlier_sets(np.zeros((2, 10)), np.random.default_rng(0), ("flipped",))


def test_common_synthetic_images_stand_in_for_fashion_mnist():
    X_train, y_train, X_test, y_test = common.load_images(
        "synthetic", 30, 10, np.random.default_rng(0)
    )
    assert X_train.shape == (30, 784) and X_test.shape == (10, 784)
    assert set(np.unique(np.r_[y_train, y_test])) <= set(range(10))
    assert 0 <= X_train.min() and X_train.max() <= 255


def test_common_training_clock_stops_at_its_target_and_times_every_batch():
    X = np.random.default_rng(0).normal(size=(2 * CHEAP_SETTINGS["batch_size"], 3))
    callbacks = [("clock", common.TrainingClock(0.0))]
    encoder = CEBMEncoder(**CHEAP_SETTINGS, callbacks=callbacks, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        encoder.fit(X)
        clock = dict(encoder.net_.callbacks_)["clock"]
        assert common.training_iterations(encoder) == len(clock.batch_seconds_) == 1
        first = clock.spent_
        clock.target = None  # one whole epoch of two batches more
        encoder.partial_fit(X)
    assert common.training_iterations(encoder) == len(clock.batch_seconds_) == 3
    assert clock.spent_ > first > 0 and min(clock.batch_seconds_) > 0


def test_common_machine_header_names_the_cpu_threads_and_versions():
    torch.set_num_threads(3)  # not the 1 of tests/conftest.py, which restores its own after
    info = common.machine_info()
    assert set(info["cpu_flags"]) <= set(common.CPU_FLAGS)
    assert info["torch_threads"] == 3 and info["python"].count(".") == 2
    header = common.machine_header("cpu")
    assert header[0].startswith("- machine: ") and header[0].endswith("device cpu")
    assert ", 3 torch threads, " in header[0]
    assert header[1].startswith(f"- torch {info['torch']}, scikit-learn ")


# ----------------------------------------------------------------- the scripts
@pytest.fixture(scope="module")
def paper_tables():
    return _load_script("paper_tables")


@pytest.mark.slow
def test_paper_tables_quick_mode_writes_every_table(paper_tables, tmp_path):
    pytest.importorskip("matplotlib")
    data = "fashion-mnist" if common.fashion_mnist_available() else "synthetic"
    tiny = "--budget 0.5 --n-train 200 --n-test 100 --n-ood 40 --n-kl 100 --n-draws 1 "
    tiny += "--n-full 200 --n-components 4 --sample-steps 2 --n-images 4 --rbm-iter 1 "
    tiny += "--batch-size 16 --sgld-steps 2 --n-quality 40"
    argv = ["--quick", *tiny.split(), "--data", data, "--output", str(tmp_path)]
    results = paper_tables.main(argv)  # the script records its models' warnings

    expected = {"pixels", "PCA", "RBM", "CEBM", "GMM-CEBM", "IGEBM", "VAE", "GMM-VAE", "BIGAN"}
    assert set(results) == expected
    assert set(results["CEBM"]["ood"]) == {"log_density", "gradient_norm"}
    for name in ("CEBM", "GMM-CEBM", "VAE", "GMM-VAE", "BIGAN"):
        assert results[name]["kl_mi"] is not None, name
    assert results["IGEBM"]["kl_mi"] is None
    for name in ("CEBM", "GMM-CEBM", "IGEBM", "VAE", "GMM-VAE", "BIGAN", "RBM"):
        quality = results[name]["samples"]
        assert 0 <= quality["coverage"] <= 1 and 0 < quality["mean_confidence"] <= 1, name
        assert (tmp_path / f"samples_{name.lower()}.png").stat().st_size > 0
    assert results["PCA"]["samples"] is None
    markdown = (tmp_path / "results.md").read_text()
    for heading in ("Table 1", "Table 2", "Table 3", "Nearest-neighbour", "wall-clock"):
        assert heading in markdown
    assert "real test images" in markdown and "class coverage" in markdown
    assert "52 / 70 / 77 / 83" in markdown  # the paper's CEBM row stands beside ours
    assert "not run" not in markdown

    # A second call retrains one model and keeps the others' rows, each under its call.
    again = paper_tables.main([*argv, "--models", "pixels", "--keep-previous"])
    assert set(again) == {"pixels"}
    payload = json.loads((tmp_path / "results.json").read_text())
    assert list(payload["training"]) == list(results)  # every model, in the same order
    assert len(payload["headers"]) == 2
    markdown = (tmp_path / "results.md").read_text()
    assert "call 1 of 2" in markdown and "call 2 of 2, trained pixels" in markdown
    with pytest.raises(ValueError, match=r"--keep-previous: .* budget=0.5 \(now 1.0\)"):
        paper_tables.main([*argv, "--budget", "1", "--models", "pixels", "--keep-previous"])
    assert json.loads((tmp_path / "results.json").read_text())["training"]["VAE"]["iterations"] > 0


@pytest.mark.slow
def test_time_to_accuracy_quick_mode_scores_every_checkpoint(tmp_path):
    module = _load_script("time_to_accuracy")
    models = tmp_path / "models"
    argv = ["--quick", "--pixels", "--settings", "defaults", "dsm-0.1", "--output", str(tmp_path)]
    argv += ["--save-models", str(models), "--score-training-weights"]
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
    # The defaults average their weights: training's own are scored beside the average.
    assert all(len(row["training_weights"]) == 3 for row in results["defaults"]["rows"])
    markdown = (tmp_path / "results.md").read_text()
    assert "| defaults |" in markdown and "| defaults, training's weights |" in markdown
    assert json.loads((tmp_path / "results.json").read_text())["results"].keys() == results.keys()


def test_throughput_reports_every_quantity(tmp_path):
    module = _load_script("throughput")
    output = tmp_path / "throughput.json"
    argv = ["--iterations", "2", "--batch-size", "4", "--sgld-steps", "1", "--device", "cpu"]
    argv += ["--precision", "float32", "bfloat16", "--matrix-size", "64"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        results = module.main([*argv, "--output", str(output)])

    assert json.loads(output.read_text()) == results
    assert results["peak_memory_mib"] > 0
    assert results["device"] == "cpu" and results["sgld_steps"] == 1
    for precision in ("float32", "bfloat16"):
        measured = results[precision]
        assert measured["precision_"] == precision
        for key in (
            "seconds_per_iteration_median",
            "sgld_steps_per_second",
            "iteration_gflop",
            "matrix_product_gflop_per_second",
            "seconds_per_iteration_limit",
            "transform_rows_per_second",
            "score_samples_rows_per_second",
        ):
            assert measured[key] > 0, (precision, key)
    # The operations counted are the same whatever dtype they run in.
    assert results["float32"]["iteration_gflop"] == results["bfloat16"]["iteration_gflop"]


@pytest.mark.slow
def test_ood_saved_models_scores_every_set(tmp_path):
    module = _load_script("ood_saved_models")
    if not common.fashion_mnist_available():
        pytest.skip("reads Fashion-MNIST: apt-get install dataset-fashion-mnist")
    inliers = np.random.default_rng(0).uniform(0, 255, (5, 784))
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


# Small enough that each neural method fits 120 rows in about a second; each estimator
# takes the names among its parameters.
TINY_CLUSTERING = dict(
    max_iter=1,
    hidden_layer_sizes=(16,),
    n_components=4,
    batch_size=32,
    sgld_steps=3,
    buffer_size=64,
    clustering_updates=5,
    n_init=1,
    warmup_iter=1,
)


def _tiny_settings(estimator, prefix=""):
    names = estimator().get_params()
    return {prefix + name: value for name, value in TINY_CLUSTERING.items() if name in names}


@allow_empty_clusters
def test_clustering_scores_every_method_on_training_and_test_rows(tmp_path):
    module = _load_script("clustering")
    settings = {
        "KMeans (pixels)": {"n_init": 1},
        "KMeans (CEBMEncoder codes)": {
            "kmeans__n_init": 1,
            **_tiny_settings(CEBMEncoder, prefix="encoder__"),
        },
        "GMMCEBMClusterer": _tiny_settings(GMMCEBMClusterer),
        "GMMVAEClusterer": _tiny_settings(GMMVAEClusterer),
    }
    output, rows_path = tmp_path / "clustering.md", tmp_path / "clustering.json"
    argv = "--data synthetic --n-train 120 --n-test 60 --seeds 0 --set max_iter=2".split()
    argv += ["--output", str(output), "--results", str(rows_path)]
    with warnings.catch_warnings():  # plumbing only, as above
        warnings.simplefilter("ignore", SamplerWarning)
        rows = module.main(argv, settings=settings)

    markdown = output.read_text()
    assert markdown.count("\n## synthetic, ") == 2  # the training and the test rows
    for method in module.METHOD_NAMES:
        assert markdown.count(f"\n| {method} | ") == 2, method
    gmm_cebm_settings = next(
        line for line in markdown.splitlines() if "- GMMCEBMClusterer: " in line
    )
    assert "max_iter=2" in gmm_cebm_settings  # --set wins over the settings passed to main
    (run,) = json.loads(rows_path.read_text())["runs"]
    assert run["rows"] == rows and len(rows) == 2 * len(module.METHOD_NAMES)
    assert {(row["method"], row["scored_on"]) for row in rows} == {
        (method, split) for method in module.METHOD_NAMES for split in ("train", "test")
    }
    for row in rows:
        assert np.isfinite(row["nmi"]) and 0 <= row["nmi"] <= 1, row
        assert 0 <= row["accuracy"] <= 1 and 1 <= row["clusters_used"] <= 10, row
    agreement = {row["method"]: row["neighbour_agreement"] for row in rows}
    assert agreement["GMMCEBMClusterer"] is not None and agreement["KMeans (pixels)"] is None


def _clustering_row(data, method, seed, nmi):
    return dict(
        data=data,
        method=method,
        seed=seed,
        nmi=nmi,
        scored_on="all",
        n_train=9,
        n_test=0,
        fit_seconds=1.0,
        neighbour_agreement=None,
        ari=0.0,
        accuracy=0.5,
        clusters_used=3,
    )


def test_clustering_results_replace_the_rows_a_run_measures_again(tmp_path):
    module = _load_script("clustering")
    results = tmp_path / "clustering.json"
    first = [_clustering_row("digits", "KMeans (pixels)", seed, 0.5) for seed in (0, 1)]
    module.add_run(results, first, "first", {}, {})
    again = [_clustering_row("digits", "KMeans (pixels)", 1, 0.7)]
    module.add_run(results, again, "second", {}, {})
    # The same seed with other settings is another measurement: kept beside.
    module.add_run(results, again, "third", {"KMeans (pixels)": {"n_init": 1}}, {})
    runs = json.loads(results.read_text())["runs"]
    assert [run["command"] for run in runs] == ["first", "second", "third"]
    assert [row["seed"] for row in runs[0]["rows"]] == [0]
    assert runs[1]["rows"] == again and "date" in runs[1] and "cpu" in runs[1]["machine"]
    module.add_run(results, first[:1], "fourth", {}, {})
    assert [run["command"] for run in json.loads(results.read_text())["runs"]] == [
        "second",
        "third",
        "fourth",
    ]


def test_clustering_summary_renders_the_results_json(tmp_path):
    module = _load_script("clustering")
    summary = _load_script("clustering_summary")
    results, output = tmp_path / "clustering.json", tmp_path / "clustering.md"
    rows = [
        _clustering_row("digits", method, seed, nmi)
        for method, nmi in [("GMMCEBMClusterer", 0.9), ("KMeans (pixels)", 0.7)]
        for seed in (0, 1)
    ]
    module.add_run(results, rows, "defaults", {}, {})
    module.add_run(results, rows[:1], "changed", {"GMMCEBMClusterer": {"n_init": 1}}, {})
    summary.main(["--results", str(results), "--output", str(output), "--note", "a note"])
    markdown = output.read_text()
    assert "a note" in markdown and json.loads(results.read_text())["note"] == "a note"
    assert "| digits | 9 / 9 | 0.900 (spread 0.000, worst 0.900), 2 seeds | - | " in markdown
    assert "Run 2 (GMMCEBMClusterer: {'n_init': 1}):" in markdown
    assert markdown.count("### Run ") == 2 and "`changed`" in markdown


def test_clustering_matched_accuracy_matches_clusters_to_classes_one_to_one():
    module = _load_script("clustering")
    y = np.array([0, 0, 1, 1, 2, 2])
    assert module.matched_accuracy(y, np.array([5, 5, 3, 3, 4, 4])) == 1.0
    # Three clusters over two classes: the third cluster's row cannot be matched.
    assert module.matched_accuracy(y[:4], np.array([1, 1, 0, 2])) == 0.75


@allow_empty_clusters  # plumbing only: 60 samples, 4 updates
def test_clustering_few_label_writes_both_rows(tmp_path):
    script = _load_script("clustering_few_label")
    output = tmp_path / "few_label.md"
    argv = ["--n-train", "60", "--n-test", "30", "--n-draws", "1", "--output", str(output)]
    argv += ["--clustering-updates", "4", "--budgets", "1", "2", "all"]
    for name, value in {**CHEAP_SETTINGS, "n_components": 4, "max_iter": 1}.items():
        argv += ["--set", f"{name}={value!r}"]
    rows = script.main(argv)
    assert set(rows) == {"GMMCEBMClusterer", "CEBMEncoder"}
    for accuracy in rows.values():
        assert set(accuracy) == {1, 2, None}
        assert all(0.0 <= mean <= 1.0 for mean, _ in accuracy.values())
    table = {line.split(" | ")[0]: line.split(" | ") for line in output.read_text().splitlines()}
    # The clusterer's row ends with its clusters' test NMI, then the seconds.
    assert 0.0 <= float(table["| GMMCEBMClusterer"][-2]) <= 1.0
    assert table["| CEBMEncoder"][-2] == "-"
    only = script.main([*argv, "--estimators", "CEBMEncoder"])
    assert set(only) == {"CEBMEncoder"} and "| GMMCEBMClusterer |" not in output.read_text()
    # A parameter of the clusterer alone, for the clusterer alone.
    argv += ["--set", "clustering_learning_rate=1e-4", "--estimators", "GMMCEBMClusterer"]
    assert set(script.main(argv)) == {"GMMCEBMClusterer"}


def test_spectral_partition_reports_every_setting_and_seed(tmp_path):
    script = _load_script("spectral_partition")
    output = tmp_path / "partition.md"
    argv = ["--data", "digits", "--n-neighbors", "5", "10", "--seeds", "0", "1"]
    argv += ["--search-components", "50", "0", "--affinity", "shared", "connectivity"]
    results = script.main([*argv, "--output", str(output)])
    settings = [(r["search_components"], r["n_neighbors"], r["affinity"]) for r in results]
    assert len(results) == 16 and len(set(settings)) == 8
    assert [r["seed"] for r in results] == [0, 1] * 8
    # The digits' graph is good: its partition is far above chance.
    assert all(r["nmi"] > 0.7 and 0.9 < r["neighbours_of_the_class"] <= 1 for r in results)
    text = output.read_text()
    assert "| digits | 50 | 10 | shared |" in text and "| digits | all | 5 | connectivity |" in text
    saved = json.loads(output.with_suffix(".json").read_text())["results"]
    assert saved == results


def test_neighbour_purity_scores_the_neighbours_and_their_partition(blobs):
    # Three separated blobs: every neighbour shares its row's blob, and the graph's
    # spectral clustering finds them; shuffled labels share a neighbour's by chance.
    script = _load_script("neighbour_purity")
    X, y = blobs
    purity, nmi = script._purity_and_partition(X, y, 3, seed=0)
    assert purity == 1.0 and nmi > 0.99
    shuffled = np.random.default_rng(0).permutation(y)
    purity, nmi = script._purity_and_partition(X, shuffled, 3, seed=0)
    assert purity < 0.5 and nmi < 0.05


@pytest.mark.slow
def test_scaling_stream_trains_three_ways_from_the_file(tmp_path):
    pytest.importorskip("dask.array")
    script = _load_script("scaling")
    output = tmp_path / "stream.md"
    argv = ["stream", "--n-train", "300", "--epochs", "1", "--chunk-rows", "100"]
    with warnings.catch_warnings():  # plumbing only: one short epoch
        warnings.simplefilter("ignore", SamplerWarning)
        script.main([*argv, "--repeats", "1", "--output", str(output)])
    runs = json.loads(output.with_suffix(".json").read_text())["runs"]
    assert [run["how"] for run in runs] == ["fit in memory", "memmap stream", "dask array stream"]
    # The two streams read the same chunks in the same order: the same model.
    assert runs[1]["accuracy_all_labels"] == runs[2]["accuracy_all_labels"]
    assert all(run["seconds"] > 0 and 0 <= run["auroc_vs_noise"] <= 1 for run in runs)


def test_clustering_sets_hold_aligned_rows_and_the_handwritten_test_writers_are_new():
    sets = _load_script("_clustering_sets")
    X_train, y_train, X_test, y_test = sets._handwritten_digits(300, 100)
    assert X_train.shape == (300, 784) and X_test.shape == (100, 784)
    assert y_train.shape == (300,) and y_test.shape == (100,)
    assert X_train.min() >= 0 and X_train.max() <= 255
    # Each image is a warp of its label's digit: a nearest-centroid guess from the
    # training images beats chance by far on the other writers' test images.
    centroids = np.stack([X_train[y_train == label].mean(axis=0) for label in range(10)])
    guesses = np.argmin(((X_test[:, None, :] - centroids) ** 2).sum(axis=-1), axis=1)
    assert np.mean(guesses == y_test) > 0.3  # chance: 0.1
    X_digits, y_digits, none, _ = sets.load_clustering_set("digits-0-4")
    assert none is None and set(np.unique(y_digits)) == {0, 1, 2, 3, 4}
    assert len(X_digits) == len(y_digits)


def test_clustering_spectral_baseline_carries_its_labels_to_new_rows():
    module = _load_script("clustering")
    X, y = make_blobs(n_samples=200, centers=3, n_features=60, random_state=0)
    baseline = module.SpectralBaseline(n_clusters=3, random_state=0)
    labels = baseline.fit_predict(X[:150])
    assert adjusted_rand_score(y[:150], labels) == 1.0
    assert adjusted_rand_score(y[150:], baseline.predict(X[150:])) == 1.0


@pytest.fixture(scope="module")
def likelihood_baselines():
    return _load_script("likelihood_baselines")


def test_likelihood_baselines_quick_mode_scores_every_method(likelihood_baselines, tmp_path):
    output = tmp_path / "likelihood.md"
    with warnings.catch_warnings():  # plumbing only: one epoch of tiny models
        warnings.simplefilter("ignore", SamplerWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = likelihood_baselines.main(["--quick", "--output", str(output)])

    assert list(results) == ["digits"]  # --quick never reads Fashion-MNIST
    digits = results["digits"]
    assert set(digits["models"]) == set(likelihood_baselines.MODELS["digits"])
    baselines = digits["baselines"]
    for name in ("GaussianMixture", "KernelDensity"):
        chosen, search = baselines[name]["chosen"], baselines[name]["search"]
        assert chosen["validation"] == max(result["validation"] for result in search), name
        assert np.isfinite(baselines[name]["test"]), name
    assert len(baselines["GaussianMixture"]["search"]) == 5  # 2 x 2 diagonal, 1 full
    for name, row in digits["models"].items():
        assert np.isfinite(row["test"]) and np.isfinite(row["test_inside"]), name
        assert (row["standard_error"] is None) == ("VAE" in name), name
    markdown = output.read_text()
    assert "| uniform on the box | none |" in markdown and "| GMMVAEClusterer (ELBO" in markdown
    saved = json.loads(output.with_suffix(".json").read_text())
    assert (
        saved["results"]["digits"]["test_rows_outside_the_box"]
        == (digits["test_rows_outside_the_box"])
    )


def test_likelihood_baselines_uniform_box_is_the_energy_models_box(likelihood_baselines):
    # Widths 2, 4 and a constant feature, which the models' scaling gives the width 2.
    low, high = np.array([0.0, 1.0, 3.0]), np.array([2.0, 5.0, 3.0])
    expected = -(np.log(2.0) + np.log(4.0) + np.log(2.0))
    assert likelihood_baselines.uniform_box_log_density(low, high) == pytest.approx(expected)
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(low[:2], high[:2], (64, 2)), np.full(64, 3.0)]
    X[:2, :2] = [low[:2], high[:2]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        model = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    # The density AIS starts from: uniform on input_center_ +- input_scale_.
    box = -np.sum(np.log(2 * model.input_scale_))
    assert likelihood_baselines.uniform_box_log_density(X.min(axis=0), X.max(axis=0)) == (
        pytest.approx(box)
    )


def test_likelihood_baselines_kde_log_density_is_kernel_densitys(likelihood_baselines):
    # In 2-D no kernel underflows and scikit-learn's tree-based sum is exact.
    rng = np.random.default_rng(0)
    reference, rows = rng.normal(size=(300, 2)), rng.normal(size=(40, 2)) * 2
    squared = ((rows[:, None, :] - reference[None, :, :]) ** 2).sum(axis=-1)
    ours = likelihood_baselines.kde_log_density(squared, 0.3, 2)
    theirs = KernelDensity(bandwidth=0.3).fit(reference).score_samples(rows)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
