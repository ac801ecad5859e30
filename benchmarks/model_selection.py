"""Unsupervised model selection: is ``score`` a log-likelihood, and does it rank models?

Three parts (issue 18):

1. **Known answers.** ``log_partition_`` (annealed importance sampling at ``score``'s
   default effort, 100 chains and 32 temperatures per feature (at least 500), and 400
   chains and 10,000 temperatures) against the truth: a CEBMEncoder whose encoder makes
   its marginal a Gaussian (closed form, on the box, in X's units) in 8 and 64 dimensions,
   and CEBMEncoders on 1-D and 2-D data (numerical integration of ``exp(score_samples)``
   over the box).
2. **Ranking.** A grid of CEBMEncoders on one half of the digits, scored on the other half
   by ``score`` (default effort), by a long estimate (``estimate_log_partition`` with 400
   chains and 10,000 temperatures, 20 times the default's cost on the digits), by a
   held-out denoising score-matching criterion (no ``log Z``; computed from
   ``score_samples`` and ``score_gradient_norm``) and by the mean unnormalised
   ``score_samples`` that ``score`` used to be. Spearman's rho of each ranking against the
   long estimate's.
3. **GridSearchCV without labels** over the same grid on the first half: what it picks.
4. With ``--clusterer`` (and only that): ``GridSearchCV`` over ``n_clusters`` of
   GMMCEBMClusterer, judged by the held-out NMI against the labels it never sees.
5. With ``--clusterer --criteria``: criteria for ``n_clusters`` without labels, each from
   the same fits of GMMCEBMClusterer on two random halves of the data per seed
   (``sklearn_cebm.evaluation.clustering_stability``): the stability of the partition
   across the halves, the held-out log-likelihood, the modularity of the held-out
   half's nearest-neighbour graph, the silhouette of the codes, the codes' held-out
   log-density under the fitted mixture, and BIC of a GaussianMixture on the likelihood
   stage's codes and on the pixels; judged by the NMI against the labels they never see.

Usage: ``python benchmarks/model_selection.py --output benchmarks/results/model_selection.md``;
``--quick`` runs a tiny version in a minute. Part 5 (each result file names its command):
``python benchmarks/model_selection.py --clusterer --criteria --data digits --seeds 0 1
--n-clusters 4 5 6 7 8 9 10 11 12 13 14 15 16 --n-init 1 --output n_clusters.md``, and
``--data digits0-4`` (2 to 10 clusters) and ``--data fashion-mnist-2000`` (6 to 14,
``--no-score``): their reports are sections of ``benchmarks/results/model_selection.md``.
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
from _common import (
    digits_halves,
    fashion_mnist_subset,
    machine_header,
    machine_info,
    markdown_row,
    write_lines,
)
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler
from torch import nn

from sklearn_cebm import CEBMEncoder, GMMCEBMClusterer, VAEEncoder
from sklearn_cebm.evaluation import (
    clustering_stability,
    gaussian_mixture_log_density,
    neighbour_modularity,
)

# The smallest magnitude the CEBM adds to its second statistic (exponential_family.py).
MIN_NEGATIVE_MAGNITUDE = 1e-6


class GaussianMarginalStatistics(nn.Module):
    """An encoder under which a CEBM's marginal is ``N(mean, diag(std**2))`` on the box.

    With the bias ``N(0, 1)`` per latent dimension, ``t_1 = 0`` and ``t_2 = -(softplus(u) +
    eps)``, Eq. 21 gives ``E(x) = sum_k log(1 + 2 softplus(u_k) + 2 eps) / 2``; the ``u_k``
    below make it ``sum_k (1 + ((x_k - m_k) / s_k)**2) / 2``. A zero parameter keeps Adam
    happy and the density unchanged. (tests/core/test_ais.py tests the same construction.)
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64))
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        squared = ((x.to(torch.float64) - self.mean) / self.std) ** 2
        magnitude = (torch.expm1(1 + squared) - 2 * MIN_NEGATIVE_MAGNITUDE) / 2
        unconstrained = magnitude + torch.log(-torch.expm1(-magnitude))
        raw = torch.cat([torch.zeros_like(unconstrained), unconstrained], dim=1)
        return raw.to(x.dtype) + 0.0 * self.unused

    def log_partition(self):
        """``log Z`` of the marginal on ``[-1, 1]^D``, in closed form."""
        a, b = (-1 - self.mean) / self.std, (1 - self.mean) / self.std
        mass = torch.special.ndtr(b) - torch.special.ndtr(a)
        return (-0.5 + torch.log(self.std * math.sqrt(2 * math.pi) * mass)).sum().item()


