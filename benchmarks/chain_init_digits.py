"""Uniform against Gaussian chain starts on scikit-learn's digits, for each PCD estimator.

Trains ``CEBMEncoder``, ``IGEBMEncoder`` and ``CEBMOutlierDetector`` (MLP encoder, 20
epochs, the estimators' other defaults) on half of the digits with ``chain_init`` set to
each start, and reports few-label accuracy of the codes (logistic regression, 10 draws)
and the AUROC of ``score_samples`` between test digits and uniform noise or constant
images. Seconds per fit on two cores. Run::

    python benchmarks/chain_init_digits.py --output benchmarks/results/chain_init_digits.md
"""

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from sklearn_cebm import CEBMEncoder, CEBMOutlierDetector, IGEBMEncoder
from sklearn_cebm.evaluation import few_label_accuracy

ESTIMATORS = {
    "CEBMEncoder": CEBMEncoder,
    "IGEBMEncoder": IGEBMEncoder,
    "CEBMOutlierDetector": CEBMOutlierDetector,
}
BUDGETS = (1, 10, None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--output", type=Path, default=None, help="write a markdown table")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    rng = np.random.default_rng(0)
    outliers = {
        "noise": rng.uniform(X.min(), X.max(), X_test.shape),
        "constant": np.repeat(rng.uniform(X.min(), X.max(), (len(X_test), 1)), 64, axis=1),
    }
    labels = np.r_[np.ones(len(X_test)), np.zeros(len(X_test))]
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
            inlier_scores = model.score_samples(X_test)
            aurocs = [
                roc_auc_score(labels, np.r_[inlier_scores, model.score_samples(X_out)])
                for X_out in outliers.values()
            ]
            lines.append(
                f"| {name} | {start} | {seconds:.1f} | {accuracy} | "
                + " | ".join(f"{a:.3f}" for a in aurocs)
                + " |"
            )
            print(lines[-1], flush=True)
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
