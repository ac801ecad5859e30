"""Clustering into as many clusters as the data have classes: NMI, ARI and matched
accuracy of the CEBM and GMM-VAE clusterers beside scikit-learn's spectral clustering of
the graph the CEBM clusterer starts from (its labels carried to test rows by 10 nearest
neighbours), and KMeans and GaussianMixture on the pixels, over several seeds.

Beyond the digits and Fashion-MNIST, ``--data`` takes the sets of
``benchmarks/_clustering_sets.py``: Fashion-MNIST subsets of 5,000 and 20,000 images, its
five classes of tops, shifted and contrast-changed variants, the digits 0-4, and MNIST-like
28x28 handwritten digits built from scikit-learn's (``handwritten-20k``,
``handwritten-60k``). For example::

    python benchmarks/clustering.py --data digits digits-0-4 fashion-mnist-5k \
        --methods GMMCEBMClusterer "SpectralClustering (same graph) + 10-NN" \
        "KMeans (pixels)" --seeds 0 1 2 3 4

Run from the repository root. Each run adds its per-seed rows, with its command, date and
machine, to ``--results`` (default ``benchmarks/results/clustering.json``), replacing the
rows it measures again (same data set, method, seed, sizes and settings);
``benchmarks/clustering_summary.py`` renders ``benchmarks/results/clustering.md`` from
that file. ``--output`` writes this run's own markdown report as well. scikit-learn's
digits (1,797 x 64, pixels 0-16) are fitted and scored on all of it, as is usual for
digits clustering; Fashion-MNIST is fitted on the 60,000 training images and scored on
the 10,000 test images through ``predict``, and on the training images through
``fit_predict``::

    python benchmarks/clustering.py --data fashion-mnist --seeds 0 1 2

``--quick`` takes 5,000 training and 2,000 test images and seed 0 unless told otherwise;
``--data synthetic`` stands in for Fashion-MNIST on machines without it. The neural
methods use their defaults (an MLP encoder); ``--image-shape 1 8 8`` (digits) or
``--image-shape 1 28 28`` (Fashion-MNIST) gives them the shape, so they use their conv
nets. ``--set name=value`` (repeatable, value read by ``ast.literal_eval``) overrides a
parameter of GMMCEBMClusterer for side measurements, e.g. ``--set cluster_balance=0``.
"""

import argparse
import ast
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _clustering_sets import CLUSTERING_SETS, load_clustering_set
from _common import load_images, machine_header, machine_info, write_lines
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from sklearn_cebm import CEBMEncoder, GMMCEBMClusterer, GMMVAEClusterer

N_CLUSTERS = 10
# The sets sized by --n-train / --n-test (and --quick), then the fixed recipes of
# _clustering_sets.py.
SIZED_SETS = ("digits", "fashion-mnist", "synthetic")
DATA_SETS = tuple(dict.fromkeys([*SIZED_SETS, *CLUSTERING_SETS]))
N_FEATURES = {name: 64 if name.startswith("digits") else 784 for name in DATA_SETS}
# The neighbours GMMCEBMClusterer searches among (its NEIGHBOUR_SEARCH_COMPONENTS).
SEARCH_COMPONENTS = 50


