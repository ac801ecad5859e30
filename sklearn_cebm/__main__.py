"""The main job in one command: ``python -m sklearn_cebm``.

Trains a CEBMEncoder on half of scikit-learn's digits, then prints the few-label accuracy of
its codes beside raw pixels on the other half, and how well ``score_samples`` tells digits
from uniform noise.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from . import CEBMEncoder
from .evaluation import few_label_accuracy

_BUDGETS = (1, 10, None)


def _format_row(name, results):
    cells = [f"{100 * mean:5.1f} ± {100 * std:4.1f}" for mean, std in results.values()]
    return f"{name:<28}" + "".join(f"{cell:>16}" for cell in cells)


def _print_accuracy_table(features, y_train, y_test, seed):
    header = "".join(f"{'full' if b is None else f'{b}/class':>16}" for b in _BUDGETS)
    print(f"\nFew-label accuracy (%), logistic regression, 10 draws\n{'features':<28}{header}")
    for name, (train, test) in features.items():
        for standardize in (False, True):
            results = few_label_accuracy(
                train,
                y_train,
                test,
                y_test,
                labels_per_class=_BUDGETS,
                standardize=standardize,
                random_state=seed,
            )
            label = f"{name}{' (standardised)' if standardize else ''}"
            print(_format_row(label, results))


def main(argv=None):
    """Run the digits demonstration; see ``python -m sklearn_cebm --help``."""
    parser = argparse.ArgumentParser(prog="python -m sklearn_cebm", description=__doc__)
    parser.add_argument("--max-iter", type=int, default=20, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=args.seed
    )
    encoder = CEBMEncoder(
        image_shape=(1, 8, 8), encoder="mlp", max_iter=args.max_iter, random_state=args.seed
    )
    print(f"Training {encoder} on {len(X_train)} digits (8x8 pixels)...")
    start = time.perf_counter()
    encoder.fit(X_train)
    print(
        f"trained {encoder.n_iter_} epochs in {time.perf_counter() - start:.1f} s on "
        f"{encoder.device_}; last epoch's energy gap E(data) - E(model): "
        f"{encoder.history_[-1, 'energy_gap']:+.3f}"
    )
    features = {
        "raw pixels": (X_train, X_test),
        "CEBM codes": (encoder.transform(X_train), encoder.transform(X_test)),
    }
    _print_accuracy_table(features, y_train, y_test, args.seed)

    noise = np.random.default_rng(args.seed).uniform(X.min(), X.max(), size=X_test.shape)
    scores = np.concatenate([encoder.score_samples(X_test), encoder.score_samples(noise)])
    is_digit = np.concatenate([np.ones(len(X_test)), np.zeros(len(noise))])
    print(
        f"\nAUROC of score_samples, test digits vs uniform noise: "
        f"{roc_auc_score(is_digit, scores):.4f}"
    )


if __name__ == "__main__":
    main()
