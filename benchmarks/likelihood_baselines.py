"""Held-out log-likelihood of the package's models beside baselines chosen on validation data.

Issue 39, goal 4. For scikit-learn's digits and Fashion-MNIST: a train / validation / test
split; each baseline's settings chosen by its mean log-likelihood on the validation rows
(never the test rows), fitted on the training rows only, and scored on the test rows:

- ``GaussianMixture``: a grid over ``covariance_type``, ``n_components`` and ``reg_covar``;
- a Gaussian ``KernelDensity`` on the training rows: a grid over ``bandwidth``;
- the uniform density on the box the energy models' ``log Z`` integrates over
  (:func:`uniform_box_log_density`).

The package's models are fitted on the same training rows with their defaults and scored
on the test rows: the energy models by ``estimate_log_partition()`` (AIS at its defaults)
then ``score``, the VAEs by ``score``, their evidence lower bound. All scores are mean
log-densities per row in X's units (nats). Test rows outside the training rows' box are
counted: the energy models (and the uniform density) score them at their projection onto
the box; every score is also given on the test rows inside the box.

Run (34 minutes wall-clock on this project's 2-core Xeon, where the process had about
half of one core; the report's seconds are wall-clock too)::

    python benchmarks/likelihood_baselines.py --output benchmarks/results/likelihood_baselines.md

``--quick`` runs tiny grids and tiny models on the digits in seconds (the smoke test);
``--data digits digits-dequantized`` skips Fashion-MNIST. ``digits-dequantized`` is the
digits with uniform noise in ``[0, 1)`` added, on which no continuous density can gain
without bound from the integer pixels.
"""

import argparse
import json
import sys
import time

import numpy as np
import torch
from _common import (
    fashion_mnist_available,
    fashion_mnist_home,
    machine_header,
    machine_info,
    write_lines,
)
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.metrics import pairwise_distances
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KernelDensity

from sklearn_cebm import (
    CEBMEncoder,
    CEBMOutlierDetector,
    GMMCEBMClusterer,
    GMMVAEClusterer,
    IGEBMEncoder,
    VAEEncoder,
)
from sklearn_cebm.datasets import load_fashion_mnist

# Training, validation and test rows of Fashion-MNIST: the first two drawn from the
# official training images, the test rows all the official test images.
FASHION_MNIST_SIZES = (10_000, 5_000)

DIGITS_GRIDS = {
    "mixture": {
        "diag": dict(
            n_components=[1, 2, 5, 10, 20, 40, 80], reg_covar=[1e-4, 1e-3, 1e-2, 1e-1, 1, 10]
        ),
        "full": dict(n_components=[1, 2, 5, 10, 20, 40], reg_covar=[1e-4, 1e-3, 1e-2, 1e-1, 1, 10]),
    },
    "bandwidth": np.geomspace(0.25, 8, 11).round(3).tolist(),
}
GRIDS = {
    "digits": DIGITS_GRIDS,
    "digits-dequantized": DIGITS_GRIDS,
    # A full covariance over 784 pixels costs about 25 s per component and EM run on
    # 10,000 rows: one and two components only.
    "fashion-mnist": {
        "mixture": {
            "diag": dict(n_components=[1, 10, 30, 100], reg_covar=[1e-3, 1e-2, 1e-1, 1]),
            "full": dict(n_components=[1, 2], reg_covar=[1e-1, 1, 10]),
        },
        "bandwidth": np.geomspace(4, 128, 11).round(2).tolist(),
    },
    "quick": {
        "mixture": {
            "diag": dict(n_components=[1, 2], reg_covar=[1e-2, 1]),
            "full": dict(n_components=[1], reg_covar=[1]),
        },
        "bandwidth": [1.0, 2.0],
    },
}

