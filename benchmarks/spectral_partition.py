"""Where GMMCEBMClusterer's clustering stage starts: the spectral partition of the
training data's nearest-neighbour graph, against the labels, for several ``n_neighbors``,
edge weightings and neighbour searches.

The partition depends on the data and the neighbours only (not on the likelihood stage),
so it is measured here without training: the rows are scaled into the box as the
clusterer scales them (per feature without ``image_shape``, over all pixels with it),
each row's nearest neighbours found (among the leading principal components, as the
clusterer searches, or among all features with ``--search-components 0``), and the graph
partitioned into 10 parts by ``sklearn_cebm._clustering.neighbour_graph.spectral_partition`` with
the clusterer's default ``n_init`` (10 k-means runs), its edges weighted by the shared
neighbours (``shared``, the clusterer's) or all alike (``connectivity``, scikit-learn's
SpectralClustering graph). Run from the repository root::

    python benchmarks/spectral_partition.py --data digits fashion-mnist \
        --search-components 50 0 --affinity shared connectivity \
        --output benchmarks/results/spectral_partition.md

Fashion-MNIST is scored on its 60,000 training images (the clusterer's labels_); the
test images' NMI comes from ``predict`` of a fitted model (benchmarks/clustering.py).
"""

import argparse
import itertools
import json
import shlex
import sys
import time

import numpy as np
from _clustering_sets import CLUSTERING_SETS, load_clustering_set
from _common import fashion_mnist_subset, machine_header, machine_info, write_lines
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from sklearn_cebm._clustering.neighbour_graph import (
    NEIGHBOUR_SEARCH_COMPONENTS,
    nearest_neighbour_rows,
    neighbour_affinity,
    normalised_cut,
    shared_neighbour_affinity,
    spectral_partition,
)
from sklearn_cebm._estimators.scaling import fit_unit_range, to_unit_range

N_INIT = 100  # GMMCEBMClusterer's n_init='auto' with init_params='spectral'
AFFINITIES = {"shared": shared_neighbour_affinity, "connectivity": neighbour_affinity}


def training_data(name):
    """The training rows and labels of ``name``: all digits, Fashion-MNIST's 60,000, or
    the training rows of a set of ``_clustering_sets.py``."""
    if name == "fashion-mnist":
        return fashion_mnist_subset("train", 60000)
    X, y, _, _ = load_clustering_set(name)
    return X, y


def measure(name, n_neighbors_values, seeds, per_feature, search_components, affinities, n_inits):
    """Rows of NMI and ARI of the partition per neighbour search, ``n_neighbors``,
    weighting and seed."""
    X, y = training_data(name)
    X = np.asarray(X, dtype=np.float32)
    n_clusters = len(np.unique(y))
    center, scale = fit_unit_range(X, per_feature=per_feature)
    X_unit = to_unit_range(X, center, scale)
    results = []
    for components in search_components:
        start = time.perf_counter()
        rows = nearest_neighbour_rows(X_unit, max(n_neighbors_values), components or None)
        neighbours_s = time.perf_counter() - start
        for n_neighbors in n_neighbors_values:
            # A row's k nearest are the first k of its k_max nearest.
            own = rows[:, :n_neighbors]
            purity = float(np.mean(y[own] == y[:, None]))
            for affinity in affinities:
                graph = AFFINITIES[affinity](own)
                for n_init, seed in itertools.product(n_inits, seeds):
                    start = time.perf_counter()
                    labels = spectral_partition(graph, n_clusters, n_init, seed)
                    sizes = np.bincount(labels, minlength=n_clusters)
                    results.append(
                        dict(
                            data=name,
                            n_init=n_init,
                            cut=normalised_cut(graph, labels),
                            search_components=components,
                            n_neighbors=n_neighbors,
                            affinity=affinity,
                            seed=seed,
                            neighbours_of_the_class=purity,
                            nmi=float(normalized_mutual_info_score(y, labels)),
                            ari=float(adjusted_rand_score(y, labels)),
                            smallest_part=int(sizes.min()),
                            largest_part=int(sizes.max()),
                            partition_s=time.perf_counter() - start,
                            neighbours_s=neighbours_s,
                            rows=len(X),
                        )
                    )
                    print(json.dumps(results[-1]), flush=True)
    return results


