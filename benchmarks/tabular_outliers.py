"""Novelty detection on tables: CEBMOutlierDetector at its defaults against the detectors a
scikit-learn user tries first (issue 19).

Tasks: every class of scikit-learn's digits, wine, iris and breast cancer as the normal
class in turn (a seeded half of it to train on; the other half against every other class
to test on), and synthetic tasks whose inlier density is known, scored by that density too
(the ``oracle`` column: what a perfect density model of the inliers gets). Detectors:
IsolationForest, LocalOutlierFactor(novelty=True) and a GaussianMixture with full
covariances whose number of components (1 to 5) minimises the BIC on the training rows,
each behind a StandardScaler, and CEBMOutlierDetector as it comes (``--set`` changes its
parameters). ``--suite heldout`` runs other tables instead (:func:`heldout_tasks`), which
were not looked at when the defaults were chosen. The score is the AUROC of
``score_samples`` with the normal class positive (``sklearn_cebm.evaluation.ood_auroc``);
fit seconds are wall-clock on one torch thread.

    OMP_NUM_THREADS=1 python benchmarks/tabular_outliers.py \\
        --output benchmarks/results/tabular_outliers.md
"""

import argparse
import json
import time
import warnings

import numpy as np
import torch
from _common import machine_header, machine_info, markdown_row, write_lines
from scipy.stats import multivariate_normal
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_blobs,
    make_circles,
    make_classification,
    make_moons,
    make_s_curve,
)
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cebm import CEBMOutlierDetector
from sklearn_cebm.evaluation import ood_auroc

CLASSIC = ("IsolationForest", "LOF", "GaussianMixture")
LOADERS = {
    "digits": load_digits,
    "wine": load_wine,
    "iris": load_iris,
    "breast_cancer": load_breast_cancer,
}


# ----------------------------------------------------------------- tasks
def class_tasks(seed):
    """``(name, X_train, X_in, X_out, None)`` with each class of each data set as normal."""
    tasks = []
    for data_name, loader in LOADERS.items():
        X, y = loader(return_X_y=True)
        for label in np.unique(y):
            normal = X[y == label]
            X_train, X_in = train_test_split(normal, test_size=0.5, random_state=seed)
            tasks.append((f"{data_name}:{label}", X_train, X_in, X[y != label], None))
    return tasks


def _correlated_gaussian(n_features, rng):
    """A Gaussian with a random correlation structure and unit-scale variances."""
    factor = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
    return multivariate_normal(np.zeros(n_features), factor @ factor.T + 0.1 * np.eye(n_features))


def _ring(n, rng, radius=2.0, width=0.1):
    angle = rng.uniform(0, 2 * np.pi, n)
    r = radius + width * rng.standard_normal(n)
    return np.column_stack([r * np.cos(angle), r * np.sin(angle)])


def _ring_log_density(X, radius=2.0, width=0.1):
    # Uniform angle, Gaussian radius: the density in the plane divides by 2 pi r.
    r = np.linalg.norm(X, axis=1)
    return -0.5 * ((r - radius) / width) ** 2 - np.log(r)