class SpectralBaseline(ClusterMixin, BaseEstimator):
    """scikit-learn's spectral clustering on the graph GMMCEBMClusterer starts from,
    its labels carried to new rows by a k-nearest-neighbour classifier.

    The rows are scaled into [0, 1] per feature (as the clusterer scales them without
    ``image_shape``) and projected on their 50 leading principal components where they
    have more features; ``SpectralClustering(affinity='nearest_neighbors',
    n_neighbors=10, assign_labels='cluster_qr')`` partitions them, and ``predict`` gives
    a new row the majority label of its 10 nearest training rows there. The eigenproblem
    is solved by 'amg' where pyamg is installed (ARPACK, scikit-learn's default, took
    616 s on 60,000 images), else by ARPACK.
    """

    def __init__(self, n_clusters=10, n_neighbors=10, random_state=None):
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def _project(self, X):
        return self.projection_.transform(X)

    def fit(self, X, y=None):
        steps = [("scale", MinMaxScaler())]
        if X.shape[1] > SEARCH_COMPONENTS:
            steps.append(("pca", PCA(SEARCH_COMPONENTS, random_state=0)))
        self.projection_ = Pipeline(steps).fit(X)
        codes = self._project(X)
        try:
            import pyamg  # noqa: F401

            solver = "amg"
        except ImportError:
            solver = "arpack"
        self.eigen_solver_ = solver
        spectral = SpectralClustering(
            self.n_clusters,
            affinity="nearest_neighbors",
            n_neighbors=self.n_neighbors,
            assign_labels="cluster_qr",
            eigen_solver=solver,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            # A graph in pieces is a fact of the data, as GMMCEBMClusterer takes it.
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            # AMG's LOBPCG stopping short of its tolerance on tiny graphs (the smoke test's).
            warnings.filterwarnings("ignore", message="Exited at iteration")
            warnings.filterwarnings("ignore", message="Exited postprocessing")
            self.labels_ = spectral.fit_predict(codes)
        self.classifier_ = KNeighborsClassifier(self.n_neighbors).fit(codes, self.labels_)
        return self

    def predict(self, X):
        return self.classifier_.predict(self._project(X))


QUICK_SIZES = dict(n_train=5000, n_test=2000)
FULL_SIZES = dict(n_train=60000, n_test=10000)  # all of Fashion-MNIST


# ----------------------------------------------------------------- the methods
def make_methods(encoder_kwargs):
    """``{name: factory(seed, n_clusters)}`` of every method; ``encoder_kwargs`` go to the
    neural ones."""
    return {
        "KMeans (pixels)": lambda seed, k: KMeans(k, n_init=10, random_state=seed),
        "SpectralClustering (same graph) + 10-NN": lambda seed, k: SpectralBaseline(
            k, random_state=seed
        ),
        # reg_covar=1e-2 because some pixels are constant (digits' borders, Fashion-MNIST's
        # corners): their variance is 0, and the default 1e-6 makes the fit degenerate.
        "GaussianMixture (pixels)": lambda seed, k: GaussianMixture(
            k, covariance_type="diag", reg_covar=1e-2, random_state=seed
        ),
        # Pipeline.fit_predict is there because its last step, KMeans, has fit_predict.
        "KMeans (CEBMEncoder codes)": lambda seed, k: Pipeline(
            [
                ("encoder", CEBMEncoder(random_state=seed, **encoder_kwargs)),
                ("kmeans", KMeans(k, n_init=10, random_state=seed)),
            ]
        ),
        "GMMCEBMClusterer": lambda seed, k: GMMCEBMClusterer(
            n_clusters=k, random_state=seed, **encoder_kwargs
        ),
        "GMMVAEClusterer": lambda seed, k: GMMVAEClusterer(
            n_clusters=k, random_state=seed, **encoder_kwargs
        ),
    }


METHOD_NAMES = tuple(make_methods({}))


# ----------------------------------------------------------------- metrics
def matched_accuracy(y_true, labels):
    """Accuracy once each cluster is matched to at most one class.

    The matching maximises the rows on the diagonal of the class-by-cluster contingency
    matrix (the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``); rows of
    clusters left unmatched, when there are more clusters than classes, count as wrong.
    """
    counts = contingency_matrix(y_true, labels)
    classes, clusters = linear_sum_assignment(counts, maximize=True)
    return float(counts[classes, clusters].sum() / len(y_true))


def clustering_scores(y_true, labels):
    """NMI, ARI, matched accuracy and the number of distinct labels, as a dict."""
    return {
        "nmi": float(normalized_mutual_info_score(y_true, labels)),
        "ari": float(adjusted_rand_score(y_true, labels)),
        "accuracy": matched_accuracy(y_true, labels),
        "clusters_used": len(np.unique(labels)),
    }


# ----------------------------------------------------------------- data
def load_data(name, n_train, n_test):
    """``X_train, y_train, X_test, y_test`` of data set ``name``; no test set (None, None)
    for digits, which is fitted and scored whole. The subsets are drawn by a fixed
    generator, so every method and seed sees the same images."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X, y, None, None
    if name not in SIZED_SETS:
        return load_clustering_set(name)
    return load_images(name, n_train, n_test, np.random.default_rng(0))


# ----------------------------------------------------------------- measuring
def measure(make, settings, X_train, y_train, X_test, y_test, seed):
    """Fit one method with one seed, into as many clusters as the data have classes; its
    scores on the training rows (``fit_predict``) and, where there is a test set and the
    method can ``predict``, on the test rows."""
    estimator = make(seed, len(np.unique(y_train))).set_params(**settings)
    started = time.perf_counter()
    labels = estimator.fit_predict(X_train)
    fit_seconds = time.perf_counter() - started
    agreement = getattr(estimator, "neighbour_agreement_", None)
    common = {"seed": seed, "fit_seconds": fit_seconds, "neighbour_agreement": agreement}
    scored = [("all" if X_test is None else "train", y_train, labels)]
    if X_test is not None and hasattr(estimator, "predict"):
        scored.append(("test", y_test, estimator.predict(X_test)))
    return [
        {"scored_on": split, **common, **clustering_scores(y_true, predicted)}
        for split, y_true, predicted in scored
    ]


def run_data_set(name, methods, settings, seeds, sizes):
    """Every method with every seed on data set ``name``: the per-seed rows."""
    X_train, y_train, X_test, y_test = load_data(name, **sizes)
    n_test = 0 if X_test is None else len(X_test)
    rows = []
    for method, make in methods.items():
        for seed in seeds:
            measured = measure(
                make, settings.get(method, {}), X_train, y_train, X_test, y_test, seed
            )
            for row in measured:
                rows.append({"data": name, "method": method, **row})
                rows[-1].update(n_train=len(X_train), n_test=n_test)
            scores = ", ".join(f"{row['scored_on']} NMI {row['nmi']:.3f}" for row in measured)
            print(f"{name} | {method} | seed {seed}: {scores}", file=sys.stderr, flush=True)
    return rows


# ----------------------------------------------------------------- the report
def mean_sd(values):
    """``mean ± sd`` (population sd over the seeds) to three decimals."""
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def table(rows):
    """The markdown table of ``rows`` (one data set, one ``scored_on``): a line a method."""
    lines = [
        "| method | NMI | ARI | accuracy | per seed NMI / ARI | clusters used | "
        "neighbour agreement | s per fit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = [row for row in rows if row["method"] == method]
        column = {key: [row[key] for row in mine] for key in mine[0]}
        agreement = ", ".join(
            "-" if value is None else f"{value:.3f}" for value in column["neighbour_agreement"]
        )
        cells = [
            method,
            mean_sd(column["nmi"]),
            mean_sd(column["ari"]),
            mean_sd(column["accuracy"]),
            ", ".join(
                f"{nmi:.3f} / {ari:.3f}"
                for nmi, ari in zip(column["nmi"], column["ari"], strict=True)
            ),
            ", ".join(map(str, column["clusters_used"])),
            agreement,
            f"{np.mean(column['fit_seconds']):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


SCORED_ON = {
    "all": "fitted and scored on all of it (`fit_predict`)",
    "train": "scored on the training images (`fit_predict`)",
    "test": "scored on the test images (`predict` of the fitted model)",
}


def format_settings(values):
    """``{name: value}`` as ``name=value, ...``."""
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


def report(rows, command, settings, encoder_kwargs, seeds):
    """The markdown report: command, machine, what was measured, a table per data set and
    per set of rows scored."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lines = ["# Clustering into as many clusters as classes", "", f"Command: `{command}`", ""]
    lines += [*machine_header(device), ""]
    lines += [
        f"Seeds {list(seeds)}; means ± population sd over them. Pixels are passed as they",
        "are; the neural estimators scale them themselves. Accuracy matches clusters to",
        "classes on the rows scored (Hungarian algorithm). 'clusters used' counts distinct",
        "labels; 'neighbour agreement' is GMMCEBMClusterer's `neighbour_agreement_`.",
        "Seconds per fit are wall time, on a machine perhaps shared with other jobs.",
        f"The neural methods get {encoder_kwargs or 'no shared settings'}; settings beyond",
        "the defaults:" if settings else "the defaults: none.",
        *(f"- {method}: {format_settings(values)}" for method, values in settings.items()),
    ]
    for name in dict.fromkeys(row["data"] for row in rows):
        for split, heading in SCORED_ON.items():
            mine = [row for row in rows if row["data"] == name and row["scored_on"] == split]
            if mine:
                size = mine[0]["n_test" if split == "test" else "n_train"]
                lines += ["", f"## {name}, {size} rows, {heading}", "", *table(mine)]
        lines += unscored_on_test(rows, name)
    return lines


def unscored_on_test(rows, name):
    """A line naming the methods without ``predict`` where data set ``name`` has a test
    set (none of this script's methods, so far); no lines otherwise."""
    mine = [row for row in rows if row["data"] == name]
    if mine[0]["n_test"] == 0:
        return []
    methods = dict.fromkeys(row["method"] for row in mine)
    tested = {row["method"] for row in mine if row["scored_on"] == "test"}
    missing = [method for method in methods if method not in tested]
    return (
        ["", f"Not scored on the test images (no `predict`): {', '.join(missing)}."]
        if missing
        else []
    )


def run_key(row, run):
    """What a row measures: data set, method, seed, sizes and the method's settings. A
    new run's row replaces a stored row with the same key."""
    settings = json.dumps(run["settings"].get(row["method"], {}), sort_keys=True, default=str)
    encoder_kwargs = json.dumps(run["encoder_kwargs"], sort_keys=True, default=str)
    sizes = (row["n_train"], row["n_test"])
    return (row["data"], row["method"], row["seed"], *sizes, settings, encoder_kwargs)


def add_run(path, rows, command, settings, encoder_kwargs):
    """Add this run (its per-seed rows, command, date and machine) to the results JSON at
    ``path``, dropping the stored rows it measures again and the runs left empty."""
    path = Path(path)
    document = json.loads(path.read_text()) if path.exists() else {"runs": []}
    run = {
        "command": command,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine_info(),
        "encoder_kwargs": encoder_kwargs,
        "settings": settings,
        "rows": rows,
    }
    # Round-trip the new run so that its keys compare equal to the stored ones (tuples
    # become lists).
    run = json.loads(json.dumps(run, default=str))
    measured = {run_key(row, run) for row in run["rows"]}
    kept = []
    for old in document["runs"]:
        old["rows"] = [row for row in old["rows"] if run_key(row, old) not in measured]
        if old["rows"]:
            kept.append(old)
    document["runs"] = [*kept, run]
    path.write_text(json.dumps(document, indent=1) + "\n")
    return document


# ----------------------------------------------------------------- the command line
def parse_setting(text):
    """``name=value`` as ``(name, value)``; the value read by ``ast.literal_eval``, or
    kept as a string where it is not a Python literal (``--set objective=dsm``)."""
    name, separator, value = text.partition("=")
    if not separator or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not name=value")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def parse_args(argv):
    """The parsed command line, with the --quick defaults filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", nargs="+", action="extend", choices=DATA_SETS, help="default digits"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHOD_NAMES,
        default=METHOD_NAMES,
        metavar="METHOD",
        help=f"some of {', '.join(map(repr, METHOD_NAMES))} (default all)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="5000/2000 images, seed 0")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--image-shape", type=int, nargs=3, default=None, metavar="N")
    parser.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of GMMCEBMClusterer (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=None, help="this run's markdown report")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/results/clustering.json"),
        help="the results JSON this run's rows are added to",
    )
    args = parser.parse_args(argv)
    args.data = list(dict.fromkeys(args.data or ["digits"]))
    if args.image_shape is not None:
        pixels = int(np.prod(args.image_shape))
        others = [name for name in args.data if N_FEATURES[name] != pixels]
        if others:
            parser.error(f"--image-shape holds {pixels} pixels, not those of {others}")
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    args.n_train = args.n_train or sizes["n_train"]
    args.n_test = args.n_test or sizes["n_test"]
    return args


def main(argv=None, settings=None):
    """Run the benchmark; return its per-seed rows.

    ``settings`` (``{method: {parameter: value}}``, passed to ``set_params``) changes
    methods beyond the command line, e.g. to make them tiny in a smoke test; ``--set``
    adds to GMMCEBMClusterer's.
    """
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # shlex quotes the method names, which have spaces, so the command runs as written.
    script = sys.argv[:1] if argv is None else ["benchmarks/clustering.py"]
    command = "python " + shlex.join([*script, *(sys.argv[1:] if argv is None else argv)])
    settings = {method: dict(values) for method, values in (settings or {}).items()}
    settings.setdefault("GMMCEBMClusterer", {}).update(args.set)
    settings = {method: values for method, values in settings.items() if values}
    encoder_kwargs = {} if args.image_shape is None else {"image_shape": tuple(args.image_shape)}
    methods = make_methods(encoder_kwargs)
    methods = {name: methods[name] for name in args.methods}
    sizes = dict(n_train=args.n_train, n_test=args.n_test)

    rows = []
    for name in args.data:
        rows += run_data_set(name, methods, settings, args.seeds, sizes)
    lines = report(rows, command, settings, encoder_kwargs, args.seeds)
    print("\n".join(lines))
    write_lines(lines, args.output)
    add_run(args.results, rows, command, settings, encoder_kwargs)
    return rows


if __name__ == "__main__":
    main()
