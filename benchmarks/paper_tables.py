"""The CEBM paper's Fashion-MNIST evaluation (Tables 1-3, Fig. 2-3) under a wall-clock budget.

Trains CEBM, GMM-CEBM, IGEBM, VAE, GMM-VAE and BiGAN with their defaults (each for
``--budget`` seconds of training) and the non-neural baselines (raw pixels, PCA,
scikit-learn's BernoulliRBM) on Fashion-MNIST, and writes to ``--output`` (default
``benchmarks/results/paper_tables``):

- ``results.md``: Table 1 (OOD AUROC, both scores), Table 2 (few-label accuracy, also on
  standardised features), Table 3 (aggregate-posterior KL and MI), the nearest-neighbour
  agreement, the quality of each generative model's samples, and the wall-clock and
  iterations of every model, with the paper's numbers beside ours, every setting, the
  command and the machine;
- ``results.json``: the same numbers;
- ``samples_<model>.png``: 500 SGLD steps from uniform noise for each EBM (Fig. 2),
  decoded prior draws for the VAEs, generated ones for the BiGAN; ``few_label.png``.

Run from the repository root (needs the ``benchmark`` extra for matplotlib)::

    python benchmarks/paper_tables.py --budget 1200      # 20 minutes per model
    python benchmarks/paper_tables.py --quick            # a few minutes

A run longer than one sitting can be split: ``--models`` trains some of the models and
``--keep-previous`` keeps the rows of the others from ``--output``'s results.json (the
data, budget and seed must match), each under the header of the call that trained it::

    python benchmarks/paper_tables.py --budget 1200 --models CEBM GMM-CEBM IGEBM
    python benchmarks/paper_tables.py --budget 1200 --keep-previous \
        --models VAE GMM-VAE BIGAN pixels PCA RBM

``--data synthetic`` swaps Fashion-MNIST for a tiny synthetic stand-in (for the smoke test
on machines without the dataset).
"""

import argparse
import dataclasses
import json
import math
import shlex
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _common import (
    IMAGE_SHAPE,
    TrainingClock,
    constant_images,
    flipped_images,
    load_images,
    machine_header,
    training_iterations,
    uniform_noise,
    upscaled_digits,
)
from sklearn.decomposition import PCA
from sklearn.neural_network import BernoulliRBM
from tqdm.auto import tqdm

from sklearn_cebm import (
    BIGANEncoder,
    CEBMEncoder,
    GMMCEBMClusterer,
    GMMVAEClusterer,
    IGEBMEncoder,
    TrainingDivergedError,
    VAEEncoder,
)
from sklearn_cebm.evaluation import (
    aggregate_posterior_kl_and_mi,
    few_label_accuracy,
    gaussian_mixture_log_density,
    nearest_neighbour_agreement,
    ood_auroc,
    sample_quality,
    sample_quality_classifier,
)

OOD_SETS = ("constant", "uniform noise", "digits 28x28", "flipped F-MNIST")
BUDGETS = (1, 10, 100, None)

# The paper's Fashion-MNIST numbers (Wu et al., 2021). Table 1's OOD sets are MNIST,
# E-MNIST and constant images: only "constant" is among ours. Table 2 in percent.
PAPER_TABLE_1 = {  # (log p(x) AUROC on constant, gradient-norm AUROC on constant)
    "VAE": (0.09, 0.01),
    "IGEBM": (0.90, 0.96),
    "CEBM": (0.90, 0.98),
    "GMM-CEBM": (0.92, 0.95),
}
PAPER_TABLE_1_MNIST = {  # (log p, grad norm) against MNIST, the nearest to our digits set
    "VAE": (0.50, 0.61),
    "IGEBM": (0.35, 0.78),
    "CEBM": (0.37, 0.82),
    "GMM-CEBM": (0.56, 0.56),
}
PAPER_TABLE_2 = {
    "VAE": (41, 63, 72, 81),
    "GMM-VAE": (49, 68, 79, 84),
    "BIGAN": (46, 65, 75, 81),
    "IGEBM": (50, 70, 79, 83),
    "CEBM": (52, 70, 77, 83),
    "GMM-CEBM": (52, 70, 80, 85),
}
PAPER_TABLE_3 = {"VAE": (3.5, 9.0), "CEBM": (0.6, 0.4), "GMM-CEBM": (8.1, 3.9)}
# The generative models, whose samples are drawn, shown and measured.
GENERATIVE = ("CEBM", "GMM-CEBM", "IGEBM", "VAE", "GMM-VAE", "BIGAN", "RBM")
# The first stage of the two-stage models, as a share of the epochs their budget allows
# (measured on the model trained before them with the same networks): the GMM-CEBM's
# likelihood stage (its clustering stage gets the rest of the budget), and the GMM-VAE's
# warm-up (its defaults' share: 50 of 300 epochs).
LIKELIHOOD_STAGE_SHARE = 0.8
GMM_VAE_WARMUP_SHARE = 50 / 300
# Components of PCA and the RBM where --n-components leaves the neural models' defaults.
BASELINE_COMPONENTS = 128


