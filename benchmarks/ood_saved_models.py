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
from _common import add_row, fashion_mnist_subset, markdown_row, outlier_sets, write_lines

from sklearn_cebm.evaluation import ood_auroc

OUTLIER_SETS = ("uniform noise", "constant", "flipped")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=None, help="write a markdown table")
    args = parser.parse_args(argv)

    inliers, _ = fashion_mnist_subset("test", args.n_images)
    inliers = inliers.astype(np.float64)
    sets = outlier_sets(inliers, np.random.default_rng(0), OUTLIER_SETS)
    lines = [markdown_row(["model", *sets]), "|---" * (len(sets) + 1) + "|"]
    for path in args.models:
        model = joblib.load(path)
        cells = [f"{ood_auroc(model, inliers, X_out):.3f}" for X_out in sets.values()]
        add_row(lines, [path.stem, *cells])
    write_lines(lines, args.output)
    return lines


if __name__ == "__main__":
    main()
