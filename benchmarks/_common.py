"""What the benchmark scripts share: data, out-of-distribution sets, a training clock, and
the header that says which machine measured.

The folder is not a package. ``python benchmarks/<script>.py`` puts it first on
``sys.path``, so the scripts ``import _common``; tests/test_benchmarks_smoke.py puts it
there before it loads them.
"""

import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback
from tqdm.auto import tqdm

from sklearn_cebm.datasets import load_fashion_mnist

IMAGE_SHAPE = (1, 28, 28)
PIXEL_RANGE = (0.0, 255.0)  # Fashion-MNIST's
DIGITS_RANGE = (0.0, 16.0)  # scikit-learn's digits'


# ----------------------------------------------------------------- data
def fashion_mnist_home():
    """Where the Fashion-MNIST files are: ``$FASHION_MNIST_HOME`` where set (a copy carried
    to a machine without Debian's package), else ``load_fashion_mnist``'s default."""
    return os.environ.get("FASHION_MNIST_HOME") or None


def fashion_mnist_available():
    """Whether ``load_fashion_mnist`` finds the data on this machine."""
    try:
        load_fashion_mnist(fashion_mnist_home(), subset="test")
    except (OSError, ValueError):
        return False
    return True


def synthetic_images(n, rng):
    """A tiny stand-in for Fashion-MNIST, for machines without it: ten classes of bright
    bars at ten heights on noise, ``n`` rows of 784 pixels in 0-255, with the labels."""
    y = rng.integers(0, 10, size=n)
    images = rng.uniform(0, 55, size=(n, 28, 28)).astype(np.float32)
    for i, label in enumerate(y):
        images[i, 3 + 2 * label : 7 + 2 * label, 4:24] += 200.0
    return images.reshape(n, -1), y


def fashion_mnist_subset(subset, n, rng=None):
    """``n`` images (rows of 784 pixels in 0-255) of ``subset`` with their labels: drawn
    without replacement by ``rng``, or the first ``n`` where ``rng`` is None."""
    X, y = load_fashion_mnist(fashion_mnist_home(), subset=subset, return_X_y=True)
    rows = slice(n) if rng is None else rng.permutation(len(X))[:n]
    return X[rows], y[rows]


def load_images(source, n_train, n_test, rng, *, random_test=True):
    """``X_train, y_train, X_test, y_test`` from ``source``, 'fashion-mnist' or 'synthetic'.

    The training images are a random subset; the test images too, or the first ``n_test``
    where ``random_test`` is False.
    """
    if source == "synthetic":
        return (*synthetic_images(n_train, rng), *synthetic_images(n_test, rng))
    X_train, y_train = fashion_mnist_subset("train", n_train, rng)
    X_test, y_test = fashion_mnist_subset("test", n_test, rng if random_test else None)
    return X_train, y_train, X_test, y_test