def _timed_estimate(estimator, **effort):
    started = time.perf_counter()
    estimator.estimate_log_partition(**effort, random_state=0)
    seconds = time.perf_counter() - started
    return estimator.log_partition_, estimator.log_partition_std_, seconds


def known_answers(efforts):
    """``[(case, truth, [(effort name, estimate, error, seconds)])]`` for part 1."""
    rng = np.random.default_rng(0)
    cases = []
    for n_features in (8, 64):
        mean = rng.uniform(-0.5, 0.5, n_features)
        std = rng.uniform(0.25, 0.6, n_features)
        statistics = GaussianMarginalStatistics(mean, std)
        # Data in units 4 times the box's: the truth in X's units adds D log 4.
        X = np.vstack(
            [-np.ones(n_features), np.ones(n_features), rng.uniform(-1, 1, (50, n_features))]
        )
        model = CEBMEncoder(
            n_components=n_features, encoder=statistics, max_iter=1, batch_size=26, random_state=0
        ).fit(4.0 * X + 1.0)
        truth = statistics.log_partition() + n_features * math.log(4.0)
        cases.append((f"Gaussian marginal, D={n_features}", model, truth))
    for n_features in (1, 2):
        X = rng.normal(size=(400, n_features)) * [3.0, 0.5][:n_features] + 10.0
        X[:, 0] = np.where(rng.random(400) < 0.5, X[:, 0], X[:, 0] + 9.0)  # two modes
        model = CEBMEncoder(
            n_components=4, hidden_layer_sizes=(32, 32), max_iter=40, batch_size=50, random_state=0
        ).fit(X)
        cases.append((f"trained CEBM, D={n_features}", model, _integral(model, n_features)))
    return [
        (name, truth, [(label, *_timed_estimate(model, **effort)) for label, effort in efforts])
        for name, model, truth in cases
    ]