DIGITS_MODELS = {
    "CEBMEncoder": (CEBMEncoder, {}),
    "IGEBMEncoder": (IGEBMEncoder, {}),
    "GMMCEBMClusterer": (GMMCEBMClusterer, dict(n_clusters=10)),
    "CEBMOutlierDetector": (CEBMOutlierDetector, {}),
    "VAEEncoder": (VAEEncoder, {}),
    "GMMVAEClusterer": (GMMVAEClusterer, {}),
}
MODELS = {
    "digits": DIGITS_MODELS,
    "digits-dequantized": DIGITS_MODELS,
    "fashion-mnist": {
        "CEBMEncoder": (CEBMEncoder, {}),
        "VAEEncoder": (VAEEncoder, {}),
    },
}

# --quick: models small enough for the smoke test; each takes the names among its parameters.
QUICK_SETTINGS = dict(
    max_iter=1,
    hidden_layer_sizes=(16,),
    n_components=4,
    batch_size=64,
    sgld_steps=2,
    buffer_size=64,
    clustering_updates=5,
    n_init=1,
    warmup_iter=1,
)
QUICK_AIS = dict(n_chains=10, n_temperatures=20)


# ----------------------------------------------------------------- data
def digits_splits(random_state=0):
    """scikit-learn's digits split 50 / 25 / 25 (stratified, seeded): train, validation,
    test rows, in 0-16."""
    X, y = load_digits(return_X_y=True)
    X_train, X_rest, _, y_rest = train_test_split(
        X, y, train_size=0.5, stratify=y, random_state=random_state
    )
    X_validation, X_test = train_test_split(
        X_rest, train_size=0.5, stratify=y_rest, random_state=random_state
    )
    return X_train, X_validation, X_test


def dequantized(splits, random_state=0):
    """The splits with uniform noise in ``[0, 1)`` added to every value: integer pixels
    become continuous, so that no continuous density gains without bound by shrinking a
    variance onto a value the training rows repeat exactly (Theis et al., 2016)."""
    rng = np.random.default_rng(random_state)
    return tuple(X + rng.uniform(0.0, 1.0, X.shape) for X in splits)


def fashion_mnist_splits(n_train, n_validation, random_state=0):
    """``n_train`` and ``n_validation`` other official training images drawn at random, and
    the 10,000 official test images; rows of 784 pixels in 0-255, float64."""
    X, _ = load_fashion_mnist(fashion_mnist_home(), subset="train", return_X_y=True)
    rows = np.random.default_rng(random_state).permutation(len(X))
    X_test, _ = load_fashion_mnist(fashion_mnist_home(), subset="test", return_X_y=True)
    X = X.astype(np.float64)
    return (
        X[rows[:n_train]],
        X[rows[n_train : n_train + n_validation]],
        X_test.astype(np.float64),
    )


# ----------------------------------------------------------------- the baselines
def uniform_box_log_density(low, high):
    """Log-density of the uniform density on the box ``[low, high]``, per row, in X's units.

    ``-sum_j log(high_j - low_j)``, except that a feature with ``low_j == high_j`` (constant
    in the training rows) spans 2: the energy models map each feature onto ``[-1, 1]``
    with a constant feature's scale 1, so their ``log Z`` integrates over
    ``input_center_ +- input_scale_``, which gives such a feature the width 2. This is the
    density their AIS starts from.

    Parameters
    ----------
    low, high : array-like of shape (n_features,)
        The smallest and largest training value of each feature.

    Returns
    -------
    float
    """
    span = np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)
    return -float(np.sum(np.log(np.where(span > 0, span, 2.0))))


def outside_the_box(X, low, high):
    """Whether each row of ``X`` has a feature outside ``[low, high]``."""
    return np.any((X < low) | (X > high), axis=1)


