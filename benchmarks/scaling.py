"""Scaling up: a search on 2 dask workers against 1 (issue 13).

``search``: the same ``GridSearchCV`` (a CEBMEncoder's codes read by a logistic
regression, on scikit-learn's digits) on a local dask cluster of one worker process and of
two, each worker with one thread and so one torch thread. The clock runs around
``search.fit`` only; the cluster's start, with a one-epoch search that
warms its workers (imports, torch's first calls), is timed apart. The runs alternate between the two
clusters, so that drift of a shared machine falls on both alike.

Usage: ``python benchmarks/scaling.py search --output benchmarks/results/scaling_search.md``
(a .json beside it). Needs the ``scaling`` extra.
"""

import argparse
import json
import logging
import sys
import time

from _common import machine_header, machine_info, markdown_row, write_lines
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklearn_cebm import CEBMEncoder


def digits_search(max_iter, n_jobs):
    """The search both clusters run: 2 settings x 2 folds of a CEBM's codes on the digits."""
    encoder = CEBMEncoder(
        image_shape=(1, 8, 8),
        encoder="mlp",
        hidden_layer_sizes=(64,),
        max_iter=max_iter,
        precision="float32",
        random_state=0,
    )
    pipe = make_pipeline(encoder, LogisticRegression(max_iter=500))
    return GridSearchCV(pipe, {"cebmencoder__n_components": [8, 16]}, cv=2, n_jobs=n_jobs)


def time_search(n_workers, max_iter):
    """Seconds of ``search.fit`` on a fresh local cluster of ``n_workers``, and the scores."""
    from distributed import Client, LocalCluster
    from joblib import parallel_config

    X, y = load_digits(return_X_y=True)
    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster),
        parallel_config(backend="dask"),
    ):
        # A worker's first fit pays the imports and torch's first calls: a one-epoch
        # search on every worker first, timed with the cluster's start.
        digits_search(1, n_jobs=-1).fit(X, y)
        cluster_start = time.perf_counter() - start
        search = digits_search(max_iter, n_jobs=-1)
        start = time.perf_counter()
        search.fit(X, y)
        elapsed = time.perf_counter() - start
    scores = [float(score) for score in search.cv_results_["mean_test_score"]]
    return {
        "workers": n_workers,
        "search_s": elapsed,
        "cluster_start_s": cluster_start,
        "scores": scores,
    }


def run_search(args):
    runs = []
    for _ in range(args.repeats):
        for n_workers in (2, 1):
            runs.append(time_search(n_workers, args.max_iter))
            print(runs[-1], flush=True)
    lines = [
        "# A search on 2 dask workers against 1",
        "",
        f"Command: `{' '.join(sys.argv)}`",
        "",
        *machine_header(),
        "",
        "| workers | search s | cluster start and warm-up s | mean accuracy (n_components 8, 16) |",
        "|---|---|---|---|",
    ]
    for run in runs:
        scores = ", ".join(f"{score:.3f}" for score in run["scores"])
        cells = [run["workers"], f"{run['search_s']:.1f}", f"{run['cluster_start_s']:.1f}"]
        lines.append(markdown_row([*cells, scores]))
    write_lines(lines, args.output)
    if args.output:
        with open(args.output.rsplit(".", 1)[0] + ".json", "w") as file:
            json.dump({"machine": machine_info(), "argv": sys.argv, "runs": runs}, file, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="a search on 2 dask workers against 1")
    search.add_argument("--max-iter", type=int, default=20)
    search.add_argument("--repeats", type=int, default=2)
    search.add_argument("--output", default=None, help="markdown report; a .json beside it")
    args = parser.parse_args(argv)
    {"search": run_search}[args.command](args)


if __name__ == "__main__":
    main()