def synthetic_tasks(seed, n=500):
    """``(name, X_train, X_in, X_out, log_density)``: inliers of a known density."""
    rng = np.random.default_rng(seed)
    tasks = []
    gauss = _correlated_gaussian(10, rng)
    inliers = gauss.rvs(2 * n, random_state=rng)
    tasks.append(
        (
            "gauss10-uniform",
            inliers[:n],
            inliers[n:],
            rng.uniform(-4, 4, (n // 5, 10)),
            gauss.logpdf,
        )
    )
    # Outliers of the same covariance, shifted by 3 Mahalanobis units.
    direction = rng.normal(size=10)
    shift = 3 * direction / np.sqrt(direction @ np.linalg.solve(gauss.cov, direction))
    tasks.append(
        (
            "gauss10-shifted",
            inliers[:n],
            inliers[n:],
            gauss.rvs(n // 5, random_state=rng) + shift,
            gauss.logpdf,
        )
    )
    moons = make_moons(2 * n, noise=0.1, random_state=seed)[0]
    tasks.append(
        (
            "moons-uniform",
            moons[:n],
            moons[n:],
            rng.uniform([-1.5, -1.0], [2.5, 1.5], (n // 5, 2)),
            None,
        )
    )
    ring = _ring(2 * n, rng)
    tasks.append(
        (
            "ring-centre",
            ring[:n],
            ring[n:],
            0.7 * rng.standard_normal((n // 5, 2)),
            _ring_log_density,
        )
    )
    # Heavy right tails: lognormal features; outliers with a few features' scale raised.
    log_gauss = _correlated_gaussian(6, rng)
    lognormal = np.exp(log_gauss.rvs(2 * n, random_state=rng))
    out = np.exp(log_gauss.rvs(n // 5, random_state=rng) + np.r_[1.5, -1.5, 0, 0, 0, 0])
    tasks.append(
        (
            "lognormal6-shifted",
            lognormal[:n],
            lognormal[n:],
            out,
            lambda X: log_gauss.logpdf(np.log(X)) - np.log(X).sum(axis=1),
        )
    )
    return tasks


def heldout_tasks(seed):
    """``(name, X_train, X_in, X_out, None)``: tables that were not looked at when the
    detector's defaults were chosen (``--suite heldout``), to check that they carry over.

    Each class of two ``make_classification`` tables (three classes of Gaussian clusters
    in 20 features with 150 training rows a class, and in 10 features with about 20) as
    normal in turn; four Gaussian blobs in 8-D against uniform noise on their box; the
    outer of two circles against the inner one; an S-shaped 3-D surface against its
    points moved off it by Gaussian noise of std 0.5.
    """
    rng = np.random.default_rng(100 + seed)
    tasks = []
    for n_samples, n_features, name in [(900, 20, "classes20"), (120, 10, "classes10-small")]:
        X, y = make_classification(
            n_samples,
            n_features,
            n_informative=5,
            n_redundant=3,
            n_classes=3,
            n_clusters_per_class=2,
            random_state=100 + seed,
        )
        for label in range(3):
            X_train, X_in = train_test_split(X[y == label], test_size=0.5, random_state=seed)
            tasks.append((f"{name}:{label}", X_train, X_in, X[y != label], None))
    blobs, _ = make_blobs(800, 8, centers=4, random_state=100 + seed)
    noise = rng.uniform(blobs.min(axis=0), blobs.max(axis=0), (160, 8))
    tasks.append(("blobs8-uniform", blobs[:400], blobs[400:], noise, None))
    circles, y = make_circles(1000, factor=0.5, noise=0.05, random_state=100 + seed)
    outer, inner = circles[y == 0], circles[y == 1]
    tasks.append(("circles-outer-inner", outer[:250], outer[250:], inner[:100], None))
    curve, _ = make_s_curve(1000, noise=0.05, random_state=100 + seed)
    moved = curve[500:600] + 0.5 * rng.standard_normal((100, 3))
    tasks.append(("s-curve-moved-off", curve[:500], curve[500:], moved, None))
    return tasks


# ----------------------------------------------------------------- detectors
class _OracleScores:
    """The inliers' true log-density as a detector's ``score_samples``."""

    def __init__(self, log_density):
        self.score_samples = log_density


def gaussian_mixture_by_bic(X, seed, max_components=5):
    """StandardScaler then the full-covariance GaussianMixture of 1 to ``max_components``
    components (at most one per two training rows) with the lowest BIC."""
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    best = None
    for k in range(1, min(max_components, len(X) // 2) + 1):
        mixture = GaussianMixture(k, covariance_type="full", random_state=seed).fit(Z)
        if best is None or mixture.bic(Z) < best.bic(Z):
            best = mixture
    return make_pipeline(scaler, best)


def fitters(cebm_params):
    """``{name: fit(X_train, seed) -> fitted detector}``."""
    return {
        "IsolationForest": lambda X, seed: make_pipeline(
            StandardScaler(), IsolationForest(random_state=seed)
        ).fit(X),
        "LOF": lambda X, seed: make_pipeline(
            StandardScaler(), LocalOutlierFactor(novelty=True)
        ).fit(X),
        "GaussianMixture": gaussian_mixture_by_bic,
        "CEBMOutlierDetector": lambda X, seed: CEBMOutlierDetector(
            **cebm_params, random_state=seed
        ).fit(X),
    }


def run_task(task, detectors, seed):
    """``{detector: (auroc, fit seconds)}`` on one task, the oracle's where known."""
    _, X_train, X_in, X_out, log_density = task
    results = {}
    for detector, fit in detectors.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = fit(X_train, seed)
        seconds = time.perf_counter() - started
        results[detector] = (ood_auroc(fitted, X_in, X_out), seconds)
    if log_density is not None:
        results["oracle"] = (ood_auroc(_OracleScores(log_density), X_in, X_out), 0.0)
    return results


# ----------------------------------------------------------------- the report
def summarise(per_task, detectors):
    """Mean AUROC and fit seconds per detector, and each non-classic one's gaps to the best
    classic detector per task: mean and worst."""
    summary = {}
    best_classic = {task: max(r[d][0] for d in CLASSIC if d in r) for task, r in per_task.items()}
    for detector in detectors:
        aurocs = [r[detector][0] for r in per_task.values()]
        gaps = {task: r[detector][0] - best_classic[task] for task, r in per_task.items()}
        worst = min(gaps, key=gaps.get)
        summary[detector] = {
            "mean_auroc": float(np.mean(aurocs)),
            "mean_fit_seconds": float(np.mean([r[detector][1] for r in per_task.values()])),
            "mean_gap_to_best_classic": float(np.mean(list(gaps.values()))),
            "worst_gap_to_best_classic": float(gaps[worst]),
            "worst_task": worst,
        }
    summary["best classic"] = {"mean_auroc": float(np.mean(list(best_classic.values())))}
    return summary


def report_lines(per_task, summary, detectors, args):
    """The markdown report: the machine, the command, one row per task, the summary."""
    lines = [
        "# Novelty detection on tables (benchmarks/tabular_outliers.py)",
        "",
        *machine_header(),
        f"- command: `{args.command}`",
        f"- suite: {args.suite}; seeds: {args.seeds}; CEBMOutlierDetector parameters: "
        f"{args.cebm_params or 'defaults'}",
        "",
        "AUROC of `score_samples` (normal class positive), fit seconds in brackets; "
        "`oracle` scores by the inliers' true density (synthetic tasks). Means over seeds.",
        "",
        markdown_row(["task", *detectors, "oracle", "CEBM - best classic"]),
        markdown_row(["---"] * (len(detectors) + 3)),
    ]
    best = {t: max(r[d][0] for d in CLASSIC if d in r) for t, r in per_task.items()}
    for task, results in per_task.items():
        cells = [f"{results[d][0]:.3f} ({results[d][1]:.2f})" for d in detectors]
        oracle = f"{results['oracle'][0]:.3f}" if "oracle" in results else ""
        gap = results.get("CEBMOutlierDetector", (np.nan,))[0] - best[task]
        lines.append(markdown_row([task, *cells, oracle, f"{gap:+.3f}"]))
    lines += [
        "",
        markdown_row(
            ["detector", "mean AUROC", "mean fit s", "mean gap to best classic", "worst gap (task)"]
        ),
        markdown_row(["---"] * 5),
    ]
    for detector in detectors:
        s = summary[detector]
        lines.append(
            markdown_row(
                [
                    detector,
                    f"{s['mean_auroc']:.3f}",
                    f"{s['mean_fit_seconds']:.2f}",
                    f"{s['mean_gap_to_best_classic']:+.3f}",
                    f"{s['worst_gap_to_best_classic']:+.3f} ({s['worst_task']})",
                ]
            )
        )
    lines.append(
        markdown_row(
            ["best classic per task", f"{summary['best classic']['mean_auroc']:.3f}", "", "", ""]
        )
    )
    return lines


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--tasks", nargs="*", default=None, help="only tasks whose name starts with one of these"
    )
    parser.add_argument(
        "--suite",
        choices=["main", "heldout"],
        default="main",
        help="the benchmark's tasks, or tables not used to choose the defaults",
    )
    parser.add_argument("--detectors", nargs="+", default=[*CLASSIC, "CEBMOutlierDetector"])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a CEBMOutlierDetector parameter, JSON value (repeatable)",
    )
    parser.add_argument("--output", default=None, help="markdown report; a .json beside it")
    args = parser.parse_args(argv)
    args.cebm_params = {
        name: _parse_value(value) for name, value in (item.split("=", 1) for item in args.set)
    }
    return args


def main(argv=None):
    import sys

    args = parse_args(argv)
    args.command = "python benchmarks/tabular_outliers.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    torch.set_num_threads(1)
    detectors = {
        name: fit for name, fit in fitters(args.cebm_params).items() if name in args.detectors
    }
    per_seed = []
    for seed in args.seeds:
        tasks = [
            t
            for t in (
                class_tasks(seed) + synthetic_tasks(seed)
                if args.suite == "main"
                else heldout_tasks(seed)
            )
            if args.tasks is None or t[0].startswith(tuple(args.tasks))
        ]
        per_seed.append({})
        for task in tasks:
            per_seed[-1][task[0]] = run_task(task, detectors, seed)
            print(
                task[0], {d: round(a, 3) for d, (a, _) in per_seed[-1][task[0]].items()}, flush=True
            )
    per_task = {
        task: {d: tuple(np.mean([s[task][d] for s in per_seed], axis=0)) for d in per_seed[0][task]}
        for task in per_seed[0]
    }
    summary = summarise(per_task, list(detectors))
    lines = report_lines(per_task, summary, list(detectors), args)
    print("\n".join(lines))
    if args.output is not None:
        write_lines(lines, args.output)
        with open(args.output.rsplit(".", 1)[0] + ".json", "w") as out:
            json.dump(
                {
                    "machine": machine_info(),
                    "command": args.command,
                    "cebm_params": args.cebm_params,
                    "suite": args.suite,
                    "per_task": per_task,
                    "per_seed": per_seed,
                    "summary": summary,
                },
                out,
                indent=1,
            )
    return per_task, summary


if __name__ == "__main__":
    main()