def mixture_search(X_train, X_validation, grids):
    """Validation log-likelihood of a GaussianMixture per setting in ``grids``
    (``{covariance_type: {"n_components": [...], "reg_covar": [...]}}``), each fitted on
    the training rows: a list of ``{setting, validation, seconds}``."""
    results = []
    for covariance_type, grid in grids.items():
        for n_components in grid["n_components"]:
            for reg_covar in grid["reg_covar"]:
                setting = dict(
                    covariance_type=covariance_type, n_components=n_components, reg_covar=reg_covar
                )
                started = time.perf_counter()
                mixture = GaussianMixture(**setting, random_state=0).fit(X_train)
                validation = float(mixture.score(X_validation))
                seconds = time.perf_counter() - started
                results.append(dict(setting=setting, validation=validation, seconds=seconds))
                print("GaussianMixture", results[-1], flush=True)
    return results


def kde_log_density(squared_distances, bandwidth, n_features):
    """Log-density of a Gaussian kernel density estimate at each row, from the rows'
    squared distances to the ``n`` reference rows: ``log mean_i N(x; x_i, h**2 I)``,
    what ``KernelDensity(bandwidth=h).score_samples`` computes, for any ``h`` at the
    cost of one distance matrix."""
    n_reference = squared_distances.shape[1]
    log_kernels = -squared_distances / (2 * bandwidth**2)
    normaliser = np.log(n_reference) + n_features / 2 * np.log(2 * np.pi * bandwidth**2)
    return logsumexp(log_kernels, axis=1) - normaliser


def kde_search(X_train, X_validation, bandwidths):
    """Validation log-likelihood of a Gaussian KernelDensity on the training rows per
    bandwidth: a list of ``{setting, validation}``."""
    squared = pairwise_distances(X_validation, X_train, metric="sqeuclidean")
    n_features = X_train.shape[1]
    return [
        dict(
            setting=dict(bandwidth=h),
            validation=float(np.mean(kde_log_density(squared, h, n_features))),
        )
        for h in bandwidths
    ]


def kde_test(X_train, X_test, bandwidth, check_rows=200):
    """Per-row test log-density of the chosen kernel density estimate, and the mean over
    the first ``check_rows`` test rows of ours and of ``KernelDensity.score_samples``.

    scikit-learn's tree-based sum is inexact where every kernel underflows, as they do in
    64 or 784 dimensions (scikit-learn issue 7492): it can exceed the largest possible
    value ``max_i log N(x; x_i, h**2 I)``. The report gives both.
    """
    squared = pairwise_distances(X_test, X_train, metric="sqeuclidean")
    log_density = kde_log_density(squared, bandwidth, X_train.shape[1])
    tree = KernelDensity(bandwidth=bandwidth).fit(X_train).score_samples(X_test[:check_rows])
    return log_density, dict(
        rows=len(tree),
        exact=float(np.mean(log_density[:check_rows])),
        kernel_density=float(np.mean(tree)),
    )


def best(results):
    return max(results, key=lambda result: result["validation"])


def on_edge(results, chosen, name):
    """Whether the chosen value of ``name`` is the grid's smallest or largest."""
    values = sorted({result["setting"][name] for result in results})
    return len(values) > 1 and chosen["setting"][name] in (values[0], values[-1])


def baselines(X_train, X_validation, X_test, grids):
    """Each baseline: its grid's validation scores, the chosen setting and its test scores
    on all rows and on the rows inside the training box."""
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    inside = ~outside_the_box(X_test, low, high)
    mixtures = mixture_search(X_train, X_validation, grids["mixture"])
    chosen = best(mixtures)
    started = time.perf_counter()
    mixture = GaussianMixture(**chosen["setting"], random_state=0).fit(X_train)
    mixture_rows = mixture.score_samples(X_test)
    mixture_seconds = time.perf_counter() - started
    kernels = kde_search(X_train, X_validation, grids["bandwidth"])
    chosen_kde = best(kernels)
    started = time.perf_counter()
    kde_rows, kde_check = kde_test(X_train, X_test, chosen_kde["setting"]["bandwidth"])
    kde_seconds = time.perf_counter() - started
    uniform = uniform_box_log_density(low, high)
    return {
        "GaussianMixture": dict(
            grid=grids["mixture"],
            search=mixtures,
            chosen=chosen,
            edge=[
                name for name in ("n_components", "reg_covar") if on_edge(mixtures, chosen, name)
            ],
            test=float(np.mean(mixture_rows)),
            test_inside=float(np.mean(mixture_rows[inside])),
            seconds=mixture_seconds,
        ),
        "KernelDensity": dict(
            grid=dict(bandwidth=grids["bandwidth"]),
            search=kernels,
            chosen=chosen_kde,
            edge=["bandwidth"] if on_edge(kernels, chosen_kde, "bandwidth") else [],
            test=float(np.mean(kde_rows)),
            test_inside=float(np.mean(kde_rows[inside])),
            seconds=kde_seconds,
            kernel_density_check=kde_check,
        ),
        "uniform on the box": dict(test=uniform, test_inside=uniform, validation=uniform),
    }


