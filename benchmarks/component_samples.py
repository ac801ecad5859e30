"""Do GMMCEBMClusterer's samples of cluster l look like cluster l's digits?

Issue 39, goal 3: fitted on half of scikit-learn's digits (``train_test_split``,
``test_size=0.5, random_state=0``, as ``tests/test_sample_quality.py``), the clusterer draws
``--per-cluster`` samples of each cluster; a classifier fitted on the same digits with
their labels (``sample_quality``'s default MLP) labels them, and the share that gets the
majority class of the training digits ``predict`` puts in the cluster is reported, with
the share that ``predict`` itself puts back in the cluster. Two energies per fit:

- ``density x posterior``: what ``sample(component=l)`` draws, SGLD on
  ``E(x) - log p(y = l | x)`` with the likelihood stage's kept density;
- ``trained E(x, y)``: SGLD on the energy the clustering stage leaves, ``E(x, y = l)``
  (what ``sample(component=l)`` drew before the density was kept).

The marginal samples of each (``sample()``, and SGLD on the trained ``E(x)``) get
``sample_quality``'s class coverage, confidence and KID. Run from the repository root::

    python benchmarks/component_samples.py --seeds 0 1 2 \
        --output benchmarks/results/component_samples.md
"""

import argparse
import shlex
import sys
import time

import numpy as np
import torch
from _common import machine_header, markdown_row, write_lines
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_cebm import GMMCEBMClusterer
from sklearn_cebm._core.model import ConditionalEnergy
from sklearn_cebm._evaluation.sample_quality import _default_classifier
from sklearn_cebm.evaluation import sample_quality

N_STEPS = 500  # sample()'s default


def measure(seed, per_cluster, n_marginal):
    """The rows of one fit: each energy's agreements and its marginal samples' quality."""
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.5, random_state=0)
    classifier = _default_classifier(0).fit(X_train, y_train)
    clusterer = GMMCEBMClusterer(n_clusters=10, random_state=seed).fit(X_train)
    clusters = clusterer.predict(X_train)
    trained, density = clusterer.net_.module_, clusterer._density_module()
    # The marginal energy each samples from, and the conditional's: E(x) - log p(y | x).
    marginals = {"density x posterior": density, "trained E(x, y)": trained}
    rows = []
    for name, marginal_energy in marginals.items():
        agree, own = [], []
        for component in np.unique(clusters):
            majority = np.bincount(y_train[clusters == component]).argmax()
            energy = ConditionalEnergy(marginal_energy, trained, int(component))
            samples = clusterer._draw(per_cluster, N_STEPS, 0, energy)
            agree.append(classifier.predict(samples) == majority)
            own.append(clusterer.predict(samples) == component)
        marginal = clusterer._draw(n_marginal, N_STEPS, 0, marginal_energy)
        quality = sample_quality(
            marginal, X_train, y_train, classifier=classifier, subset_size=60, random_state=0
        )
        per_component = [float(np.mean(a)) for a in agree]
        rows.append(
            [
                seed,
                name,
                f"{np.mean(np.concatenate(agree)):.3f}",
                f"{min(per_component):.2f}",
                f"{np.mean(np.concatenate(own)):.3f}",
                f"{quality.coverage:.3f}",
                f"{quality.mean_confidence:.3f}",
                f"{quality.kid:.3f}",
            ]
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-cluster", type=int, default=50)
    parser.add_argument("--marginal", type=int, default=500, help="marginal samples")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    header = [
        "seed",
        "energy",
        "majority-class agreement",
        "worst cluster",
        "predict gives l",
        "marginal coverage",
        "marginal confidence",
        "marginal KID",
    ]
    lines = [
        "# GMMCEBMClusterer's samples per cluster against the classes (issue 39, goal 3)",
        "",
        f"`python {shlex.join(sys.argv)}`; {time.strftime('%Y-%m-%d', time.gmtime())}",
        "",
        *machine_header(),
        "",
        markdown_row(header),
        markdown_row(["---"] * len(header)),
    ]
    for seed in args.seeds:
        lines += [markdown_row(row) for row in measure(seed, args.per_cluster, args.marginal)]
    lines += ["", f"{time.perf_counter() - start:.0f} s in all."]
    print("\n".join(lines))
    write_lines(lines, args.output)


if __name__ == "__main__":
    main()
