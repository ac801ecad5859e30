"""Few-label accuracy on Fashion-MNIST against wall-clock training time, per setting.

Each setting is a set of ``CEBMEncoder`` parameters. It trains on the training images and,
whenever its training time passes a checkpoint, stops the clock, scores the codes with the
paper's Table 2 protocol (logistic regression on 1, 10 and 100 labelled images per class,
``--n-draws`` draws, and on the whole training set) plain and on standardised codes, and
goes on training. Raw pixels are scored once with the same protocol.

Writes ``--output`` (default ``benchmarks/results/time_to_accuracy``): ``results.json``
(appended to by every run, keyed by setting), ``results.md`` (the table) and
``time_to_accuracy.png``.

Run from the repository root on an idle machine::

    python benchmarks/time_to_accuracy.py --settings pcd10 pcd20 --checkpoints 300 600
    python benchmarks/time_to_accuracy.py --list
    python benchmarks/time_to_accuracy.py --quick   # seconds, on a synthetic stand-in
"""

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from _common import (
    IMAGE_SHAPE,
    GraphedUpdates,
    TrainingClock,
    load_images,
    machine_header,
    training_iterations,
    write_lines,
)

from sklearn_cebm import CEBMEncoder, SamplerWarning, paper_settings
from sklearn_cebm._core.weight_average import copy_parameters
from sklearn_cebm.evaluation import few_label_accuracy

LABELS_PER_CLASS = (1, 10, 100, None)

# Named settings: CEBMEncoder parameters on top of the estimator's defaults. "paper" is
# the authors' recipe (but for its length), whatever the defaults are. The screens of the
# first session ran with the defaults of then: sgld_steps=60, learning_rate=1e-4.
SETTINGS = {
    "defaults": {},
    "paper": {k: v for k, v in paper_settings().items() if k != "max_iter"},
    "pcd20": dict(sgld_steps=20, learning_rate=1e-4),
    "pcd20-lr3e-4": dict(sgld_steps=20, learning_rate=3e-4),
    "pcd10-lr3e-4": dict(sgld_steps=10, learning_rate=3e-4),
    "pcd10-lr1e-3": dict(sgld_steps=10, learning_rate=1e-3),
    "pcd5-lr3e-4": dict(sgld_steps=5, learning_rate=3e-4),
    "pcd5-lr1e-3": dict(sgld_steps=5, learning_rate=1e-3),
    "pcd5-lr3e-4-b64": dict(sgld_steps=5, learning_rate=3e-4, batch_size=64),
    "pcd3-lr3e-4": dict(sgld_steps=3, learning_rate=3e-4),
    "pcd1-lr3e-4": dict(sgld_steps=1, learning_rate=3e-4),
    "dsm-0.1": dict(objective="dsm", dsm_noise=0.1, learning_rate=1e-4),
    "dsm-0.3": dict(objective="dsm", dsm_noise=0.3, learning_rate=1e-4),
    "dsm-0.3-lr1e-3": dict(objective="dsm", dsm_noise=0.3, learning_rate=1e-3),
    "dsm-0.1-lr1e-3": dict(objective="dsm", dsm_noise=0.1, learning_rate=1e-3),
    "uniform-start": dict(chain_init="uniform"),  # the defaults before chain_init
    "gaussian-start": dict(chain_init="gaussian"),
    "gaussian-start-lr3e-4": dict(chain_init="gaussian", learning_rate=3e-4),
    "float32": dict(precision="float32"),
    "bfloat16": dict(precision="bfloat16"),
    "no-ema": dict(ema_decay=None),  # the defaults before ema_decay
}

# The issue's measurement of raw pixels with this protocol, for the table's last row.
ISSUE_PIXELS = (47, 71, 79, 83)


def load_data(args, rng):
    """A random subset of the training images and the first test images; the synthetic
    stand-in in quick mode."""
    source = "synthetic" if args.quick else "fashion-mnist"
    return load_images(source, args.n_train, args.n_test, rng, random_test=False)


def _budgets(args):
    return LABELS_PER_CLASS if not args.quick else (1, 10, None)


def score_features(train, y_train, test, y_test, args):
    """The protocol, plain and standardised: ``{"plain": [...], "standardized": [...]}``."""
    budgets = _budgets(args)
    scores = {}
    for key, standardize in (("plain", False), ("standardized", True)):
        result = few_label_accuracy(
            train,
            y_train,
            test,
            y_test,
            labels_per_class=budgets,
            n_draws=args.n_draws,
            standardize=standardize,
            random_state=args.seed,
        )
        scores[key] = [[100 * result[b][0], 100 * result[b][1]] for b in budgets]
    return scores


