"""Are the neighbours purer in a space the CEBM learned than among the pixels?

The clusterer's partition is as good as its neighbour graph (issue 37, goal 2). For each
data set this measures, in several spaces, the share of each training row's 10 nearest
neighbours that share its class ("purity"), and the NMI with the classes of
scikit-learn's spectral clustering of that space's 10-nearest-neighbour graph
(``affinity='precomputed_nearest_neighbors'``, ``assign_labels='cluster_qr'``). The
spaces: the scaled pixels' 50 leading principal components (where the clusterer searches
today); UMAP's 10-dimensional embedding of those; a default :class:`CEBMEncoder`'s codes
(``transform``), raw and standardised; UMAP's embedding of the standardised codes; and
the codes of a default :class:`GMMCEBMClusterer` after its clustering stage. UMAP needs
``umap-learn`` (the ``benchmark`` extra). Run::

    python benchmarks/neighbour_purity.py --data digits fashion-mnist-20k \
        --output benchmarks/results/neighbour_purity.md
"""

import argparse
import sys
import time
import warnings

import numpy as np
import torch
from _clustering_sets import CLUSTERING_SETS, load_clustering_set
from _common import machine_header, markdown_row, write_lines
from sklearn.cluster import SpectralClustering
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sklearn_cebm import CEBMEncoder, GMMCEBMClusterer

N_NEIGHBORS = 10
SEARCH_COMPONENTS = 50


def _umap(features, seed):
    import umap

    embedding = umap.UMAP(
        n_components=10, n_neighbors=15, min_dist=0.0, random_state=seed, n_jobs=1
    )
    return embedding.fit_transform(features)


def _purity_and_partition(features, y, n_clusters, seed):
    """Share of the 10 nearest neighbours of the row's class; NMI of the spectral
    clustering of the 10-NN graph."""
    rows = NearestNeighbors(n_neighbors=N_NEIGHBORS).fit(features)
    indices = rows.kneighbors(return_distance=False)
    purity = float(np.mean(y[indices] == y[:, None]))
    graph = rows.kneighbors_graph(mode="connectivity")
    spectral = SpectralClustering(
        n_clusters,
        affinity="precomputed_nearest_neighbors",
        n_neighbors=N_NEIGHBORS,
        assign_labels="cluster_qr",
        random_state=seed,
    )
    with warnings.catch_warnings():
        # A graph in pieces is a fact of the space, which its partition then follows.
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels = spectral.fit_predict(graph)
    return purity, float(normalized_mutual_info_score(y, labels))


def _spaces(X, n_clusters, seed):
    """(name, features, seconds) of each space, the learned ones fitted on X."""
    started = time.perf_counter()
    scaled = MinMaxScaler().fit_transform(X)
    pixels = scaled
    if X.shape[1] > SEARCH_COMPONENTS:
        pixels = PCA(SEARCH_COMPONENTS, random_state=0).fit_transform(scaled)
    yield "pixels, 50 principal components", pixels, time.perf_counter() - started
    started = time.perf_counter()
    yield "UMAP of those", _umap(pixels, seed), time.perf_counter() - started
    started = time.perf_counter()
    codes = CEBMEncoder(random_state=seed).fit(X).transform(X)
    seconds = time.perf_counter() - started
    yield "CEBMEncoder codes", codes, seconds
    standardised = StandardScaler().fit_transform(codes)
    yield "CEBMEncoder codes, standardised", standardised, 0.0
    started = time.perf_counter()
    yield "UMAP of the standardised codes", _umap(standardised, seed), time.perf_counter() - started
    started = time.perf_counter()
    clusterer = GMMCEBMClusterer(n_clusters=n_clusters, random_state=seed).fit(X)
    yield "GMMCEBMClusterer codes", clusterer.transform(X), time.perf_counter() - started


def run(name, seed):
    X, y, _, _ = load_clustering_set(name)
    X = np.asarray(X, dtype=np.float64)
    n_clusters = len(np.unique(y))
    rows = []
    for space, features, seconds in _spaces(X, n_clusters, seed):
        purity, nmi = _purity_and_partition(features, y, n_clusters, seed)
        rows.append((name, len(X), space, purity, nmi, seconds))
        print(f"{name} | {space}: purity {purity:.3f}, spectral NMI {nmi:.3f}", flush=True)
    return rows


def report(rows, command):
    lines = [
        "# Neighbour purity in the pixels and in the spaces the CEBM learns",
        "",
        f"Command: `{command}`",
        "",
        *machine_header(),
        "",
        "Training rows of each set. 'purity': the share of each row's 10 nearest neighbours"
        " (Euclidean) that share its class; 'spectral NMI': scikit-learn's spectral"
        " clustering of that 10-nearest-neighbour graph (cluster_qr) against the classes;"
        " seconds to build the space (the fit for the learned ones). Pixels are scaled"
        " into [0, 1] per feature, as the estimators scale them without image_shape.",
        "",
        markdown_row(["data", "rows", "space", "purity", "spectral NMI", "s"]),
        markdown_row(["---"] * 6),
    ]
    for name, n, space, purity, nmi, seconds in rows:
        cells = [name, n, space, f"{purity:.3f}", f"{nmi:.3f}", f"{seconds:.0f}"]
        lines.append(markdown_row(cells))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits"], choices=CLUSTERING_SETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--output", default=None, help="markdown report")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [row for name in args.data for row in run(name, args.seed)]
    command = "python benchmarks/neighbour_purity.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    lines = report(rows, command)
    print("\n".join(lines))
    write_lines(lines, args.output)


if __name__ == "__main__":
    main()