# ----------------------------------------------------------------- data
def ood_sets(X_test, n, rng):
    """The four out-of-distribution sets of ``n`` images each, in 0-255, against the first
    ``n`` test images; the flipped ones are ``n`` test images drawn with replacement."""
    inliers = X_test[:n]
    # Drawn in the order of the committed results.
    digits = upscaled_digits(inliers, rng)
    flipped = flipped_images(X_test[rng.choice(len(X_test), n)], rng)
    return {
        "constant": constant_images(inliers, rng),
        "uniform noise": uniform_noise(inliers, rng),
        "digits 28x28": digits,
        "flipped F-MNIST": flipped,
    }


# ----------------------------------------------------------------- training under a budget
def staged_settings(name, training, args):
    """The first stage's epochs of a two-stage model, from the epochs per second of the
    model trained before it on the same networks: {} where that model was not run.

    The GMM-CEBM's likelihood stage is a CEBM's training with the mixture bias: it gets
    ``LIKELIHOOD_STAGE_SHARE`` of the CEBM's epochs per budget, and the clock stops its
    clustering stage (and the fit) at the budget. The GMM-VAE's warm-up is a VAE's
    training: ``GMM_VAE_WARMUP_SHARE`` of the VAE's epochs.
    """
    before, setting, share = {
        "GMM-CEBM": ("CEBM", "max_iter", LIKELIHOOD_STAGE_SHARE),
        "GMM-VAE": ("VAE", "warmup_iter", GMM_VAE_WARMUP_SHARE),
    }.get(name, (None, None, None))
    info = training.get(before)
    if info is None or info["epochs"] == "-":
        return {}
    epochs_per_budget = info["epochs"] * args.budget / info["seconds"]
    return {setting: max(1, math.floor(share * epochs_per_budget))}


def _defaults(cls, **settings):
    """``settings`` without those left to ``cls``'s defaults (None) or not its own."""
    names = cls().get_params()
    return {name: value for name, value in settings.items() if value is not None and name in names}


def neural_models(args):
    """The neural models with today's defaults, each with the budget callback.

    Beside the data's shape, the seed and the CPU, only what the command sets
    (``--n-components``, ``--batch-size``, ``--sgld-steps``, ``--learning-rate``; the
    defaults where not given) and what a budget needs: ``max_iter`` large, the clock
    stopping training. The GMM-CEBM's likelihood epochs and the GMM-VAE's warm-up are set
    at run time (:func:`staged_settings`).
    """
    common = dict(
        image_shape=IMAGE_SHAPE,
        n_components=args.n_components,
        batch_size=args.batch_size,
        max_iter=10_000,  # the wall-clock budget stops training
        random_state=args.seed,
        device="cpu",
    )
    ebm = dict(common, sgld_steps=args.sgld_steps, learning_rate=args.learning_rate)

    def budget(name):
        return [TrainingClock(args.budget, description=f"train {name}")]

    return {
        "CEBM": CEBMEncoder(**_defaults(CEBMEncoder, **ebm), callbacks=budget("CEBM")),
        "GMM-CEBM": GMMCEBMClusterer(
            **_defaults(GMMCEBMClusterer, **ebm), n_clusters=10, callbacks=budget("GMM-CEBM")
        ),
        "IGEBM": IGEBMEncoder(**_defaults(IGEBMEncoder, **ebm), callbacks=budget("IGEBM")),
        "VAE": VAEEncoder(**_defaults(VAEEncoder, **common), callbacks=budget("VAE")),
        "GMM-VAE": GMMVAEClusterer(
            **_defaults(GMMVAEClusterer, **common), n_clusters=10, callbacks=budget("GMM-VAE")
        ),
        "BIGAN": BIGANEncoder(**_defaults(BIGANEncoder, **common), callbacks=budget("BIGAN")),
    }