def _integral(model, n_features, points=2001):
    """``log`` of the trapezoid integral of ``exp(score_samples)`` over the box."""
    axes = [
        np.linspace(lo, hi, points)
        for lo, hi in zip(model.input_min_, model.input_max_, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, n_features)
    density = np.exp(model.score_samples(grid).astype(np.float64)).reshape([points] * n_features)
    for axis in reversed(axes):
        density = np.trapezoid(density, axis, axis=-1)
    return math.log(float(density))


def denoising_score_matching(model, X, noise_scale=0.1, seed=0):
    """Held-out denoising score-matching criterion, higher is better, from the public API.

    ``-mean ||grad log p(x~) + (x~ - x) / sigma**2||**2`` with ``x~ = x + sigma eps`` and
    ``sigma = noise_scale * input_scale_`` per feature (0.1 in the box's units, the default
    ``dsm_noise``), in X's units. The model has no density outside its box, so ``x~`` is
    clipped into it. The directional derivative comes from central differences of
    ``score_samples``; the norm from ``score_gradient_norm``.
    """
    rng = np.random.default_rng(seed)
    sigma = noise_scale * model.input_scale_
    step = 1e-3 * model.input_scale_
    low, high = model.input_min_ + step, model.input_max_ - step
    noisy = np.clip(X + sigma * rng.standard_normal(X.shape), low, high)
    target = (X - noisy) / sigma**2
    direction = target / np.linalg.norm(target, axis=1, keepdims=True).clip(1e-12)
    h = 1e-3 * np.min(model.input_scale_)
    ahead = model.score_samples(noisy + h * direction).astype(np.float64)
    behind = model.score_samples(noisy - h * direction).astype(np.float64)
    along = (ahead - behind) / (2 * h) * np.linalg.norm(target, axis=1)
    squared_norm = model.score_gradient_norm(noisy).astype(np.float64) ** 2
    # Without the constant ||(x~ - x) / sigma**2||**2, the same for every model.
    return -float(np.mean(squared_norm - 2 * along))


GRID = {"n_components": [2, 16, 64], "energy_l2": [5e-3, 0.0]}


def _candidates(grid):
    return [
        dict(n_components=k, energy_l2=l2) for k in grid["n_components"] for l2 in grid["energy_l2"]
    ]


def ranking(X_train, X_test, base, long_effort):
    """Per candidate: the four criteria on the held-out half and their seconds."""
    rows = []
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    outside = int(np.sum(np.any((X_test < low) | (X_test > high), axis=1)))
    for params in _candidates(base.pop("grid")):
        model = CEBMEncoder(**base, **params)
        started = time.perf_counter()
        model.fit(X_train)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        score = model.estimate_log_partition().score(X_test)  # what score alone computes
        score_seconds = time.perf_counter() - started
        score_error = model.log_partition_std_
        mean_score_samples = float(np.mean(model.score_samples(X_test)))
        _, long_error, long_seconds = _timed_estimate(model, **long_effort)
        rows.append(
            dict(
                params=params,
                fit_seconds=fit_seconds,
                score=score,
                score_seconds=score_seconds,
                score_error=score_error,
                long_log_likelihood=model.score(X_test),
                long_error=long_error,
                long_seconds=long_seconds,
                dsm=denoising_score_matching(model, X_test),
                mean_score_samples=mean_score_samples,
            )
        )
        print(rows[-1], flush=True)
    return rows, outside


def references(X_train, X_test, base):
    """Held-out log-likelihoods of simpler models, for scale: ``{name: mean per row}``."""
    # The box input_center_ +- input_scale_ of every candidate: the training half's ranges,
    # a constant pixel's of width 2.
    span = X_train.max(axis=0) - X_train.min(axis=0)
    uniform = -float(np.sum(np.log(np.where(span > 0, span, 2.0))))
    # reg_covar=1e-2 was picked by hand (scikit-learn's 1e-6 scores -8,928 here: constant
    # pixels make variances tiny), kept so that this file's runs compare;
    # benchmarks/likelihood_baselines.py chooses every baseline's settings on validation data.
    mixture = GaussianMixture(10, covariance_type="diag", reg_covar=1e-2, random_state=0)
    vae_params = {name: value for name, value in base.items() if name in VAEEncoder().get_params()}
    vae = VAEEncoder(n_components=16, **vae_params)
    return {
        "uniform density on the box": uniform,
        "GaussianMixture(10, covariance_type='diag', reg_covar=1e-2)": float(
            mixture.fit(X_train).score(X_test)
        ),
        f"VAEEncoder(n_components=16, max_iter={base['max_iter']}) (ELBO)": float(
            vae.fit(X_train).score(X_test)
        ),
    }


def spearman(rows, key):
    long = [row["long_log_likelihood"] for row in rows]
    return float(spearmanr([row[key] for row in rows], long).statistic)


def report(known, rows, outside, search, args):
    lines = [
        "# Unsupervised model selection (benchmarks/model_selection.py, issue 18)",
        "",
        *machine_header(),
        f"- command: `{args.command}`",
        "",
        "## 1. log Z against known answers",
        "",
        "`log_partition_` in X's units by AIS from the uniform density on the box; error = the",
        "reported standard error; z = (estimate - truth) / error.",
        "",
        markdown_row(["model", "truth", "effort", "estimate", "error", "z", "seconds"]),
        markdown_row(["---"] * 7),
    ]
    for name, truth, estimates in known:
        for label, value, error, seconds in estimates:
            z = (value - truth) / error
            lines.append(
                markdown_row(
                    [
                        name,
                        f"{truth:.3f}",
                        label,
                        f"{value:.3f}",
                        f"{error:.3f}",
                        f"{z:+.2f}",
                        f"{seconds:.1f}",
                    ]
                )
            )
    lines += [
        "",
        "## 2. Ranking a grid of digits models by held-out criteria",
        "",
        f"CEBMEncoder({args.base_text}) on half the digits ({args.n_train} rows), each criterion "
        f"on the other half ({args.n_test} rows; {outside} of them leave the training half's "
        "box in some pixel and are counted at their projection). `long` = "
        f"`estimate_log_partition({args.long_text})`, then `score`.",
        "",
        markdown_row(
            [
                "n_components",
                "energy_l2",
                "score (error)",
                "score s",
                "long log-lik. (error)",
                "long s",
                "held-out DSM",
                "mean score_samples",
                "fit s",
            ]
        ),
        markdown_row(["---"] * 9),
    ]
    for row in rows:
        lines.append(
            markdown_row(
                [
                    row["params"]["n_components"],
                    row["params"]["energy_l2"],
                    f"{row['score']:.3f} ({row['score_error']:.3f})",
                    f"{row['score_seconds']:.1f}",
                    f"{row['long_log_likelihood']:.3f} ({row['long_error']:.3f})",
                    f"{row['long_seconds']:.1f}",
                    f"{row['dsm']:.4g}",
                    f"{row['mean_score_samples']:.3f}",
                    f"{row['fit_seconds']:.1f}",
                ]
            )
        )
    lines += [
        "",
        "For scale, the held-out `score` of other models of the same half (log-likelihood "
        "per row in X's units; the VAE's is its evidence lower bound):",
        "",
        *(f"- {name}: {value:.3f}" for name, value in args.references.items()),
        "",
        "Spearman's rho against the ranking by the long estimate:",
        "",
        markdown_row(["criterion", "rho"]),
        markdown_row(["---"] * 2),
        *(
            markdown_row([name, f"{spearman(rows, key):+.3f}"])
            for name, key in [
                ("score (default AIS)", "score"),
                ("held-out denoising score matching", "dsm"),
                ("mean score_samples (the old score)", "mean_score_samples"),
            ]
        ),
    ]
    if search is not None:
        best = max(rows, key=lambda row: row["long_log_likelihood"])["params"]
        lines += [
            "",
            "## 3. GridSearchCV without labels",
            "",
            f"`GridSearchCV(CEBMEncoder(...), {args.grid}, cv={args.cv}).fit(X_train)` "
            "on the first half:",
            "",
            markdown_row(["n_components", "energy_l2", "mean CV score", "rank"]),
            markdown_row(["---"] * 4),
            *(
                markdown_row([p["n_components"], p["energy_l2"], f"{m:.3f}", r])
                for p, m, r in zip(
                    search.cv_results_["params"],
                    search.cv_results_["mean_test_score"],
                    search.cv_results_["rank_test_score"],
                    strict=True,
                )
            ),
            "",
            f"Picked: {search.best_params_}; best by the long held-out estimate in part 2: {best}.",
        ]
    return lines


def clusterer_selection(X_train, X_test, y_test, grid, base, cv):
    """Part 4: ``GridSearchCV`` over ``n_clusters`` of GMMCEBMClusterer, without labels.

    Returns the search and, per ``n_clusters``, the held-out ``score`` and NMI against the
    test half's labels (used only to judge the pick) of one fit on the whole first half.
    """
    search = GridSearchCV(GMMCEBMClusterer(**base), grid, cv=cv).fit(X_train)
    held_out = {}
    for n_clusters in grid["n_clusters"]:
        model = GMMCEBMClusterer(**base, n_clusters=n_clusters).fit(X_train)
        nmi = normalized_mutual_info_score(y_test, model.predict(X_test))
        held_out[n_clusters] = (model.score(X_test), float(nmi))
        print(n_clusters, held_out[n_clusters], flush=True)
    return search, held_out


def clusterer_report(search, held_out, args):
    lines = [
        "# Choosing n_clusters without labels (benchmarks/model_selection.py --clusterer)",
        "",
        *machine_header(),
        f"- command: `{args.command}`",
        "",
        f"`GridSearchCV(GMMCEBMClusterer({args.base_text}), {args.grid}, cv={args.cv})` on "
        f"half the digits ({args.n_train} rows); then one fit per `n_clusters` on that half, "
        f"scored on the other ({args.n_test} rows): `score` and the NMI of `predict` against "
        "the labels (which the selection never sees).",
        "",
        markdown_row(["n_clusters", "mean CV score", "rank", "held-out score", "held-out NMI"]),
        markdown_row(["---"] * 5),
    ]
    results = search.cv_results_
    for params, mean, rank in zip(
        results["params"], results["mean_test_score"], results["rank_test_score"], strict=True
    ):
        score, nmi = held_out[params["n_clusters"]]
        lines.append(
            markdown_row([params["n_clusters"], f"{mean:.3f}", rank, f"{score:.3f}", f"{nmi:.3f}"])
        )
    lines += ["", f"Picked: {search.best_params_}."]
    return lines


# ----------------------------------------------------------------- part 5
def criteria_data(name):
    """``X, y`` of part 5: the digits, its classes 0-4 (``'digits0-4'``, 5 clusters), or
    2,000 Fashion-MNIST training images drawn at random (``'fashion-mnist-2000'``)."""
    if name == "fashion-mnist-2000":
        X, y = fashion_mnist_subset("train", 2000, np.random.default_rng(0))
        return X.astype(np.float64), y
    X, y = load_digits(return_X_y=True)
    if name == "digits0-4":
        X, y = X[y < 5], y[y < 5]
    return X, y


def fit_criteria(fit, X_held_out, y_all, X_all, with_score):
    """Criteria of one fit of the clusterer, on the half it was not fitted on."""
    labels = fit.predict(X_held_out)
    codes = fit.transform(X_held_out)
    criteria = {
        "nmi": float(normalized_mutual_info_score(y_all, fit.predict(X_all))),
        "clusters_used": len(np.unique(fit.labels_)),
        "modularity": neighbour_modularity(X_held_out, labels),
        "silhouette": float(silhouette_score(codes, labels)) if len(np.unique(labels)) > 1 else 0.0,
        "code_log_density": float(
            np.mean(
                gaussian_mixture_log_density(
                    codes, fit.cluster_means_, fit.cluster_stds_, fit.weights_
                )
            )
        ),
    }
    if with_score:
        criteria["score"] = float(fit.score(X_held_out))
    return criteria


def mixture_bic(features_a, features_b, n_clusters, seed):
    """BIC on half A and held-out mean log-likelihood on half B of a diagonal
    GaussianMixture with ``n_clusters`` components fitted to A."""
    mixture = GaussianMixture(n_clusters, covariance_type="diag", random_state=seed)
    mixture.fit(features_a)
    return float(mixture.bic(features_a)), float(mixture.score(features_b))


def criteria_for_seed(X, y, base, n_clusters, seed, with_score):
    """Every criterion of part 5 for one seed: one split into halves, two fits per value."""
    result = clustering_stability(
        GMMCEBMClusterer(**base),
        X,
        param_range=n_clusters,
        n_resamples=1,
        random_state=seed,
        return_estimators=True,
    )
    ((half_a, half_b),) = result["halves"]
    # The likelihood stage on its own: the clusterer's codes before any clustering.
    encoder_params = CEBMEncoder().get_params()
    encoder_base = {k: v for k, v in base.items() if k in encoder_params and k != "random_state"}
    encoder = CEBMEncoder(**encoder_base, random_state=seed).fit(X[half_a])
    scaler = StandardScaler().fit(encoder.transform(X[half_a]))
    codes_a = scaler.transform(encoder.transform(X[half_a]))
    codes_b = scaler.transform(encoder.transform(X[half_b]))
    kmeans = clustering_stability(
        KMeans(n_init=10), X, param_range=n_clusters, n_resamples=1, random_state=seed
    )
    per_value = []
    for index, value in enumerate(n_clusters):
        ((fit_a, fit_b),) = result["estimators"][index]
        on_b = fit_criteria(fit_a, X[half_b], y, X, with_score)
        on_a = fit_criteria(fit_b, X[half_a], y, X, False)
        row = {
            "n_clusters": int(value),
            "stability": float(result["stability"][index, 0]),
            "kmeans_pixels_stability": float(kmeans["stability"][index, 0]),
        }
        for key in on_a:
            row[key] = (on_a[key] + on_b[key]) / 2
        if with_score:
            row["score"] = on_b["score"]
        row["codes_bic"], row["codes_held_out"] = mixture_bic(codes_a, codes_b, value, seed)
        row["pixels_bic"], row["pixels_held_out"] = mixture_bic(X[half_a], X[half_b], value, seed)
        per_value.append(row)
        print(seed, row, flush=True)
    return per_value


# Criteria of part 5, with whether a higher value is better.
CRITERIA = {
    "stability": ("stability (ARI of the halves' fits)", True),
    "score": ("held-out log-likelihood (score)", True),
    "modularity": ("held-out neighbour-graph modularity", True),
    "silhouette": ("held-out silhouette of the codes", True),
    "code_log_density": ("codes' held-out log-density under the fit's mixture", True),
    "codes_bic": ("BIC of a GaussianMixture on the likelihood codes", False),
    "codes_held_out": ("held-out log-likelihood of that GaussianMixture", True),
    "pixels_bic": ("BIC of a GaussianMixture on the pixels", False),
    "kmeans_pixels_stability": ("stability of KMeans on the pixels", True),
}


def criteria_report(runs, args):
    """Markdown of part 5: per criterion and value the mean over seeds, and the picks."""
    seeds = sorted(runs)
    values = [row["n_clusters"] for row in runs[seeds[0]]]
    keys = [key for key in CRITERIA if key in runs[seeds[0]][0]]

    def mean(key, index):
        return float(np.mean([runs[seed][index][key] for seed in seeds]))

    lines = [
        "# Choosing n_clusters without labels: criteria (benchmarks/model_selection.py "
        "--clusterer --criteria)",
        "",
        *machine_header(),
        f"- command: `{args.command}`",
        "",
        f"Data: {args.data} ({args.n_rows} rows, {args.n_classes} classes). Per seed, the rows "
        "are split at random into two halves and `GMMCEBMClusterer("
        f"{args.base_text})` is fitted on each, with seeds drawn from the seed "
        "(`clustering_stability(..., n_resamples=1, random_state=seed)`). Held-out criteria "
        "are the mean of the two fits, each on the half it was not fitted on (the score: "
        "the first fit's only). NMI is against the labels, which no criterion sees. Means "
        f"over seeds {seeds}.",
        "",
        markdown_row(["n_clusters", "NMI", "clusters used", *keys]),
        markdown_row(["---"] * (3 + len(keys))),
    ]
    for index, value in enumerate(values):
        cells = [value, f"{mean('nmi', index):.3f}", f"{mean('clusters_used', index):.1f}"]
        cells += [f"{mean(key, index):.3f}" for key in keys]
        lines.append(markdown_row(cells))
    lines += ["", "Picks (the best value of each criterion), per seed and on the mean:", ""]
    lines += [
        markdown_row(["criterion", *map(str, seeds), "mean"]),
        markdown_row(["---"] * (2 + len(seeds))),
    ]
    for key in keys:
        name, higher = CRITERIA[key]
        pick = np.argmax if higher else np.argmin
        per_seed = [values[pick([row[key] for row in runs[seed]])] for seed in seeds]
        on_mean = values[pick([mean(key, index) for index in range(len(values))])]
        lines.append(markdown_row([name, *per_seed, on_mean]))
    best = values[int(np.argmax([mean("nmi", index) for index in range(len(values))]))]
    lines += ["", f"True number of classes: {args.n_classes}; best by NMI on the mean: {best}."]
    return lines


# --quick: a clusterer small enough for the smoke tests.
QUICK_CLUSTERER = dict(
    max_iter=1,
    hidden_layer_sizes=(16,),
    n_components=4,
    clustering_updates=5,
    batch_size=50,
    buffer_size=100,
)


def main_criteria(args):
    X, y = criteria_data(args.data)
    base = dict(random_state=0, device="cpu", n_init=args.n_init)
    n_clusters = args.n_clusters
    if args.quick:
        X, y = X[:200], y[:200]
        n_clusters = n_clusters[:3]
        base = dict(base, **QUICK_CLUSTERER)
    args.base_text = ", ".join(f"{k}={v!r}" for k, v in base.items() if k != "random_state")
    args.n_rows, args.n_classes = len(X), len(np.unique(y))
    runs = {}
    for seed in args.seeds:
        runs[seed] = criteria_for_seed(X, y, base, n_clusters, seed, not args.no_score)
        lines = criteria_report(runs, args)
        write_lines(lines, args.output)
        if args.output is not None:
            with open(args.output.rsplit(".", 1)[0] + ".json", "w") as out:
                json.dump(
                    {"machine": machine_info(), "command": args.command, "runs": runs},
                    out,
                    indent=2,
                )
    print("\n".join(lines))
    return runs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny grid, few epochs, short AIS")
    parser.add_argument(
        "--clusterer", action="store_true", help="only part 4: n_clusters of GMMCEBMClusterer"
    )
    parser.add_argument(
        "--criteria", action="store_true", help="with --clusterer: part 5, criteria for n_clusters"
    )
    parser.add_argument(
        "--data", default="digits", choices=["digits", "digits0-4", "fashion-mnist-2000"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--n-clusters", type=int, nargs="+", default=list(range(4, 17)), help="values compared"
    )
    parser.add_argument("--n-init", type=int, default=3, help="the clusterer's n_init")
    parser.add_argument("--no-score", action="store_true", help="skip the AIS held-out score")
    parser.add_argument("--output", default=None, help="markdown report; a .json beside it")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.command = "python benchmarks/model_selection.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    torch.set_num_threads(1)
    quick = args.quick
    if args.clusterer and args.criteria:
        return main_criteria(args)
    if args.clusterer:
        return main_clusterer(args)
    default, long_effort = dict(), dict(n_chains=400, n_temperatures=10000)
    if quick:
        default, long_effort = (
            dict(n_chains=20, n_temperatures=20),
            dict(n_chains=40, n_temperatures=40),
        )
    efforts = [("default (100 x 'auto')", default), ("long (400 x 10000)", long_effort)]
    known = [] if quick else known_answers(efforts)
    X_train, _, X_test, _ = digits_halves(random_state=0)
    grid, base = GRID, dict(max_iter=30, random_state=0, device="cpu")
    if quick:
        # 16 of the pixels: 'auto' then anneals through 512 temperatures, not 2,048.
        X_train, X_test = X_train[:150, 24:40], X_test[:60, 24:40]
        grid = {"n_components": [2, 4, 8], "energy_l2": [5e-3]}
        base = dict(base, max_iter=1, hidden_layer_sizes=(16,), batch_size=50, buffer_size=100)
    args.base_text = ", ".join(f"{k}={v!r}" for k, v in base.items())
    args.long_text = ", ".join(f"{k}={v}" for k, v in long_effort.items())
    args.n_train, args.n_test, args.grid = len(X_train), len(X_test), grid
    args.cv = 2 if quick else 3
    rows, outside = ranking(X_train, X_test, dict(base, grid=grid), long_effort)
    args.references = references(X_train, X_test, base)
    search = GridSearchCV(CEBMEncoder(**base), grid, cv=args.cv).fit(X_train)
    lines = report(known, rows, outside, search, args)
    print("\n".join(lines))
    if args.output is not None:
        write_lines(lines, args.output)
        with open(args.output.rsplit(".", 1)[0] + ".json", "w") as out:
            json.dump(
                {
                    "machine": machine_info(),
                    "command": args.command,
                    "known_answers": known,
                    "ranking": rows,
                    "test_rows_outside_the_box": outside,
                    "references": args.references,
                    "grid_search": {
                        "params": search.cv_results_["params"],
                        "mean_test_score": search.cv_results_["mean_test_score"].tolist(),
                        "best_params": search.best_params_,
                    },
                },
                out,
                indent=2,
            )
    return rows


def main_clusterer(args):
    X_train, _, X_test, y_test = digits_halves(random_state=0)
    grid, base = {"n_clusters": [5, 10, 15, 20]}, dict(random_state=0, device="cpu")
    if args.quick:
        X_train, X_test, y_test = X_train[:150], X_test[:60], y_test[:60]
        grid = {"n_clusters": [2, 3]}
        base = dict(base, **QUICK_CLUSTERER, n_init=1)
    args.base_text = ", ".join(f"{k}={v!r}" for k, v in base.items())
    args.n_train, args.n_test, args.grid = len(X_train), len(X_test), grid
    args.cv = 2 if args.quick else 3
    search, held_out = clusterer_selection(X_train, X_test, y_test, grid, base, args.cv)
    lines = clusterer_report(search, held_out, args)
    print("\n".join(lines))
    write_lines(lines, args.output)
    return held_out


if __name__ == "__main__":
    main()