def digits_halves(random_state=0):
    """scikit-learn's digits (rows of 8x8 pixels in 0-16) in stratified halves:
    ``X_train, y_train, X_test, y_test``."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=random_state
    )
    return X_train, y_train, X_test, y_test


# ----------------------------------------------------------------- out-of-distribution sets
# Every builder takes in-distribution images (rows of square images), a numpy Generator and
# the pixels' range, and returns as many outliers of the same shape.
def _side(n_features):
    side = round(np.sqrt(n_features))
    if side * side != n_features:
        raise ValueError(f"Rows of {n_features} pixels are not square images.")
    return side


def uniform_noise(inliers, rng, value_range=PIXEL_RANGE):
    """Every pixel drawn uniformly from ``value_range``."""
    return rng.uniform(*value_range, np.shape(inliers))


def constant_images(inliers, rng, value_range=PIXEL_RANGE):
    """Images of one value each, drawn uniformly from ``value_range``."""
    n, n_features = np.shape(inliers)
    return np.repeat(rng.uniform(*value_range, (n, 1)), n_features, axis=1)


def flipped_images(inliers, rng, value_range=PIXEL_RANGE):
    """The inliers upside down; draws nothing."""
    n, n_features = np.shape(inliers)
    side = _side(n_features)
    return np.asarray(inliers).reshape(n, side, side)[:, ::-1, :].reshape(n, -1)


def upscaled_digits(inliers, rng, value_range=PIXEL_RANGE):
    """scikit-learn's 8x8 digits, drawn with replacement, zoomed (bilinear) to the inliers'
    size and stretched from 0-16 to ``value_range``."""
    n, n_features = np.shape(inliers)
    side = _side(n_features)
    digits = load_digits().images
    digits = digits[rng.choice(len(digits), n)]
    upscaled = np.stack([zoom(image, side / 8, order=1) for image in digits])
    low, high = value_range
    return np.clip(low + upscaled * ((high - low) / 16), low, high).reshape(n, -1)


OUTLIER_BUILDERS = {
    "uniform noise": uniform_noise,
    "constant": constant_images,
    "flipped": flipped_images,
    "digits": upscaled_digits,
}


def outlier_sets(inliers, rng, names=tuple(OUTLIER_BUILDERS), value_range=PIXEL_RANGE):
    """``{name: outliers}`` from the builders ``names``, drawn in that order."""
    return {name: OUTLIER_BUILDERS[name](inliers, rng, value_range) for name in names}


# ----------------------------------------------------------------- the training clock
class TrainingClock(Callback):
    """Times training and stops it once it has taken ``target`` seconds.

    Records the seconds of every batch (``batch_seconds_``) and of all training so far,
    summed over calls to ``fit`` and ``partial_fit`` (``spent_``). Once ``spent_`` reaches
    ``target`` it raises KeyboardInterrupt, on which skorch ends the call cleanly after
    that batch; the caller may move ``target`` on and train again.

    Parameters
    ----------
    target : float or None, default=None
        Seconds of training; None never stops.
    description : str or None, default=None
        Show the seconds spent against ``target`` in a progress bar with this label.
    """

    def __init__(self, target=None, description=None):
        self.target = target
        self.description = description

    def initialize(self):
        self.spent_ = 0.0
        self.batch_seconds_ = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.bar_ = None
        if self.description is not None and self.target is not None:
            total = round(self.target)
            self.bar_ = tqdm(total=total, desc=self.description, unit="s", leave=False)
        self.started_ = time.perf_counter()

    def on_batch_begin(self, net, **kwargs):
        self.batch_started_ = time.perf_counter()

    def on_batch_end(self, net, **kwargs):
        now = time.perf_counter()
        self.batch_seconds_.append(now - self.batch_started_)
        spent = self.spent_ + now - self.started_
        if self.bar_ is not None:
            self.bar_.n = min(round(spent), self.bar_.total)
            self.bar_.refresh()
        if self.target is not None and spent >= self.target:
            raise KeyboardInterrupt

    def on_train_end(self, net, **kwargs):
        self.spent_ += time.perf_counter() - self.started_
        if self.bar_ is not None:
            self.bar_.close()


class GraphedUpdates(Callback):
    """Trains with each PCD update replayed as one CUDA graph, on a CUDA device.

    Sets the training net's ``cuda_graphs`` for the call (no estimator parameter exposes
    it yet); the first updates run eagerly and the graph is captured after them. On other
    devices the net ignores it. Inference after training is unchanged.
    """

    def on_train_begin(self, net, **kwargs):
        net.cuda_graphs = True

    def on_train_end(self, net, **kwargs):
        net.cuda_graphs = False


def training_iterations(estimator):
    """Parameter updates so far: the batches in the estimator's skorch history."""
    return int(sum(len(epoch["batches"]) for epoch in estimator.history_))


# ----------------------------------------------------------------- markdown tables
def markdown_row(cells):
    """``| a | b | ... |`` from the cells."""
    return "| " + " | ".join(map(str, cells)) + " |"


def add_row(lines, cells):
    """Append the row of ``cells`` to ``lines`` and print it: a long run shows its rows as
    they come."""
    lines.append(markdown_row(cells))
    print(lines[-1], flush=True)


def write_lines(lines, path):
    """Write ``lines`` to ``path``, one a line; nothing where ``path`` is None."""
    if path is not None:
        Path(path).write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------- the machine
# The instruction sets torch's CPU kernels pick from, as /proc/cpuinfo names them.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpu_model_and_flags():
    """The CPU's model name and flags from /proc/cpuinfo (Linux); elsewhere what
    ``platform`` knows and no flags."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    return model, fields.get("flags", "").split()


def machine_info():
    """What measured: CPU, its flags among ``CPU_FLAGS``, threads and versions, as a dict."""
    model, flags = _cpu_model_and_flags()
    return {
        "cpu": model,
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_header(device="cpu"):
    """``machine_info`` as the lines of a markdown list."""
    info = machine_info()
    flags = ", ".join(info["cpu_flags"]) or f"none of {', '.join(CPU_FLAGS)}"
    return [
        f"- machine: {info['cpu']} ({flags}; torch uses {info['torch_cpu_capability']}), "
        f"{info['cpu_cores']} CPU cores, {info['torch_threads']} torch threads, device {device}",
        f"- torch {info['torch']}, scikit-learn {info['scikit-learn']}, "
        f"Python {info['python']}, {info['platform']}",
    ]
