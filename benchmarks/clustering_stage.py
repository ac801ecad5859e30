"""How faithfully GMMCEBMClusterer's clustering stage learns the spectral partition.

The partition the stage starts from is the data's (the neighbour graph's) and the same
for every seed (``benchmarks/results/spectral_partition.md``); the seed changes the
likelihood stage's model, and with it how well the stage then learns the partition. For
each data set and seed this fits a clusterer (its defaults, or ``--set`` overrides) and
reports the partition's NMI with the classes, the share of training rows whose
``labels_`` the partition gives them (matched by the Hungarian algorithm), the training
and test NMI, the stage's cross-entropy per epoch and the seconds per epoch of each
stage; then, once per data set, the test NMI of the partition itself carried to the test
rows by 10 nearest neighbours among the scaled pixels' 50 principal components (the
ceiling of "predict extends the partition" by the baseline's own rule). Run from the
repository root, one JSON line per fit appended to ``--output``::

    python benchmarks/clustering_stage.py --data handwritten-60k --seeds 0 1 \
        --set clustering_updates=14070 --threads 1 --output /tmp/stage.jsonl
"""

import argparse
import ast
import json
import time

import numpy as np
import torch
from _clustering_sets import CLUSTERING_SETS, load_clustering_set
from _common import machine_info
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sklearn_cebm import GMMCEBMClusterer
from sklearn_cebm._clustering import clustering_stage

N_NEIGHBORS = 10
SEARCH_COMPONENTS = 50


def matched_agreement(labels, partition):
    """Share of rows on which ``labels`` and ``partition`` agree, the labels renamed to
    the parts they share the most rows with."""
    table = contingency_matrix(partition, labels)
    rows, columns = linear_sum_assignment(table, maximize=True)
    return float(table[rows, columns].sum() / len(labels))


def fit_and_record(X_train, y_train, X_test, y_test, seed, settings):
    """Fit one clusterer, keeping the partition its clustering stage learned."""
    partitions = []
    original = clustering_stage.ClusteringStageMixin._partition

    def recording(self, X_unit, rows):
        partitions.append(original(self, X_unit, rows))
        return partitions[-1]

    clustering_stage.ClusteringStageMixin._partition = recording
    try:
        start = time.perf_counter()
        clusterer = GMMCEBMClusterer(
            n_clusters=len(np.unique(y_train)), random_state=seed, **settings
        ).fit(X_train)
        seconds = time.perf_counter() - start
    finally:
        clustering_stage.ClusteringStageMixin._partition = original
    partition = partitions[-1]
    history = clusterer.history_
    likelihood = [row["dur"] for row in history[: clusterer.max_iter]]
    clustering = [row["dur"] for row in history[clusterer.max_iter :]]
    return partition, {
        "seed": seed,
        "settings": settings,
        "seconds": round(seconds, 1),
        "partition_nmi": round(normalized_mutual_info_score(y_train, partition), 4),
        "agreement_with_partition": round(matched_agreement(clusterer.labels_, partition), 4),
        "train_nmi": round(normalized_mutual_info_score(y_train, clusterer.labels_), 4),
        "test_nmi": round(normalized_mutual_info_score(y_test, clusterer.predict(X_test)), 4),
        "partition_nll": [
            round(row["partition_nll"], 3) for row in history if "partition_nll" in row
        ],
        "clustering_rollbacks": [
            row["clustering_rollback"] for row in history if "clustering_rollback" in row
        ],
        "likelihood_s_per_epoch": round(float(np.median(likelihood)), 1),
        "clustering_s_per_epoch": round(float(np.median(clustering)), 1) if clustering else None,
    }


def carried_partition_nmi(X_train, partition, X_test, y_test):
    """Test NMI of ``partition`` carried to the test rows by 10 nearest neighbours."""
    projection = make_pipeline(MinMaxScaler(), PCA(SEARCH_COMPONENTS, random_state=0))
    codes = projection.fit_transform(X_train)
    knn = KNeighborsClassifier(N_NEIGHBORS).fit(codes, partition)
    carried = knn.predict(projection.transform(X_test))
    return round(normalized_mutual_info_score(y_test, carried), 4)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=sorted(CLUSTERING_SETS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a parameter"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", required=True, help="JSON lines, appended")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = {}
    for item in args.set:
        name, _, value = item.partition("=")
        settings[name] = ast.literal_eval(value)
    for name in args.data:
        X_train, y_train, X_test, y_test = load_clustering_set(name)
        if X_test is None:
            X_test, y_test = X_train, y_train
        carried = None
        for seed in args.seeds:
            partition, row = fit_and_record(X_train, y_train, X_test, y_test, seed, settings)
            if carried is None:
                carried = carried_partition_nmi(X_train, partition, X_test, y_test)
            row = {"data": name, **row, "partition_carried_test_nmi": carried}
            row["machine"] = machine_info()
            row["date"] = time.strftime("%Y-%m-%d", time.gmtime())
            print(json.dumps(row), flush=True)
            with open(args.output, "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