class RBMDensity:
    """BernoulliRBM on pixels / 255 with ``score_samples`` = minus the free energy.

    The free energy ``F(v) = -b^T v - sum_j softplus(W_j v + c_j)`` is the RBM's exact
    unnormalised ``-log p(v)``; scikit-learn's own ``score_samples`` is a stochastic
    pseudo-likelihood.
    """

    def __init__(self, rbm):
        self.rbm = rbm

    def fit(self, X):
        self.rbm.fit(X / 255.0)
        return self

    def transform(self, X):
        return self.rbm.transform(X / 255.0)

    def score_samples(self, X):
        v = X / 255.0
        hidden = v @ self.rbm.components_.T + self.rbm.intercept_hidden_
        return v @ self.rbm.intercept_visible_ + np.logaddexp(0, hidden).sum(axis=1)


# ----------------------------------------------------------------- evaluation
# Why a model has no row in Table 3.
NO_POSTERIOR = {
    "IGEBM": "a scalar energy: no latent variable, no posterior",
    "RBM": "binary hidden units, not a Gaussian posterior",
    "PCA": "no posterior",
    "pixels": "no posterior",
}


def posterior_kl_and_mi(name, model, X, seed):
    """Table 3 for the models with Gaussian posteriors; ``None`` for the others.

    The prior is the model's: ``N(0, I)`` for the CEBM's bias, the VAE and the BiGAN; the
    learned mixture for the GMM-CEBM and the GMM-VAE, whose posterior, a mixture, is taken
    as the diagonal Gaussian ``transform(return_std=True)`` gives (the GMM-CEBM's under
    each sample's most probable component; the GMM-VAE's encoder is one Gaussian).
    """
    if name in NO_POSTERIOR:
        return None
    mean, std = model.transform(X, return_std=True)
    prior = None
    if name in ("GMM-CEBM", "GMM-VAE"):
        prior = partial(
            gaussian_mixture_log_density,
            means=model.cluster_means_,
            stds=model.cluster_stds_,
            weights=model.weights_,
        )
    kl, mi = aggregate_posterior_kl_and_mi(
        mean, std, batch_size=min(1000, len(X)), prior_log_density=prior, random_state=seed
    )
    return {"kl": float(kl), "mi": float(mi)}


def ood_table(model, X_in, outliers):
    """AUROC for each OOD set with each score the model has."""
    scores = {}
    for score, method in (
        ("log_density", "score_samples"),
        ("gradient_norm", "score_gradient_norm"),
    ):
        if not hasattr(model, method):
            continue
        scores[score] = {
            name: ood_auroc(model, X_in, X_out, score) for name, X_out in outliers.items()
        }
    return scores


def _budgets(y_train):
    """The paper's budgets that every class has enough examples for."""
    smallest = np.bincount(y_train).min()
    return tuple(budget for budget in BUDGETS if budget is None or budget <= smallest)


def _few_label(features_train, y_train, features_test, y_test, args, standardize):
    """Table 2's protocol; the "full" column on the first ``n_full`` training images."""
    budgets = [budget for budget in _budgets(y_train) if budget is not None]
    settings = dict(n_draws=args.n_draws, standardize=standardize, random_state=args.seed)
    accuracies = few_label_accuracy(
        features_train, y_train, features_test, y_test, labels_per_class=budgets, **settings
    )
    full = few_label_accuracy(
        features_train[: args.n_full],
        y_train[: args.n_full],
        features_test,
        y_test,
        labels_per_class=(None,),
        **settings,
    )
    return {**accuracies, **full}


