"""Scaling up: a search on 2 dask workers against 1, a memmap stream against a fit (issue 13).

``search``: the same ``GridSearchCV`` (a CEBMEncoder's codes read by a logistic
regression, on scikit-learn's digits) on a local dask cluster of one worker process and of
two, each worker with one thread and so one torch thread. The clock runs around
``search.fit`` only; the cluster's start, with a one-epoch search that
warms its workers (imports, torch's first calls), is timed apart. The runs alternate between the two
clusters, so that drift of a shared machine falls on both alike.

``stream``: one CEBMEncoder (the MLP on 28x28 images) trained three ways on the same
training images: ``fit`` on them in memory; ``partial_fit`` over chunks read from a
``numpy.memmap`` of them on disk, as many passes as the fit's epochs, with
``input_range=(0, 255)``; and the same over the blocks of a dask array on that memmap.
Each is timed from its data on disk (the in-memory fit reads the whole file first) and
judged by the few-label accuracy of its codes and the AUROC of ``score_samples`` against
uniform noise, on held-out images.

``processes``: one CEBMEncoder (the MLP on 28x28 images, or ``--encoder cnn``) trained
on the same images by two processes at once (``accelerate launch``, each process one
torch thread and half of every global batch of 128) and by one process (one thread, then
two threads, batch 128):
the same updates, the same global batch. Each is timed around ``fit`` in the main
process, after all processes have started, and judged as ``stream``'s are.

Usage: ``python benchmarks/scaling.py search --output search.md``
and ``python benchmarks/scaling.py stream --output stream.md``
and ``python benchmarks/scaling.py processes --output processes.md``; the current results are
the sections of ``benchmarks/results/scaling.md``, one per such report, and their JSON files
under the section's name in ``benchmarks/results/scaling.json``
(a .json beside each). ``search``, the dask row of ``stream`` and ``processes`` need the
``scaling`` extra.
"""

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    fashion_mnist_available,
    load_images,
    machine_header,
    machine_info,
    markdown_row,
    write_lines,
)
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklearn_cebm import CEBMEncoder
from sklearn_cebm.evaluation import few_label_accuracy


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
        *_report_head("# A search on 2 dask workers against 1"),
        "",
        "| workers | search s | cluster start and warm-up s | mean accuracy (n_components 8, 16) |",
        "|---|---|---|---|",
    ]
    for run in runs:
        scores = ", ".join(f"{score:.3f}" for score in run["scores"])
        cells = [run["workers"], f"{run['search_s']:.1f}", f"{run['cluster_start_s']:.1f}"]
        lines.append(markdown_row([*cells, scores]))
    _write_report(lines, runs, args)


def _report_head(title):
    """A report's title, its command and the machine's header."""
    return [title, "", f"Command: `{' '.join(sys.argv)}`", "", *machine_header()]


def _images(args):
    """The source's name and ``args.n_train`` training and 2,000 held-out images, float32."""
    source = "fashion-mnist" if fashion_mnist_available() else "synthetic"
    rng = np.random.default_rng(args.seed)
    X_train, y_train, X_test, y_test = load_images(source, args.n_train, 2000, rng)
    return source, (X_train.astype(np.float32), y_train, X_test.astype(np.float32), y_test)


def _write_report(lines, runs, args):
    write_lines(lines, args.output)
    if args.output:
        with open(args.output.rsplit(".", 1)[0] + ".json", "w") as file:
            json.dump({"machine": machine_info(), "argv": sys.argv, "runs": runs}, file, indent=1)


def _stream_chunks(X, chunk_rows):
    """Rows of ``X`` (an array or a memmap) in chunks, each read into memory in turn."""
    for start in range(0, len(X), chunk_rows):
        yield np.asarray(X[start : start + chunk_rows])


def _judge(encoder, X_train, y_train, X_test, y_test, seed):
    accuracy = few_label_accuracy(
        encoder.transform(X_train),
        y_train,
        encoder.transform(X_test),
        y_test,
        labels_per_class=(10, None),
        random_state=seed,
    )
    noise = np.random.default_rng(seed).uniform(0, 255, size=X_test.shape).astype(np.float32)
    scores = np.r_[encoder.score_samples(X_test), encoder.score_samples(noise)]
    is_image = np.r_[np.ones(len(X_test)), np.zeros(len(noise))]
    return {
        "accuracy_10_per_class": accuracy[10][0],
        "accuracy_all_labels": accuracy[None][0],
        "auroc_vs_noise": float(roc_auc_score(is_image, scores)),
    }