def score_training_weights(encoder, data, args):
    """The protocol's plain scores of the codes of training's own weights, which the
    moving average of the weights (``ema_decay``) keeps aside: the same run without it."""
    X_train, y_train, X_test, y_test = data
    net = encoder.net_
    copy_parameters(net.training_weights_, net.module_)
    try:
        result = few_label_accuracy(
            encoder.transform(X_train),
            y_train,
            encoder.transform(X_test),
            y_test,
            labels_per_class=_budgets(args),
            n_draws=args.n_draws,
            random_state=args.seed,
        )
    finally:
        net.weight_average_.copy_to(net.module_)
    return [[100 * result[b][0], 100 * result[b][1]] for b in _budgets(args)]


def _save_without_clock(encoder, path):
    """Dump ``encoder`` minus its TrainingClock and GraphedUpdates, classes of
    benchmarks/_common.py that a model loaded elsewhere could not find."""
    saved = copy.copy(encoder)
    saved.callbacks = None
    saved.net_ = copy.copy(encoder.net_)
    saved.net_.callbacks = None
    saved.net_.callbacks_ = [
        (n, c) for n, c in encoder.net_.callbacks_ if n not in ("clock", "cuda_graphs")
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(saved, path)


def run_setting(name, data, args):
    X_train, y_train, X_test, y_test = data
    checkpoints = sorted(args.checkpoints)
    params = dict(
        image_shape=IMAGE_SHAPE,
        max_iter=10_000,  # the checkpoints stop training
        random_state=args.seed,
        callbacks=[
            ("clock", TrainingClock(checkpoints[0])),
            *([("cuda_graphs", GraphedUpdates())] if args.cuda_graphs else []),
        ],
        device=args.device,
        **(dict(n_components=8, batch_size=32, sgld_steps=2) if args.quick else {}),
    )
    params.update(SETTINGS[name])
    encoder = CEBMEncoder(**params)
    rows = []
    for index, checkpoint in enumerate(checkpoints):
        start = time.perf_counter()
        # Kept, not shown: the row says whether the sampler monitor saw trouble.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplerWarning)
            if index == 0:
                encoder.fit(X_train)
                clock = dict(encoder.net_.callbacks_)["clock"]
            clock.target = checkpoint
            # partial_fit trains one epoch at most: call it until the clock stops it.
            while clock.spent_ < checkpoint:
                encoder.partial_fit(X_train)
        wall = time.perf_counter() - start
        if args.save_models is not None:
            _save_without_clock(encoder, args.save_models / f"{name}-{checkpoint:.0f}s.joblib")
        evaluation_start = time.perf_counter()
        scores = score_features(
            encoder.transform(X_train), y_train, encoder.transform(X_test), y_test, args
        )
        if args.score_training_weights and encoder.net_.training_weights_ is not None:
            scores["training_weights"] = score_training_weights(encoder, data, args)
        codes = encoder.transform(X_test)
        batches = encoder.history_[-1]["batches"][-50:]
        recent = [batch["energy_gap"] for batch in batches if "energy_gap" in batch]
        row = dict(
            checkpoint=checkpoint,
            training_seconds=clock.spent_,
            call_seconds=wall,
            iterations=training_iterations(encoder),
            energy_gap=float(np.mean(recent)) if recent else None,
            epoch_energy_gaps=[epoch.get("energy_gap") for epoch in encoder.history_],
            sampler_warnings=sorted(
                {str(w.message) for w in caught if issubclass(w.category, SamplerWarning)}
            ),
            code_std=float(codes.std(axis=0).mean()),
            evaluation_seconds=time.perf_counter() - evaluation_start,
            **scores,
        )
        rows.append(row)
        print(_row_text(name, row), flush=True)
    return dict(params={k: repr(v) for k, v in SETTINGS[name].items()}, rows=rows)


def _row_text(name, row):
    plain = " / ".join(f"{mean:.1f}" for mean, _ in row["plain"])
    standard = " / ".join(f"{mean:.1f}" for mean, _ in row["standardized"])
    text = (
        f"{name:>16} {row['training_seconds']:7.0f} s {row['iterations']:6d} it | "
        f"plain {plain} | standardised {standard} | code std {row['code_std']:.3g}"
    )
    if "training_weights" in row:
        training = " / ".join(f"{mean:.1f}" for mean, _ in row["training_weights"])
        text += f" | training's weights, plain {training}"
    return text


def write_outputs(results, args):
    header = [
        "# Few-label accuracy against training time, Fashion-MNIST",
        "",
        f"- command: `python benchmarks/time_to_accuracy.py {' '.join(sys.argv[1:])}` "
        "(the last run; every run adds its settings to results.json)",
        *machine_header(args.device),
        f"- data: {args.n_train} training images, {args.n_test} test images; "
        f"{args.n_draws} draws per budget; seed {args.seed}",
        "- accuracy in % at 1 / 10 / 100 labels per class / full training set: logistic "
        "regression on the codes as `transform` gives them (plain, the paper's protocol) and "
        "after a StandardScaler fitted on the labelled subset (standardised)",
        "- seconds are training time only (the clock stops while a checkpoint is scored)",
        "",
        "| setting | parameters | training s | iterations | E gap | code std | plain | "
        "standardised |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines = list(header)
    for name, result in results.items():
        if name == "pixels":
            continue
        params = ", ".join(f"{k}={v}" for k, v in result["params"].items()) or "defaults"
        for row in result["rows"]:
            plain = " / ".join(f"{mean:.1f}" for mean, _ in row["plain"])
            standard = " / ".join(f"{mean:.1f}" for mean, _ in row["standardized"])
            gap = row["energy_gap"]
            gap = "-" if gap is None else f"{gap:+.2f}"
            lines.append(
                f"| {name} | {params} | {row['training_seconds']:.0f} | {row['iterations']} | "
                f"{gap} | {row['code_std']:.3g} | {plain} | {standard} |"
            )
            if "training_weights" in row:
                training = " / ".join(f"{mean:.1f}" for mean, _ in row["training_weights"])
                lines.append(
                    f"| {name}, training's weights | (the same run, without the average) | "
                    f"{row['training_seconds']:.0f} | {row['iterations']} | | | {training} | |"
                )
    if "pixels" in results:
        pixels = results["pixels"]
        plain = " / ".join(f"{mean:.1f}" for mean, _ in pixels["plain"])
        standard = " / ".join(f"{mean:.1f}" for mean, _ in pixels["standardized"])
        lines.append(f"| raw pixels / 255 | | | | | | {plain} | {standard} |")
    lines.append(f"| raw pixels (issue 5) | | | | | | {' / '.join(map(str, ISSUE_PIXELS))} | |")
    write_lines(lines, args.output / "results.md")
    _plot(results, _budgets(args), args.output / "time_to_accuracy.png")


def _plot(results, budgets, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axes = plt.subplots(1, len(budgets), figsize=(4 * len(budgets), 3.5), sharex=True)
    for name, result in results.items():
        if name == "pixels":
            continue
        seconds = [row["training_seconds"] for row in result["rows"]]
        for column, axis in enumerate(axes):
            values = [row["plain"][column][0] for row in result["rows"] if row["plain"][column:]]
            if len(values) == len(seconds):
                axis.plot(seconds, values, marker="o", label=name)
    for column, axis in enumerate(axes):
        if "pixels" in results and column < len(results["pixels"]["plain"]):
            axis.axhline(results["pixels"]["plain"][column][0], color="k", ls="--", label="pixels")
        label = budgets[column]
        axis.set_title(f"{label} labels per class" if label else "full training set")
        axis.set_xlabel("training seconds")
    axes[0].set_ylabel("test accuracy (%), plain")
    axes[-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="*", default=["defaults"], choices=sorted(SETTINGS))
    parser.add_argument("--checkpoints", nargs="*", type=float, default=[300, 600, 1200])
    parser.add_argument("--pixels", action="store_true", help="also score raw pixels")
    parser.add_argument("--n-train", type=int, default=60_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-draws", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where to train: cpu, cuda, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="print the settings and exit")
    parser.add_argument("--quick", action="store_true", help="synthetic data, tiny budgets")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/time_to_accuracy"))
    parser.add_argument(
        "--save-models", type=Path, default=None, help="joblib-dump the encoder at each checkpoint"
    )
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="on CUDA, replay each PCD update as one CUDA graph; results keyed <setting>+graphs",
    )
    parser.add_argument(
        "--score-training-weights",
        action="store_true",
        help="with ema_decay set, also score the codes of training's own weights (plain)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.n_draws = 300, 100, 2
        args.checkpoints = [1.0, 3.0]
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, params in SETTINGS.items():
            print(f"{name:>16}: {params}")
        return {}
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    store = args.output / "results.json"
    results = json.loads(store.read_text())["results"] if store.exists() else {}
    data = load_data(args, np.random.default_rng(args.seed))
    if args.pixels:
        X_train, y_train, X_test, y_test = data
        results["pixels"] = score_features(X_train / 255.0, y_train, X_test / 255.0, y_test, args)
        print("pixels", results["pixels"], flush=True)
    for name in args.settings:
        key = f"{name}+graphs" if args.cuda_graphs else name
        results[key] = run_setting(name, data, args)
        store.write_text(json.dumps({"results": results}, indent=1))
        write_outputs(results, args)
    store.write_text(json.dumps({"results": results}, indent=1))
    write_outputs(results, args)
    return results


if __name__ == "__main__":
    main()
