"""The main job in one command: ``python -m sklearn_cebm``.

On scikit-learn's digits (1,797 images of 8x8 pixels), each of the package's main
estimators beside the scikit-learn tool one would reach for first, with the seconds each
took to fit and predict or score:

- clustering all the digits into 10 clusters without their labels, scored by NMI and ARI
  against the digits: ``GMMCEBMClusterer`` against ``KMeans`` and ``SpectralClustering``;
- novelty detection, each detector fitted on half of the digits 0-4 and scored by the
  AUROC between the other half and each of two kinds of outlier, the digits 5-9 and the
  held-out digits 0-4 turned upside down: ``CEBMOutlierDetector`` against
  ``IsolationForest`` and ``LocalOutlierFactor(novelty=True)``.

``CEBMEncoder`` is not in the table: on the digits its codes do not beat raw pixels as
features for a classifier trained on a few labels (see the README). The scores repeat for
a given ``--seed``; the seconds do not.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor

from . import CEBMOutlierDetector, GMMCEBMClusterer

# A few updates of each neural estimator, for the tests: the scores then mean nothing.
_QUICK_CLUSTERER = {"max_iter": 1, "clustering_updates": 5}
_QUICK_DETECTOR = {"max_iter": 1}


def _settings(quick):
    return "quick" if quick else "defaults"


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def _clustering_table(X, y, seed, quick):
    """NMI and ARI of each clusterer's ``fit_predict`` on all of X, and its seconds."""
    clusterers = {
        f"GMMCEBMClusterer ({_settings(quick)})": GMMCEBMClusterer(
            n_clusters=10, random_state=seed, **(_QUICK_CLUSTERER if quick else {})
        ),
        "KMeans(n_init=10)": KMeans(n_clusters=10, n_init=10, random_state=seed),
        "SpectralClustering (kNN graph)": SpectralClustering(
            n_clusters=10, affinity="nearest_neighbors", random_state=seed
        ),
    }
    rows = {}
    for name, clusterer in clusterers.items():
        labels, seconds = _timed(lambda clusterer=clusterer: clusterer.fit_predict(X))
        nmi, ari = normalized_mutual_info_score(y, labels), adjusted_rand_score(y, labels)
        rows[name] = (nmi, ari, seconds)
    return ("NMI", "ARI", "seconds"), rows


def _novelty_data(X, y, seed):
    """Half the digits 0-4 to fit on; the other half, and outliers to rank below it."""
    X_train, X_test = train_test_split(X[y < 5], test_size=0.5, random_state=seed)
    upside_down = X_test.reshape(-1, 8, 8)[:, ::-1].reshape(len(X_test), -1)
    return X_train, X_test, {"digits 5-9": X[y >= 5], "upside down": upside_down}


def _aurocs(detector, X_train, X_test, outliers):
    """Fit, then the AUROC of ``score_samples``: X_test positive, each outlier set negative."""
    detector.fit(X_train)
    in_scores = detector.score_samples(X_test)
    aurocs = []
    for X_out in outliers.values():
        scores = np.concatenate([in_scores, detector.score_samples(X_out)])
        is_test = np.concatenate([np.ones(len(X_test)), np.zeros(len(X_out))])
        aurocs.append(roc_auc_score(is_test, scores))
    return aurocs


def _novelty_table(X, y, seed, quick):
    """Each detector's AUROCs against each kind of outlier, and its seconds."""
    X_train, X_test, outliers = _novelty_data(X, y, seed)
    detectors = {
        f"CEBMOutlierDetector ({_settings(quick)})": CEBMOutlierDetector(
            random_state=seed, **(_QUICK_DETECTOR if quick else {})
        ),
        "IsolationForest": IsolationForest(random_state=seed),
        "LocalOutlierFactor(novelty=True)": LocalOutlierFactor(novelty=True),
    }
    rows = {}
    for name, detector in detectors.items():
        aurocs, seconds = _timed(
            lambda detector=detector: _aurocs(detector, X_train, X_test, outliers)
        )
        rows[name] = (*aurocs, seconds)
    return (*outliers, "seconds"), rows, len(X_train), len(X_test)


def _print_table(title, columns, rows):
    print(f"\n{title}")
    print(f"  {'estimator':<34}" + "".join(f"{column:>13}" for column in columns))
    for name, values in rows.items():
        *scores, seconds = values
        cells = [f"{score:13.3f}" for score in scores] + [f"{seconds:13.1f}"]
        print(f"  {name:<34}" + "".join(cells))


def main(argv=None):
    """Run the digits demonstration; see ``python -m sklearn_cebm --help``.

    Returns the two tables, ``{"clustering": ..., "novelty": ...}``, each a dict from an
    estimator's name to its scores and, last, its seconds.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_cebm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=0, help="the random_state of every step")
    parser.add_argument(
        "--quick", action="store_true", help="a few updates of each model, for tests"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    X, y = load_digits(return_X_y=True)
    print(
        f"scikit-learn's digits, {len(X)} images of 8x8 pixels; random_state={args.seed}; "
        f"torch on {'cuda' if torch.cuda.is_available() else 'cpu'}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    columns, clustering = _clustering_table(X, y, args.seed, args.quick)
    _print_table(
        "Clustering all the digits into 10 clusters without their labels; NMI and ARI\n"
        "against the digits (1: the digits exactly; 0: chance); seconds to fit and predict",
        columns,
        clustering,
    )
    columns, novelty, n_train, n_test = _novelty_table(X, y, args.seed, args.quick)
    _print_table(
        f"Novelty detection: fitted on {n_train} digits 0-4, the AUROC of {n_test} others\n"
        "against the digits 5-9 and against themselves upside down (1: all ranked above;\n"
        "0.5: chance); seconds to fit and score",
        columns,
        novelty,
    )
    print(f"\nwhole run: {time.perf_counter() - start:.0f} s")
    return {"clustering": clustering, "novelty": novelty}


if __name__ == "__main__":
    main()