def draw_samples(name, model, n_samples, args):
    """``n_samples`` samples of a generative model and the grid's title; None for others.

    The EBMs' by SGLD from uniform noise (Fig. 2), the VAEs' and the BiGAN's by decoding
    prior draws, the RBM's by Gibbs sampling from noise.
    """
    if name in ("CEBM", "GMM-CEBM", "IGEBM"):
        images = model.sample(n_samples, n_steps=args.sample_steps, random_state=args.seed)
        return images, f"{name}: {args.sample_steps} SGLD steps from noise"
    if name in ("VAE", "GMM-VAE", "BIGAN"):
        what = "generated" if name == "BIGAN" else "decoded"
        return model.sample(n_samples, random_state=args.seed), f"{name}: {what} prior draws"
    if name == "RBM":
        rbm = model.rbm
        v = np.random.default_rng(args.seed).uniform(size=(n_samples, 784)) < 0.5
        v = v.astype(float)
        for _ in range(args.sample_steps):
            v = rbm.gibbs(v)
        return 255.0 * v, f"RBM: {args.sample_steps} Gibbs steps from noise"
    return None


def quality_reference(data, args):
    """The real images the samples are compared with, and real ones to score alike.

    The test images past the first ``--n-quality``, which are scored as if generated: the
    row that shows what the measure gives real held-out images. With too few test images
    for both, all of them are the reference and no real row is scored.
    """
    X_test = data[2]
    if len(X_test) >= 2 * args.n_quality:
        return X_test[args.n_quality :], X_test[: args.n_quality]
    return X_test, None


def score_samples_quality(images, data, args):
    """:func:`sample_quality` of ``images`` (clipped to the pixels' range), as a dict.

    Every model's samples are labelled by the same classifier, fitted once
    (``args.quality_classifier``).
    """
    X_train, y_train = data[0], data[1]
    reference, _ = quality_reference(data, args)
    subset_size = min(200, len(images), len(reference))
    quality = sample_quality(
        np.clip(images, 0.0, 255.0),
        X_train,
        y_train,
        X_reference=reference,
        classifier=args.quality_classifier,
        subset_size=subset_size,
        random_state=args.seed,
    )
    return {key: float(value) for key, value in dataclasses.asdict(quality).items()}


def measure_samples(name, model, data, args):
    """:func:`sample_quality` of ``--n-quality`` samples, and the grid of the first
    ``--n-images``; None for a model that does not generate."""
    drawn = draw_samples(name, model, max(args.n_quality, args.n_images), args)
    if drawn is None:
        return None
    images, title = drawn
    save_grid(images[: args.n_images], args.output / f"samples_{name.lower()}.png", title)
    if args.n_quality == 0:
        return None
    return score_samples_quality(images[: args.n_quality], data, args)


def evaluate(name, model, data, outliers, args):
    X_train, y_train, X_test, y_test = data
    features_train, features_test = model.transform(X_train), model.transform(X_test)
    result = {
        "few_label": _few_label(features_train, y_train, features_test, y_test, args, False),
        "few_label_standardized": _few_label(
            features_train, y_train, features_test, y_test, args, True
        ),
        "nn_agreement": nearest_neighbour_agreement(features_test, y_test)[0],
        "ood": ood_table(model, X_test[: args.n_ood], outliers) if name != "pixels" else {},
        "kl_mi": posterior_kl_and_mi(name, model, X_train[: args.n_kl], args.seed),
        "samples": measure_samples(name, model, data, args),
    }
    return result


class Pixels:
    """Raw pixels / 255 as features."""

    def fit(self, X):
        return self

    def transform(self, X):
        return X / 255.0


# ----------------------------------------------------------------- plots
def save_grid(images, path, title):
    import matplotlib.pyplot as plt

    n = len(images)
    columns = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.ones((rows * 29, columns * 29))
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        grid[r * 29 : r * 29 + 28, c * 29 : c * 29 + 28] = (
            np.clip(image.reshape(28, 28), 0, 255) / 255
        )
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.imshow(grid, cmap="gray", vmin=0, vmax=1)
    axis.set_title(title)
    axis.axis("off")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def save_few_label_plot(results, path):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    labels = ["1", "10", "100", "full"]
    for name, result in results.items():
        means = [100 * result["few_label"].get(budget, (np.nan,))[0] for budget in BUDGETS]
        axis.plot(labels, means, marker="o", label=name)
    axis.set_xlabel("labelled examples per class")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Few-label accuracy on Fashion-MNIST (logistic regression)")
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