# ----------------------------------------------------------------- the package's models
def model_scores(name, estimator, X_train, X_test, ais):
    """Fit on the training rows and score the test rows (all, and inside the box).

    Energy models: ``estimate_log_partition(**ais)`` then ``score``, with its standard
    error. VAEs: ``score``, the evidence lower bound.
    """
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    inside = ~outside_the_box(X_test, low, high)
    started = time.perf_counter()
    estimator.fit(X_train)
    fit_seconds = time.perf_counter() - started
    energy = hasattr(estimator, "estimate_log_partition")
    started = time.perf_counter()
    error = None
    if energy:
        estimator.estimate_log_partition(**ais)
        error = float(estimator.log_partition_std_)
        # The uniform baseline lives on the box the AIS integrates over.
        box = -float(np.sum(np.log(2 * estimator.input_scale_)))
        assert np.isclose(box, uniform_box_log_density(low, high)), (box, name)
    test = float(estimator.score(X_test))
    test_inside = float(estimator.score(X_test[inside]))
    score_seconds = time.perf_counter() - started
    row = dict(
        kind="AIS log-likelihood" if energy else "ELBO (lower bound)",
        test=test,
        test_inside=test_inside,
        standard_error=error,
        fit_seconds=fit_seconds,
        score_seconds=score_seconds,
        params={k: repr(v) for k, v in estimator.get_params().items() if k in MODEL_PARAMS},
    )
    print(name, row, flush=True)
    return row


# Parameters the report names for each model.
MODEL_PARAMS = ("max_iter", "hidden_layer_sizes", "n_components", "n_clusters", "batch_size")


def run_data_set(name, splits, grids, models, ais):
    X_train, X_validation, X_test = splits
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    outside = outside_the_box(X_test, low, high)
    result = dict(
        n_train=len(X_train),
        n_validation=len(X_validation),
        n_test=len(X_test),
        n_features=X_train.shape[1],
        constant_features=int(np.sum(high == low)),
        test_rows_outside_the_box=int(outside.sum()),
        baselines=baselines(X_train, X_validation, X_test, grids),
        models={},
    )
    for model_name, (estimator, settings) in models.items():
        result["models"][model_name] = model_scores(
            model_name, estimator(**settings), X_train, X_test, ais
        )
    return result


# ----------------------------------------------------------------- the report
def _mixture_table(search, covariance_type):
    rows = [r for r in search if r["setting"]["covariance_type"] == covariance_type]
    reg_covars = sorted({r["setting"]["reg_covar"] for r in rows})
    components = sorted({r["setting"]["n_components"] for r in rows})
    score = {(r["setting"]["n_components"], r["setting"]["reg_covar"]): r for r in rows}
    lines = [
        "| n_components \\ reg_covar | " + " | ".join(f"{c:g}" for c in reg_covars) + " |",
        "| --- " * (len(reg_covars) + 1) + "|",
    ]
    for k in components:
        cells = [f"{score[(k, c)]['validation']:.1f}" for c in reg_covars]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def _setting_text(setting):
    return ", ".join(f"{k}={v!r}" for k, v in setting.items())


