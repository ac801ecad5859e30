"""Shared fixtures: tiny data and cheap estimator settings; the report's data header."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from sklearn_cebm._core import precision
from sklearn_cebm.datasets import FASHION_MNIST_HOME

# Settings under which one fit on a few hundred rows takes a fraction of a second.
CHEAP_SETTINGS = dict(
    n_components=4,
    hidden_layer_sizes=(16,),
    max_iter=2,
    batch_size=32,
    sgld_steps=3,
    buffer_size=64,
    learning_rate=1e-3,
)

# For tests of tiny clusterers that are not about cluster usage: such fits may leave
# clusters empty, which fit warns of (tests/clustering/test_clusterer.py tests the warning).
allow_empty_clusters = pytest.mark.filterwarnings(
    "ignore:.*clusters; the others are empty:sklearn.exceptions.ConvergenceWarning"
)

# What Debian's dataset-fashion-mnist installs, and the real-data tests read.
FASHION_MNIST_FILES = [
    f"{split}-{kind}-ubyte.gz"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
]


def missing_fashion_mnist_files():
    """The Fashion-MNIST files absent from ``FASHION_MNIST_HOME``; empty when all are there."""
    return [name for name in FASHION_MNIST_FILES if not (Path(FASHION_MNIST_HOME) / name).is_file()]


def pytest_report_header(config):
    """Say at the top of every report whether the real-data tests can run."""
    missing = missing_fashion_mnist_files()
    if not missing:
        return f"Fashion-MNIST: found in {FASHION_MNIST_HOME}; the real-data tests run"
    return (
        f"Fashion-MNIST: NOT found in {FASHION_MNIST_HOME} (missing {', '.join(missing)}); "
        "the real-data tests are SKIPPED (apt-get install dataset-fashion-mnist)"
    )


def pytest_configure(config):
    """One thread per BLAS and OpenMP pool in each pytest-xdist worker.

    The workers already fill the cores; numpy's BLAS and scikit-learn's OpenMP (k-means)
    would otherwise start a thread per core in each. Kept for the worker's whole life;
    torch's thread count is also set per test, by ``_single_thread_torch`` below.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        threadpool_limits(limits=1)


def pytest_collection_modifyitems(config, items):
    """Start the tests marked ``runs_first`` (minutes each) before the others.

    Under pytest-xdist's ``worksteal`` distribution a worker starts them at once while the
    other takes the rest, and the workers then share what is left: started last, the
    docs build alone would end the run minutes after the other worker had finished.
    """
    items.sort(key=lambda item: item.get_closest_marker("runs_first") is None)


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Keep torch to one thread per test so parallel test workers do not oversubscribe."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _auto_precision_is_float32(request, monkeypatch):
    """Make ``precision='auto'`` (the default) float32 on every machine.

    Whether it is bfloat16 depends on the CPU, which differs between the machines CI runs
    on: the tests would train different models on different machines. The tests of
    bfloat16 ask for it by name; those of the hardware detection itself are marked
    ``hardware_precision`` and see the real one.
    """
    if request.node.get_closest_marker("hardware_precision") is None:
        monkeypatch.setattr(precision, "has_native_bfloat16", lambda device: False)


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 2.0, -2.0]])
    labels = rng.integers(0, 3, size=150)
    return centers[labels] + 0.3 * rng.standard_normal((150, 3)), labels


@pytest.fixture
def X(blobs):
    """The blobs' points, for the tests that need no labels."""
    return blobs[0]


@pytest.fixture(scope="session")
def digits():
    """300 of scikit-learn's 8x8 digits, pixels 0 to 16: tiny images for the convolutions."""
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]
