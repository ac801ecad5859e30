"""Uniform against Gaussian chain starts on scikit-learn's digits, for each PCD estimator.

Trains ``CEBMEncoder``, ``IGEBMEncoder`` and ``CEBMOutlierDetector`` (MLP encoder, 20
epochs, the estimators' other defaults) on half of the digits with ``chain_init`` set to
each start, and reports few-label accuracy of the codes (logistic regression, 10 draws)
and the AUROC of ``score_samples`` between test digits and uniform noise or constant
images. Seconds per fit on two cores. Run::

    python benchmarks/chain_init_digits.py --output benchmarks/results/chain_init_digits.md

``--held-out-classes`` measures instead CEBMOutlierDetector's AUROC against digits of
classes it never saw: trained on half of the digits 0-4 (then 5-9), tested on the other
half against the other five classes, for each start, score (typicality and log-density)
and split seed.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from _common import DIGITS_RANGE, add_row, digits_halves, outlier_sets, write_lines
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_cebm import CEBMEncoder, CEBMOutlierDetector, IGEBMEncoder
from sklearn_cebm.evaluation import few_label_accuracy, ood_auroc

ESTIMATORS = {
    "CEBMEncoder": CEBMEncoder,
    "IGEBMEncoder": IGEBMEncoder,
    "CEBMOutlierDetector": CEBMOutlierDetector,
}
BUDGETS = (1, 10, None)


def held_out_classes(max_iter, seeds):
    """Table lines: CEBMOutlierDetector's AUROC against unseen digit classes per start and
    score, each cell the mean over both halves of the classes and the seeds, then each."""
    X, y = load_digits(return_X_y=True)
    lines = [
        "| chain_init | outlier_score | mean AUROC | per seed (0-4 trained, 5-9 trained) |",
        "|---|---|---|---|",
    ]
    for start in ("uniform", "gaussian"):
        for score in ("typicality", "log_density"):
            aurocs = []
            for seed in seeds:
                for trained in (y < 5, y >= 5):
                    X_train, X_test = train_test_split(X[trained], test_size=0.5, random_state=seed)
                    detector = CEBMOutlierDetector(
                        image_shape=(1, 8, 8),
                        encoder="mlp",
                        max_iter=max_iter,
                        chain_init=start,
                        outlier_score=score,
                        random_state=seed,
                    ).fit(X_train)
                    aurocs.append(ood_auroc(detector, X_test, X[~trained]))
            cells = " ".join(f"{a:.3f}" for a in aurocs)
            add_row(lines, [start, score, f"{np.mean(aurocs):.3f}", cells])
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--held-out-classes", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", type=Path, default=None, help="write a markdown table")
    args = parser.parse_args(argv)
    if args.held_out_classes:
        lines = held_out_classes(args.max_iter, args.seeds)
        write_lines(lines, args.output)
        return lines

    X_train, y_train, X_test, y_test = digits_halves(random_state=0)
    outliers = outlier_sets(
        X_test, np.random.default_rng(0), ("uniform noise", "constant"), DIGITS_RANGE
    )
    lines = [
        "| estimator | chain_init | fit s | accuracy 1 / 10 / full | AUROC noise | "
        "AUROC constant |",
        "|---|---|---|---|---|---|",
    ]
    for name, estimator in ESTIMATORS.items():
        for start in ("uniform", "gaussian"):
            model = estimator(
                image_shape=(1, 8, 8),
                encoder="mlp",
                max_iter=args.max_iter,
                chain_init=start,
                random_state=0,
            )
            began = time.perf_counter()
            model.fit(X_train)
            seconds = time.perf_counter() - began
            if hasattr(model, "transform"):
                result = few_label_accuracy(
                    model.transform(X_train),
                    y_train,
                    model.transform(X_test),
                    y_test,
                    labels_per_class=BUDGETS,
                    random_state=0,
                )
                accuracy = " / ".join(f"{100 * result[b][0]:.1f}" for b in BUDGETS)
            else:
                accuracy = "-"
            aurocs = [ood_auroc(model, X_test, X_out) for X_out in outliers.values()]
            add_row(lines, [name, start, f"{seconds:.1f}", accuracy, *(f"{a:.3f}" for a in aurocs)])
    write_lines(lines, args.output)
    return lines


if __name__ == "__main__":
    main()