def _train(how, path, shape, args):
    """Train one encoder from the memmap at ``path``, ``how`` in memory or as a stream."""
    encoder = CEBMEncoder(
        image_shape=(1, 28, 28),
        encoder="mlp",
        max_iter=args.epochs,
        precision="float32",
        random_state=args.seed,
    )
    on_disk = np.memmap(path, dtype=np.float32, mode="r", shape=shape)
    start = time.perf_counter()
    if how == "fit in memory":
        encoder.fit(np.array(on_disk))
    elif how == "memmap stream":
        for _ in range(args.epochs):
            for chunk in _stream_chunks(on_disk, args.chunk_rows):
                encoder.partial_fit(chunk, input_range=(0, 255))
    else:
        import dask.array as da

        lazy = da.from_array(on_disk, chunks=(args.chunk_rows, -1))
        for _ in range(args.epochs):
            for block in lazy.blocks:
                encoder.partial_fit(block, input_range=(0, 255))
    return encoder, time.perf_counter() - start


def run_stream(args):
    source, (X_train, y_train, X_test, y_test) = _images(args)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.float32"
        on_disk = np.memmap(path, dtype=np.float32, mode="w+", shape=X_train.shape)
        on_disk[:] = X_train
        on_disk.flush()
        del on_disk
        # torch's first calls in this process are slow: paid by a throwaway fit first.
        CEBMEncoder(image_shape=(1, 28, 28), encoder="mlp", max_iter=1).fit(X_train[:256])
        ways = ("fit in memory", "memmap stream", "dask array stream")
        # Alternating the order, so that a shared machine's drift falls on each alike.
        order = [how for repeat in range(args.repeats) for how in ways[:: (-1) ** repeat]]
        for how in order:
            encoder, seconds = _train(how, path, X_train.shape, args)
            quality = _judge(encoder, X_train, y_train, X_test, y_test, args.seed)
            runs.append(
                {
                    "how": how,
                    "seconds": seconds,
                    "updates": int(sum(len(epoch["batches"]) for epoch in encoder.history_)),
                    **quality,
                }
            )
            print(runs[-1], flush=True)
    lines = [
        *_report_head("# A memmap stream against an in-memory fit"),
        f"- data: {source}, {args.n_train} training images (float32 on disk), 2,000 held out;"
        f" {args.epochs} epochs, chunks of {args.chunk_rows} rows",
        "",
        "| training | s | updates | accuracy, 10 labels / class | all labels | AUROC vs noise |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        cells = [run["how"], f"{run['seconds']:.1f}", run["updates"]]
        cells += [f"{run[key]:.3f}" for key in ("accuracy_10_per_class", "accuracy_all_labels")]
        lines.append(markdown_row([*cells, f"{run['auroc_vs_noise']:.3f}"]))
    _write_report(lines, runs, args)


def _processes_worker(args):
    """One training run, in each process of a launch (or alone): writes the main
    process's figures to ``args.report``."""
    accelerator = None
    if args.processes > 1:
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=not torch.cuda.is_available())
    source, (X_train, y_train, X_test, y_test) = _images(args)
    encoder = CEBMEncoder(
        image_shape=(1, 28, 28),
        encoder=args.encoder,
        max_iter=args.epochs,
        batch_size=args.global_batch // args.processes,
        precision="float32",
        random_state=args.seed,
        accelerator=accelerator,
    )
    # torch's first calls in a process are slow: paid by a throwaway fit first.
    CEBMEncoder(image_shape=(1, 28, 28), encoder="mlp", max_iter=1).fit(X_train[:256])
    if accelerator is not None:
        accelerator.wait_for_everyone()
    start = time.perf_counter()
    encoder.fit(X_train)
    seconds = time.perf_counter() - start
    if accelerator is not None:
        accelerator.wait_for_everyone()
        accelerator.end_training()
        if not accelerator.is_main_process:
            return
    run = {
        "processes": args.processes,
        "threads_per_process": int(os.environ.get("OMP_NUM_THREADS", "0")),
        "batch_size_per_process": encoder.batch_size,
        "seconds": seconds,
        "updates": int(sum(len(epoch["batches"]) for epoch in encoder.history_)),
        "source": source,
        **_judge(encoder, X_train, y_train, X_test, y_test, args.seed),
    }
    with open(args.report, "w") as file:
        json.dump(run, file)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(processes, threads, args, report):
    """Run the worker in ``processes`` processes of ``threads`` torch threads each."""
    worker = [
        __file__,
        "processes-worker",
        f"--processes={processes}",
        f"--n-train={args.n_train}",
        f"--epochs={args.epochs}",
        f"--global-batch={args.global_batch}",
        f"--seed={args.seed}",
        f"--encoder={args.encoder}",
        f"--report={report}",
    ]
    if processes > 1:
        # accelerate's torchrun launcher (--multi_gpu) starts CPU processes on gloo where
        # there is no GPU; --cpu would start one process.
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        launch += [f"--num_processes={processes}", "--num_machines=1"]
        launch += ["--mixed_precision=no", "--dynamo_backend=no"]
        command = [*launch, f"--main_process_port={_free_port()}", *worker]
    else:
        command = [sys.executable, *worker]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    subprocess.run(command, env=env, check=True)
    with open(report) as file:
        return json.load(file)


