"""Few-label accuracy from ``GMMCEBMClusterer.transform`` beside ``CEBMEncoder``'s codes.

The paper's Table 2 protocol (``sklearn_cebm.evaluation.few_label_accuracy``): logistic
regression on 1, 10 and 100 labelled training images per class and on all of them,
scored on the test images; beside the clusterer's codes, the NMI of its clusters of the
test images, so that what a change does to the codes is seen with what it does to the
clusters. Both estimators run at their defaults, so the clusterer's
likelihood stage has the encoder's budget (30 epochs) and adds its clustering stage.
Fashion-MNIST when its files are installed, synthetic images otherwise.

    python benchmarks/clustering_few_label.py --n-train 5000 --n-test 2000 \\
        --output benchmarks/results/clustering_few_label.md
"""

import argparse
import time
import warnings

import numpy as np
import torch
from _common import (
    fashion_mnist_available,
    load_images,
    machine_header,
    markdown_row,
    write_lines,
)
from sklearn.metrics import normalized_mutual_info_score

from sklearn_cebm import CEBMEncoder, GMMCEBMClusterer, SamplerWarning
from sklearn_cebm.evaluation import few_label_accuracy


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--budgets",
        nargs="+",
        default=["1", "10", "100", "all"],
        help="labelled images per class; 'all' for the whole training set",
    )
    parser.add_argument("--n-draws", type=int, default=5, help="labelled subsets per budget")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of both estimators, e.g. max_iter=2 (repeatable)",
    )
    parser.add_argument(
        "--clustering-updates",
        type=int,
        default=None,
        help="the clusterer's clustering_updates (default its own)",
    )
    parser.add_argument(
        "--estimators",
        nargs="+",
        default=["GMMCEBMClusterer", "CEBMEncoder"],
        choices=["GMMCEBMClusterer", "CEBMEncoder"],
        help="whose codes to score",
    )
    parser.add_argument("--output", default=None, help="markdown report")
    return parser.parse_args(argv)


def main(argv=None):
    """Fit both estimators, score their codes, write the table; returns the rows."""
    args = parse_args(argv)
    budgets = tuple(None if budget == "all" else int(budget) for budget in args.budgets)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {}
    for item in args.set:
        name, _, value = item.partition("=")
        settings[name] = eval(value, {})  # numbers and tuples from the command line
    rng = np.random.default_rng(args.seed)
    source = "fashion-mnist" if fashion_mnist_available() else "synthetic"
    X_train, y_train, X_test, y_test = load_images(source, args.n_train, args.n_test, rng)
    # Built only when asked for, so that --estimators GMMCEBMClusterer takes its own
    # parameters (clustering_learning_rate=...) through --set.
    factories = {
        "GMMCEBMClusterer": lambda: GMMCEBMClusterer(
            n_clusters=10, random_state=args.seed, **settings
        ),
        "CEBMEncoder": lambda: CEBMEncoder(random_state=args.seed, **settings),
    }
    estimators = {name: factories[name]() for name in args.estimators}
    lines = [
        "# Few-label accuracy from the codes",
        "",
        f"Command: `python benchmarks/clustering_few_label.py {' '.join(argv or [])}`".rstrip(),
        "",
        *machine_header(),
        "",
        f"{source}, {len(X_train)} training and {len(X_test)} test images, seed {args.seed}, "
        f"{args.n_draws} labelled subsets per budget; settings beyond the defaults: "
        f"{settings or 'none'}.",
        "",
        markdown_row(
            ["codes", *(f"{b or 'all'} / class" for b in budgets), "test NMI", "s per fit"]
        ),
        markdown_row(["---"] * (len(budgets) + 3)),
    ]
    if args.clustering_updates is not None and "GMMCEBMClusterer" in estimators:
        estimators["GMMCEBMClusterer"].set_params(clustering_updates=args.clustering_updates)
    rows = {}
    for name, estimator in estimators.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplerWarning)
            estimator.fit(X_train)
        seconds = time.perf_counter() - start
        accuracy = few_label_accuracy(
            estimator.transform(X_train),
            y_train,
            estimator.transform(X_test),
            y_test,
            labels_per_class=budgets,
            n_draws=args.n_draws,
            random_state=args.seed,
        )
        rows[name] = accuracy
        cells = [f"{accuracy[b][0]:.3f} ± {accuracy[b][1]:.3f}" for b in budgets]
        # The clusters the codes came with, so that a change to the codes is seen with
        # what it does to the clustering; an encoder has none.
        clusters = "-"
        if hasattr(estimator, "predict"):
            clusters = f"{normalized_mutual_info_score(y_test, estimator.predict(X_test)):.3f}"
        lines.append(markdown_row([name, *cells, clusters, f"{seconds:.0f}"]))
        print(lines[-1], flush=True)
    write_lines(lines, args.output)
    return rows


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
