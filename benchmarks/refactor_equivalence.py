"""Same seeds, same outputs: record every estimator's outputs, or compare two recordings.

A refactoring that should not change behaviour is checked by recording the outputs of a
set of small seeded fits before and after it, and comparing them. Only the public API is
used, so the same script runs on both sides. Run::

    python benchmarks/refactor_equivalence.py record before.npz   # on the old commit
    python benchmarks/refactor_equivalence.py record after.npz    # on the new one
    python benchmarks/refactor_equivalence.py compare before.npz after.npz \
        --output benchmarks/results/refactor_equivalence.json

Training runs on one torch thread, so that the float reductions happen in one order.
"""

import argparse
import json
import sys
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits

import sklearn_cebm
from sklearn_cebm import (
    CEBMEncoder,
    CEBMOutlierDetector,
    GMMCEBMClusterer,
    IGEBMEncoder,
    VAEEncoder,
)

SMALL = dict(n_components=6, hidden_layer_sizes=(32,), max_iter=3, batch_size=64, random_state=0)
PCD = dict(sgld_steps=4, buffer_size=200)


def _data():
    X, _ = load_digits(return_X_y=True)
    return X[:400], X[400:460]


def _history(model):
    return np.array([epoch["train_loss"] for epoch in model.history_], dtype=np.float64)


def _common_outputs(model, X_test):
    outputs = {"score_samples": model.score_samples(X_test), "history": _history(model)}
    outputs["score_gradient_norm"] = model.score_gradient_norm(X_test)
    return outputs


def _encoder_outputs(model, X_test):
    outputs = _common_outputs(model, X_test)
    mean, std = model.transform(X_test, return_std=True)
    outputs.update(transform=mean, transform_std=std)
    outputs["sample"] = model.sample(3, n_steps=10, random_state=1)
    return outputs


def _cases(X, X_test):
    """Name -> zero-argument function returning a dict of named arrays."""
    cases = {}

    def encoder(**params):
        return _encoder_outputs(CEBMEncoder(**{**SMALL, **PCD, **params}).fit(X), X_test)

    cases["encoder_mlp"] = lambda: encoder()
    cases["encoder_cnn"] = lambda: encoder(image_shape=(1, 8, 8), max_iter=1)
    cases["encoder_uniform_start"] = lambda: encoder(chain_init="uniform")
    cases["encoder_dsm"] = lambda: encoder(objective="dsm")

    def encoder_partial():
        model = CEBMEncoder(**SMALL, **PCD)
        for start in (0, 200, 0):
            model.partial_fit(X[start : start + 200])
        return _encoder_outputs(model, X_test)

    cases["encoder_partial_fit"] = encoder_partial

    def encoder_warm_start():
        model = CEBMEncoder(**SMALL, **PCD, warm_start=True).fit(X)
        model.set_params(max_iter=2).fit(X[:200])
        return _encoder_outputs(model, X_test)

    cases["encoder_warm_start"] = encoder_warm_start

    def clusterer(fit=None, **params):
        model = GMMCEBMClusterer(n_clusters=5, **{**SMALL, **PCD, **params})
        labels = model.fit_predict(X) if fit is None else fit(model)
        outputs = _common_outputs(model, X_test)
        outputs.update(
            labels=np.asarray(labels),
            predict_proba=model.predict_proba(X_test),
            transform=model.transform(X_test),
            transform_mixture=model.transform(X_test, mixture_mean=True),
            cluster_means=model.cluster_means_,
            cluster_stds=model.cluster_stds_,
            sample=model.sample(3, n_steps=10, random_state=1),
            sample_component=model.sample(3, component=2, n_steps=10, random_state=1),
        )
        return outputs

    cases["clusterer_kmeanspp"] = lambda: clusterer()
    cases["clusterer_random"] = lambda: clusterer(init_params="random")
    cases["clusterer_balance0_weights"] = lambda: clusterer(cluster_balance=0.0, learn_weights=True)

    def partial(model):
        for start in (0, 200):
            model.partial_fit(X[start : start + 200])
        return model.labels_

    cases["clusterer_partial_fit"] = lambda: clusterer(fit=partial)

    def warm(model):
        model.set_params(warm_start=True).fit(X)
        return model.set_params(max_iter=2).fit_predict(X[:300])

    cases["clusterer_warm_start"] = lambda: clusterer(fit=warm)

    def detector(**params):
        model = CEBMOutlierDetector(contamination=0.1, **{**SMALL, **PCD, **params}).fit(X)
        outputs = _common_outputs(model, X_test)
        outputs.update(
            decision_function=model.decision_function(X_test),
            predict=model.predict(X_test),
            offset=np.array([model.offset_]),
        )
        return outputs

    cases["detector_log_density"] = lambda: detector()
    cases["detector_gradient_norm"] = lambda: detector(outlier_score="gradient_norm")

    def igebm(**params):
        model = IGEBMEncoder(**{**SMALL, **PCD, **params}).fit(X)
        outputs = _common_outputs(model, X_test)
        outputs.update(
            transform=model.transform(X_test),
            sample=model.sample(3, n_steps=10, random_state=1),
        )
        return outputs

    cases["igebm"] = lambda: igebm()
    cases["igebm_cnn"] = lambda: igebm(image_shape=(1, 8, 8), max_iter=1)

    def vae(**params):
        model = VAEEncoder(**{**SMALL, **params}).fit(X)
        outputs = _common_outputs(model, X_test)
        mean, std = model.transform(X_test, return_std=True)
        outputs.update(transform=mean, transform_std=std, sample=model.sample(3, random_state=1))
        return outputs

    cases["vae_mlp"] = lambda: vae()
    cases["vae_cnn"] = lambda: vae(image_shape=(1, 8, 8), max_iter=1)
    return cases


def record(path):
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    X, X_test = _data()
    arrays = {}
    for name, case in _cases(X, X_test).items():
        for key, value in case().items():
            arrays[f"{name}/{key}"] = np.asarray(value)
        print(f"recorded {name}", file=sys.stderr)
    np.savez(path, **arrays)
    print(f"{len(arrays)} arrays from {sklearn_cebm.__file__} written to {path}")


def compare(before_path, after_path, output=None):
    before, after = np.load(before_path), np.load(after_path)
    rows = {}
    for key in sorted(set(before.files) | set(after.files)):
        if key not in before.files or key not in after.files:
            rows[key] = "missing before" if key not in before.files else "missing after"
            continue
        old, new = before[key], after[key]
        if old.shape != new.shape:
            rows[key] = f"shape {old.shape} -> {new.shape}"
            continue
        difference = np.abs(old.astype(np.float64) - new.astype(np.float64))
        rows[key] = float(difference.max()) if difference.size else 0.0
    identical = sum(value == 0.0 for value in rows.values())
    summary = {
        "arrays": len(rows),
        "bit_identical": identical,
        "differing": {key: value for key, value in rows.items() if value != 0.0},
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if output:
        with open(output, "w") as file:
            file.write(text + "\n")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("record").add_argument("path")
    comparing = sub.add_parser("compare")
    comparing.add_argument("before")
    comparing.add_argument("after")
    comparing.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.path)
    else:
        compare(args.before, args.after, args.output)


if __name__ == "__main__":
    main()