def run_processes(args):
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        report = str(Path(folder) / "run.json")
        for repeat in range(args.repeats):
            setups = [(2, 1), (1, 1), (1, 2)]
            for processes, threads in setups[:: (-1) ** repeat]:
                runs.append(_launch(processes, threads, args, report))
                print(runs[-1], flush=True)
    lines = [
        *_report_head("# One model trained by two processes against one"),
        f"- data: {runs[0]['source']}, {args.n_train} training images, 2,000 held out;"
        f" CEBMEncoder with encoder={args.encoder!r}, {args.epochs} epochs, global batch"
        f" {args.global_batch}",
        "",
        "| processes x threads | batch per process | s | updates | accuracy, 10 labels / class "
        "| all labels | AUROC vs noise |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        cells = [f"{run['processes']} x {run['threads_per_process']}"]
        cells += [run["batch_size_per_process"], f"{run['seconds']:.1f}", run["updates"]]
        cells += [f"{run[key]:.3f}" for key in ("accuracy_10_per_class", "accuracy_all_labels")]
        lines.append(markdown_row([*cells, f"{run['auroc_vs_noise']:.3f}"]))
    _write_report(lines, runs, args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="a search on 2 dask workers against 1")
    search.add_argument("--max-iter", type=int, default=20)
    search.add_argument("--repeats", type=int, default=2)
    search.add_argument("--output", default=None, help="markdown report; a .json beside it")
    stream = commands.add_parser("stream", help="a memmap stream against an in-memory fit")
    stream.add_argument("--n-train", type=int, default=10000)
    stream.add_argument("--epochs", type=int, default=3)
    stream.add_argument("--chunk-rows", type=int, default=1000)
    stream.add_argument("--seed", type=int, default=0)
    stream.add_argument("--repeats", type=int, default=2)
    stream.add_argument("--output", default=None, help="markdown report; a .json beside it")
    processes = commands.add_parser("processes", help="two training processes against one")
    worker = commands.add_parser("processes-worker", help="one run of 'processes'")
    for command in (processes, worker):
        command.add_argument("--n-train", type=int, default=10000)
        command.add_argument("--epochs", type=int, default=3)
        command.add_argument("--global-batch", type=int, default=128)
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--encoder", choices=["mlp", "cnn"], default="mlp")
    processes.add_argument("--repeats", type=int, default=2)
    processes.add_argument("--output", default=None, help="markdown report; a .json beside it")
    worker.add_argument("--processes", type=int, required=True)
    worker.add_argument("--report", required=True)
    args = parser.parse_args(argv)
    commands = {"search": run_search, "stream": run_stream, "processes": run_processes}
    commands["processes-worker"] = _processes_worker
    commands[args.command](args)


if __name__ == "__main__":
    main()