DESCRIPTIONS = {
    "digits": "scikit-learn's digits (8x8 pixels, integers 0-16), split 50 / 25 / 25 at "
    "random, stratified by class (`random_state=0`).",
    "digits-dequantized": "The same splits with uniform noise in [0, 1) added to every "
    "pixel (seeded): on integer pixels a continuous density can gain without bound by "
    "shrinking a variance onto a value the training rows repeat exactly (a pixel that is "
    "0 in all of a component's rows), which small `reg_covar` does; on the dequantized "
    "pixels it cannot.",
    "fashion-mnist": "Fashion-MNIST (28x28 pixels, integers 0-255): 10,000 training and "
    "5,000 validation images drawn at random (`numpy.random.default_rng(0)`) from the "
    "official 60,000 training images, and the 10,000 official test images.",
}


def data_set_lines(name, result, ais_text):
    b = result["baselines"]
    mixture, kde = b["GaussianMixture"], b["KernelDensity"]
    lines = [
        f"## {name}",
        "",
        DESCRIPTIONS[name],
        "",
        f"{result['n_train']} training, {result['n_validation']} validation and "
        f"{result['n_test']} test rows of {result['n_features']} features; "
        f"{result['constant_features']} features are constant in the training rows. "
        f"{result['test_rows_outside_the_box']} of the {result['n_test']} test rows have a "
        "feature outside the training rows' box: the energy models and the uniform density "
        "count them at their projection onto the box ('all test rows'); the last column "
        "leaves them out for every method.",
        "",
        "| method | setting (chosen on validation) | validation | test, all rows | "
        "test, inside the box | error | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, row in [("GaussianMixture", mixture), ("KernelDensity", kde)]:
        edge = f" (edge of the grid: {', '.join(row['edge'])})" if row["edge"] else ""
        lines.append(
            f"| {method} | {_setting_text(row['chosen']['setting'])}{edge} | "
            f"{row['chosen']['validation']:.2f} | {row['test']:.2f} | "
            f"{row['test_inside']:.2f} | - | {row['seconds']:.1f} |"
        )
    uniform = b["uniform on the box"]
    lines.append(
        f"| uniform on the box | none | {uniform['validation']:.2f} | {uniform['test']:.2f} | "
        f"{uniform['test_inside']:.2f} | - | 0 |"
    )
    for model, row in result["models"].items():
        error = "-" if row["standard_error"] is None else f"{row['standard_error']:.2f}"
        lines.append(
            f"| {model} ({row['kind']}) | defaults | - | {row['test']:.2f} | "
            f"{row['test_inside']:.2f} | {error} | {row['fit_seconds']:.0f} fit + "
            f"{row['score_seconds']:.0f} score |"
        )
    lines += [
        "",
        "Mean log-density per test row in X's units (nats; higher is better). Error: the "
        f"standard error of AIS's `log Z` (`log_partition_std_`, {ais_text}). A VAE's score "
        "is its evidence lower bound, below its log-likelihood. GaussianMixture seconds: "
        "the refit and test score of the chosen setting; KernelDensity: the test rows' "
        "distances and densities.",
        "",
        "GaussianMixture, validation log-likelihood per setting (`random_state=0`, "
        "scikit-learn's other defaults):",
        "",
    ]
    for covariance_type in mixture["grid"]:
        lines += [
            f"covariance_type='{covariance_type}':",
            "",
            *_mixture_table(mixture["search"], covariance_type),
            "",
        ]
    bandwidths = [r["setting"]["bandwidth"] for r in kde["search"]]
    check = kde["kernel_density_check"]
    lines += [
        "KernelDensity (Gaussian kernel, reference = the training rows), validation "
        "log-likelihood per bandwidth. The densities are the exact "
        "`log mean_i N(x; x_i, h^2 I)` from one distance matrix "
        "(`kde_log_density`): `KernelDensity.score_samples`, whose tree-based sum is "
        "inexact where every kernel underflows (scikit-learn issue 7492), gives a mean of "
        f"{check['kernel_density']:.2f} on the first {check['rows']} test rows at the "
        f"chosen bandwidth, where the exact mean is {check['exact']:.2f}:",
        "",
        "| bandwidth | " + " | ".join(f"{h:g}" for h in bandwidths) + " |",
        "| --- " * (len(bandwidths) + 1) + "|",
        "| validation | " + " | ".join(f"{r['validation']:.1f}" for r in kde["search"]) + " |",
        "",
        "Models: "
        + "; ".join(
            f"{m}({', '.join(f'{k}={v}' for k, v in row['params'].items())})"
            for m, row in result["models"].items()
        )
        + ".",
        "",
    ]
    return lines


def report(results, args):
    lines = [
        "# Held-out log-likelihood against baselines chosen on validation data "
        "(benchmarks/likelihood_baselines.py, issue 39)",
        "",
        *machine_header(),
        f"- command: `{args.command}`",
        f"- date: {time.strftime('%Y-%m-%d')}",
        "",
        "Each baseline's settings are those with the highest mean log-likelihood on the "
        "validation rows, fitted on the training rows; it is then fitted on the training "
        "rows alone (as the models are) and scored on the test rows, which chose nothing. "
        "The package's models are fitted on the training rows with their defaults. The "
        "uniform density lives on the box the energy models' AIS integrates over: each "
        "feature's training range, a constant feature's of width 2 (its `input_scale_` is "
        "1).",
        "",
    ]
    for name, result in results.items():
        lines += data_set_lines(name, result, args.ais_text)
    return lines


# ----------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny grids and models, digits")
    parser.add_argument("--data", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--output", default=None, help="markdown report; a .json beside it")
    return parser.parse_args(argv)


def quick_models():
    models = {}
    for name, (estimator, settings) in MODELS["digits"].items():
        names = estimator().get_params()
        tiny = {k: v for k, v in QUICK_SETTINGS.items() if k in names}
        models[name] = (estimator, {**settings, **tiny, "random_state": 0})
    return models


def main(argv=None):
    args = parse_args(argv)
    args.command = "python benchmarks/likelihood_baselines.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    torch.set_num_threads(1)
    ais = QUICK_AIS if args.quick else {}
    args.ais_text = (
        ", ".join(f"{k}={v}" for k, v in ais.items())
        if ais
        else "100 chains, 32 temperatures per feature (at least 500), the defaults"
    )
    results = {}
    for name in ["digits"] if args.quick else args.data:
        if name == "fashion-mnist" and not fashion_mnist_available():
            print("Fashion-MNIST is not installed: skipped.", flush=True)
            continue
        if args.quick:
            X_train, X_validation, X_test = digits_splits()
            splits = X_train[:200], X_validation[:100], X_test[:100]
            grids, models = GRIDS["quick"], quick_models()
        else:
            splits = {
                "digits": digits_splits,
                "digits-dequantized": lambda: dequantized(digits_splits()),
                "fashion-mnist": lambda: fashion_mnist_splits(*FASHION_MNIST_SIZES),
            }[name]()
            grids = GRIDS[name]
            models = {
                m: (est, {**settings, "random_state": 0})
                for m, (est, settings) in MODELS[name].items()
            }
        started = time.perf_counter()
        results[name] = run_data_set(name, splits, grids, models, ais)
        results[name]["seconds"] = time.perf_counter() - started
        lines = report(results, args)
        write_lines(lines, args.output)
        if args.output is not None:
            with open(args.output.rsplit(".", 1)[0] + ".json", "w") as out:
                json.dump(
                    {"machine": machine_info(), "command": args.command, "results": results},
                    out,
                    indent=2,
                )
    print("\n".join(report(results, args)))
    return results


if __name__ == "__main__":
    main()