# ----------------------------------------------------------------- the written tables
def _pct(pair):
    if pair is None:
        return "-"
    return f"{100 * pair[0]:.1f} ± {100 * pair[1]:.1f}"


def _paper(value, fmt="{:.2f}"):
    return "n/a" if value is None else fmt.format(value)


def table_1(results):
    lines = []
    for index, (score, title) in enumerate(
        (("log_density", "log p(x)"), ("gradient_norm", "||d log p(x) / dx||"))
    ):
        lines += [
            f"**Score: {title}** (paper: trained on F-MNIST; its sets MNIST, E-MNIST, constant)",
            "",
            "| model | constant | paper: constant | uniform noise | digits 28x28 "
            "| paper: MNIST | flipped F-MNIST |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, result in results.items():
            ours = result["ood"].get(score)
            if ours is None:
                continue
            paper_c = PAPER_TABLE_1.get(name, (None, None))[index]
            paper_m = PAPER_TABLE_1_MNIST.get(name, (None, None))[index]
            lines.append(
                f"| {name} | {ours['constant']:.2f} | {_paper(paper_c)} "
                f"| {ours['uniform noise']:.2f} | {ours['digits 28x28']:.2f} "
                f"| {_paper(paper_m)} | {ours['flipped F-MNIST']:.2f} |"
            )
        lines.append("")
    return lines


def table_2(results, key):
    lines = [
        "| model | 1 | 10 | 100 | full | paper: 1 / 10 / 100 / full |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        ours = " | ".join(_pct(result[key].get(budget)) for budget in BUDGETS)
        paper = PAPER_TABLE_2.get(name)
        paper = " / ".join(str(v) for v in paper) if paper else "not in the paper"
        lines.append(f"| {name} | {ours} | {paper} |")
    return [*lines, ""]


def table_3(results):
    lines = ["| model | KL | MI | paper: KL | paper: MI |", "|---|---|---|---|---|"]
    for name, result in results.items():
        paper = PAPER_TABLE_3.get(name, (None, None))
        if result["kl_mi"] is None:
            lines.append(f"| {name} | - | - | {NO_POSTERIOR.get(name, '')} | |")
            continue
        lines.append(
            f"| {name} | {result['kl_mi']['kl']:.2f} | {result['kl_mi']['mi']:.2f} "
            f"| {_paper(paper[0], '{:.1f}')} | {_paper(paper[1], '{:.1f}')} |"
        )
    return [*lines, ""]


def sample_table(results, real):
    lines = [
        "| model | class coverage | mean confidence | KID (std) |",
        "|---|---|---|---|",
    ]
    rows = {"real test images": {"samples": real}} if real is not None else {}
    for name, result in {**rows, **results}.items():
        quality = result.get("samples")
        if quality is None:
            continue
        lines.append(
            f"| {name} | {quality['coverage']:.3f} | {quality['mean_confidence']:.3f} "
            f"| {quality['kid']:.4f} ({quality['kid_std']:.4f}) |"
        )
    return [*lines, ""]


def write_markdown(path, results, training, args, header, real=None):
    components = args.n_components or BASELINE_COMPONENTS
    lines = [
        "# The CEBM paper's Fashion-MNIST tables, measured",
        "",
        *header,
        "",
        "## Training: wall-clock and iterations",
        "",
        "| model | settings | training seconds | epochs | iterations (updates) |",
        "|---|---|---|---|---|",
    ]
    for name, info in training.items():
        lines.append(
            f"| {name} | {info['settings']} | {info['seconds']:.0f} | {info['epochs']} "
            f"| {info['iterations']} |"
        )
    lines += [
        "",
        "Each neural model trains with its estimator's defaults (beside `image_shape`, the "
        "seed, the CPU and what the command sets) until its budget of wall-clock seconds "
        "is spent, stopping after the batch that passes it. Two models train in two "
        "stages, the first for a share of the epochs the budget allowed the model before "
        "them on the same networks: the GMM-CEBM's likelihood stage "
        f"({LIKELIHOOD_STAGE_SHARE:.0%} of the CEBM's epochs; `max_iter` in its settings), "
        "then its clustering stage until the budget is spent; the GMM-VAE's warm-up (a "
        f"plain VAE before its mixture is placed; {GMM_VAE_WARMUP_SHARE:.3g} of the VAE's "
        "epochs, its defaults' share, 50 of 300; `warmup_iter`). The paper trains each "
        "EBM for 90k iterations of 60 SGLD steps at batch size 128.",
        "",
        "Warnings raised in training (a sampler's or a game's diagnosis, empty clusters):",
        "",
        *(
            f"- {name}: {'; '.join(info.get('warnings', [])) or 'none'}"
            for name, info in training.items()
        ),
        "",
        "## Table 1: OOD detection AUROC (in: Fashion-MNIST test)",
        "",
        f"{args.n_ood} in-distribution test images against {args.n_ood} images of each "
        "set. Higher is better; 0.5 is chance. The paper's Fashion-MNIST block tests on "
        "MNIST, E-MNIST and constant images: only *constant* is shared; its MNIST column "
        "stands beside our upscaled scikit-learn digits as the nearest match. Uniform noise "
        "and flipped Fashion-MNIST are not in the paper. For the VAE, log p(x) is the ELBO; "
        "for PCA its probabilistic-PCA likelihood; for the RBM minus its free energy.",
        "",
        *table_1(results),
        "## Table 2: few-label accuracy (%)",
        "",
        f"Logistic regression on the features of 1, 10, 100 labelled training images per "
        f"class ({args.n_draws} draws; mean ± std) and of the first "
        f"{min(args.n_full, args.n_train)} training images for *full* (one fit), scored "
        f"on {args.n_test} test images. Features: posterior means "
        "(CEBM, VAE, GMM-VAE, BiGAN; the most probable component's for the GMM-CEBM), the last "
        "hidden layer "
        f"(IGEBM), pixels / 255, {components} PCA components, {components} RBM "
        "hidden probabilities.",
        "",
        "### As in the paper (raw features)",
        "",
        *table_2(results, "few_label"),
        "### Standardised features (StandardScaler fitted on the labelled subset)",
        "",
        *table_2(results, "few_label_standardized"),
        "## Table 3: KL(aggregate posterior || bias) and I(x; z)",
        "",
        f"Monte Carlo over batches of 1,000 of {args.n_kl} training images (Esmaeili et al., "
        "2019). The prior is N(0, I) for the CEBM, the VAE and the BiGAN, the learned mixture "
        "for the GMM-CEBM and the GMM-VAE; the GMM-CEBM's posterior is taken under each "
        "image's most probable component. The MI is at most log of the images (here "
        f"{math.log(args.n_kl):.2f}), which near-deterministic encoders (the BiGAN's) reach, "
        "their KL then growing with the narrowness of their posteriors.",
        "",
        *table_3(results),
        "## Nearest-neighbour agreement (Fig. 3)",
        "",
        f"Fraction of the {args.n_test} test images whose nearest other test image in "
        "feature space (L2) has the same label. The paper gives this only for CIFAR-10 "
        "(VAE 0.38, CEBM 0.45), not for Fashion-MNIST.",
        "",
        "| model | agreement |",
        "|---|---|",
        *(f"| {name} | {result['nn_agreement']:.3f} |" for name, result in results.items()),
        "",
        "## Samples and their quality",
        "",
        f"{args.n_images} samples per EBM after {args.sample_steps} SGLD steps from uniform "
        "noise (as Fig. 2); the VAEs' are decoded prior draws, the BiGAN's generated ones, "
        f"the RBM's {args.sample_steps} Gibbs steps from noise.",
        "",
        f"Quality of {args.n_quality} samples per model "
        "(`sklearn_cebm.evaluation.sample_quality`): an MLP classifier fitted to the "
        "training images with their labels labels the samples; *class coverage* is the "
        "entropy of its labels' histogram over log 10 (1: every class equally), *mean "
        "confidence* its mean largest class probability, *KID* the kernel inception "
        "distance between its last hidden layer's features of the samples and of held-out "
        "test images (0 for samples like them; unbiased, mean and std over 50 subsets of "
        "200). The row *real test images* scores held-out test images the same way.",
        "",
        *sample_table(results, real),
        *(
            f"![{name}](samples_{name.lower()}.png)"
            for name in results
            if name not in ("PCA", "pixels")
        ),
        "",
    ]
    path.write_text("\n".join(lines))


# ----------------------------------------------------------------- main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--budget", type=float, default=240.0, help="training seconds per neural model"
    )
    parser.add_argument("--n-train", type=int, default=60_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-ood", type=int, default=2000, help="images per OOD set and in-set")
    parser.add_argument("--n-kl", type=int, default=10_000, help="training images for Table 3")
    parser.add_argument("--n-draws", type=int, default=10)
    parser.add_argument(
        "--n-full", type=int, default=60_000, help="training images of the 'full' column"
    )
    # None: each estimator's default.
    parser.add_argument("--n-components", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--sgld-steps", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None, help="for the EBMs")
    # KID is unbiased at a few hundred samples; each EBM's draws take --sample-steps SGLD
    # steps, about two minutes for 300 on the conv net on two cores.
    parser.add_argument(
        "--n-quality", type=int, default=300, help="samples per model for their quality"
    )
    parser.add_argument("--sample-steps", type=int, default=500)
    parser.add_argument("--n-images", type=int, default=64, help="samples per grid")
    parser.add_argument("--rbm-iter", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=("fashion-mnist", "synthetic"), default="fashion-mnist")
    parser.add_argument("--models", nargs="*", default=None, help="subset of the model names")
    parser.add_argument(
        "--keep-previous",
        action="store_true",
        help="keep the rows of the models this run does not train from --output's "
        "results.json (a run split over several calls; the settings must match)",
    )
    parser.add_argument("--quick", action="store_true", help="small subsets and a tiny budget")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/paper_tables"))
    args = parser.parse_args(argv)
    if args.quick:
        quick = dict(
            budget=10.0,
            n_train=2000,
            n_test=500,
            n_ood=200,
            n_kl=1000,
            n_draws=3,
            n_components=32,
            sample_steps=50,
            n_images=16,
            n_quality=200,
            rbm_iter=2,
        )
        for key, value in quick.items():
            # Explicit flags win over the quick defaults.
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    return args


# The settings every part of a run split over several calls must share.
SHARED_SETTINGS = ("data", "n_train", "n_test", "budget", "seed", "n_ood", "n_kl", "n_quality")


def previous_rows(args, order):
    """``(results, training)`` of the models in ``--output``'s results.json that this call
    does not train, where ``--keep-previous`` asks for them; empty dicts otherwise.

    Raises
    ------
    ValueError
        If the previous call's shared settings (:data:`SHARED_SETTINGS`) differ.
    """
    path = args.output / "results.json"
    if not (args.keep_previous and path.exists()):
        return {}, {}
    payload = json.loads(path.read_text())
    previous = payload["args"]
    differ = [
        f"{key}={previous.get(key)} (now {getattr(args, key)})"
        for key in SHARED_SETTINGS
        if previous.get(key) != str(getattr(args, key))
    ]
    if differ:
        raise ValueError(f"--keep-previous: {path} was measured with {', '.join(differ)}.")
    kept = [name for name in payload["training"] if name not in order]
    results = {name: payload["results"][name] for name in kept if name in payload["results"]}
    return results, {name: payload["training"][name] for name in kept}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    data = load_images(args.data, args.n_train, args.n_test, rng)
    args.n_train, args.n_test = len(data[0]), len(data[2])
    outliers = ood_sets(data[2], args.n_ood, rng)
    components = args.n_components or BASELINE_COMPONENTS
    baselines = {
        "pixels": Pixels(),
        "PCA": PCA(n_components=components, random_state=args.seed),
        "RBM": RBMDensity(
            BernoulliRBM(
                n_components=components,
                learning_rate=0.05,
                n_iter=args.rbm_iter,
                random_state=args.seed,
            )
        ),
    }
    # The neural models first: their rows matter most if a long run is cut short.
    models = {**neural_models(args), **baselines}
    order = list(models)
    if args.models:
        models = {name: model for name, model in models.items() if name in args.models}
    kept_results, kept_training = previous_rows(args, models)
    header = _header(args, argv)
    _, real_images = quality_reference(data, args)
    real = args.quality_classifier = None
    if args.n_quality > 0:
        args.quality_classifier = sample_quality_classifier(
            data[0], data[1], random_state=args.seed
        )
        if real_images is not None:
            real = score_samples_quality(real_images, data, args)
    results, training = {}, {}

    def write():
        # In the models' own order, whichever call trained them.
        merged_training = {**kept_training, **training}
        merged_results = {**kept_results, **results}
        _write_all(
            args,
            {name: merged_results[name] for name in order if name in merged_results},
            {name: merged_training[name] for name in order if name in merged_training},
            real,
        )

    stages = tqdm(models.items(), desc="models", total=len(models))
    for name, model in stages:
        stages.set_postfix_str(name)
        staged = staged_settings(name, {**kept_training, **training}, args)
        if staged:
            model.set_params(**staged)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            # Recorded in the results: a sampler's or a game's diagnosis, empty clusters.
            warnings.simplefilter("always")
            try:
                model.fit(data[0])
                error = None
            except TrainingDivergedError as diverged:
                error = diverged
        seconds = time.perf_counter() - start
        info = {
            "seconds": seconds,
            "epochs": "-",
            "iterations": "-",
            "settings": _settings(name, model, args),
            "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
            "header": header,
        }
        if error is not None:
            # A diverged model is a result too: say so in the table and go on.
            info["settings"] += f"; **diverged**: {error}"
            training[name] = info
            write()
            continue
        if hasattr(model, "history_"):
            info.update(epochs=len(model.history_), iterations=training_iterations(model))
        elif name == "RBM":
            info.update(epochs=args.rbm_iter, iterations=args.rbm_iter * -(-args.n_train // 10))
        training[name] = info
        results[name] = evaluate(name, model, data, outliers, args)
        write()  # after every model, in case of a crash
    print(f"wrote {args.output}/results.md")
    return results


def _write_all(args, results, training, real):
    headers = []  # each call's header once, in the models' order
    for info in training.values():
        if info["header"] not in headers:
            headers.append(info["header"])
    header = []
    for index, lines in enumerate(headers):
        if len(headers) > 1:
            trained = ", ".join(n for n, info in training.items() if info["header"] == lines)
            header.append(f"- call {index + 1} of {len(headers)}, trained {trained}:")
            lines = ["  " + line for line in lines]
        header += lines
    write_markdown(args.output / "results.md", results, training, args, header, real)
    save_few_label_plot(results, args.output / "few_label.png")
    arguments = {
        key: str(value) for key, value in vars(args).items() if key != "quality_classifier"
    }
    payload = {
        "headers": headers,
        "training": training,
        "results": results,
        "real_test_images_quality": real,
        "args": arguments,
    }
    (args.output / "results.json").write_text(json.dumps(payload, indent=1, default=str))


def _settings(name, model, args):
    if name == "pixels":
        return "pixels / 255"
    if name == "PCA":
        return f"{args.n_components or BASELINE_COMPONENTS} components"
    if name == "RBM":
        return (
            f"{args.n_components or BASELINE_COMPONENTS} hidden, lr 0.05, batch 10, "
            f"{args.rbm_iter} epochs on pixels / 255"
        )
    params = model.get_params()
    keys = [
        "n_components",
        "batch_size",
        "learning_rate",
        "sgld_steps",
        "sgld_step_size",
        "sgld_noise",
        "buffer_size",
        "energy_l2",
        "data_noise",
        "n_clusters",
        "init_params",
        "max_iter",
        "clustering_updates",
        "warmup_iter",
    ]
    shown = ", ".join(f"{key}={params[key]}" for key in keys if key in params)
    return f"conv net 32-32-64-64, {shown}, budget {args.budget:.0f} s"


def _header(args, argv):
    command = "python benchmarks/paper_tables.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    return [
        f"- command: `{command.strip()}`",
        f"- data: {args.data}, {args.n_train} training and {args.n_test} test images",
        *machine_header("cpu"),
        f"- budget: {args.budget:.0f} s of training per neural model (stopped after the "
        "batch that passes it); seed " + str(args.seed),
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]


if __name__ == "__main__":
    main()