def report(results, args):
    lines = [
        "# The spectral partition of the neighbour graph against the labels",
        "",
        f"Command: `python benchmarks/spectral_partition.py {shlex.join(sys.argv[1:])}`",
        "",
        *machine_header(),
        "",
        f"Rows scaled into the box {'per feature' if args.per_feature else 'over all pixels'}"
        f" (as GMMCEBMClusterer scales them {'without' if args.per_feature else 'with'}"
        f" `image_shape`); 'n_init' k-means runs on the eigenvectors, the partition of least"
        " normalised cut ('cut') kept; NMI and ARI of the partition into as many parts as"
        " classes against the labels of the training rows; 'of the class' is the"
        " share of the k nearest neighbours that share a row's label. 'search' is the"
        " principal components the neighbours were searched among ('all': every feature);"
        " 'edges' the weighting: 'shared', the Jaccard index of the two ends' neighbourhoods"
        " (the clusterer's), or 'connectivity', 1 both ways and 1/2 one way (scikit-learn's"
        " SpectralClustering).",
        "",
        "| data | search | n_neighbors | edges | n_init | of the class | NMI per seed |"
        " cut per seed | ARI per seed | parts, smallest / largest | s per partition |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    setting = ("data", "search_components", "n_neighbors", "affinity", "n_init")
    keys = sorted({tuple(r[key] for key in setting) for r in results})
    for key in keys:
        rows = [r for r in results if tuple(r[name] for name in setting) == key]
        data, components, n_neighbors, affinity, n_init = key
        lines.append(
            f"| {data} | {components or 'all'} | {n_neighbors} | {affinity} | {n_init} |"
            f" {rows[0]['neighbours_of_the_class']:.3f} | "
            + ", ".join(f"{r['nmi']:.3f}" for r in rows)
            + " | "
            + ", ".join(f"{r['cut']:.3f}" for r in rows)
            + " | "
            + ", ".join(f"{r['ari']:.3f}" for r in rows)
            + f" | {rows[0]['smallest_part']} / {rows[0]['largest_part']} | "
            f"{np.mean([r['partition_s'] for r in rows]):.2f} |"
        )
    neighbours = {(r["data"], r["search_components"] or "all"): r["neighbours_s"] for r in results}
    lines += [
        "",
        "Seconds to find the neighbours (once per data set and search, for the largest k): "
        + ", ".join(f"{data} ({search}) {s:.1f}" for (data, search), s in neighbours.items())
        + ".",
    ]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", nargs="+", default=["digits"], choices=["fashion-mnist", *CLUSTERING_SETS]
    )
    parser.add_argument("--n-init", nargs="+", type=int, default=[N_INIT], help="k-means roundings")
    parser.add_argument("--n-neighbors", nargs="+", type=int, default=[5, 7, 10, 12, 15, 20])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--over-all-pixels",
        dest="per_feature",
        action="store_false",
        help="scale as the clusterer does with image_shape",
    )
    parser.add_argument(
        "--search-components",
        nargs="+",
        type=int,
        default=[NEIGHBOUR_SEARCH_COMPONENTS],
        help="principal components to search the neighbours among; 0 for all features",
    )
    parser.add_argument("--affinity", nargs="+", default=["shared"], choices=sorted(AFFINITIES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    results = []
    with threadpool_limits(args.threads):
        for name in args.data:
            results += measure(
                name,
                args.n_neighbors,
                args.seeds,
                args.per_feature,
                args.search_components,
                args.affinity,
                args.n_init,
            )
    lines = report(results, args)
    print("\n".join(lines))
    if args.output:
        write_lines(lines, args.output)
        with open(str(args.output).replace(".md", ".json"), "w") as file:
            json.dump(dict(machine=machine_info(), results=results), file, indent=1)
    return results


if __name__ == "__main__":
    main()
