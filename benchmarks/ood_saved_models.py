"""Out-of-distribution AUROC of saved CEBM models on Fashion-MNIST.

Scores 2,000 Fashion-MNIST test images against 2,000 images of each outlier set (uniform
noise, constant images, vertically flipped test images) with each model's
``score_samples``, for models saved by ``time_to_accuracy.py --save-models``. Run::

    python benchmarks/ood_saved_models.py /tmp/models/*.joblib --output results.md
"""

import argparse
from pathlib import Path

import joblib
import numpy as np
from sklearn.metrics import roc_auc_score

from sklearn_cebm.datasets import load_fashion_mnist


def outlier_sets(inliers, rng):
    """The outlier sets, each as many images as ``inliers`` (rows of 784 pixels)."""
    n = len(inliers)
    return {
        "uniform noise": rng.uniform(0, 255, inliers.shape),
        "constant": np.repeat(rng.uniform(0, 255, (n, 1)), inliers.shape[1], axis=1),
        "flipped": inliers.reshape(n, 28, 28)[:, ::-1, :].reshape(n, -1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=None, help="write a markdown table")
    args = parser.parse_args(argv)

    X_test, _ = load_fashion_mnist(subset="test", return_X_y=True)
    inliers = X_test[: args.n_images].astype(np.float64)
    sets = outlier_sets(inliers, np.random.default_rng(0))
    labels = np.r_[np.ones(len(inliers)), np.zeros(len(inliers))]
    lines = ["| model | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for path in args.models:
        model = joblib.load(path)
        inlier_scores = model.score_samples(inliers)
        cells = [
            f"{roc_auc_score(labels, np.r_[inlier_scores, model.score_samples(X)]):.3f}"
            for X in sets.values()
        ]
        lines.append(f"| {path.stem} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
