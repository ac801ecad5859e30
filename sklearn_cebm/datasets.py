"""Readers for IDX files and the Fashion-MNIST data set the paper's tables use."""

import gzip
import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_fashion_mnist", "load_idx_folder", "read_idx"]

# The third byte of an IDX file's magic number names the element type; data are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
# IDX files are conventionally named like 'train-images-idx3-ubyte', optionally '.gz'.
_IDX_NAME = re.compile(r"idx\d+")

FASHION_MNIST_HOME = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FASHION_MNIST_DESCR = """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017)
---------------------------------------------------
Greyscale 28x28 images of Zalando's articles of clothing in 10 classes, 60,000 for
training and 10,000 for testing, a drop-in replacement for MNIST. Pixels are 0 (background)
to 255. Read from the IDX files of https://github.com/zalandoresearch/fashion-mnist (MIT
licence), as packaged by Debian's ``dataset-fashion-mnist``.
"""


def _parse_idx_header(raw, source):
    """Element dtype, shape and header length of the IDX bytes ``raw``."""
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(
            f"{source} is not an IDX file: it must start with two zero bytes, a type code "
            "and the number of dimensions."
        )
    type_code, n_dims = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise ValueError(f"{source} has unknown IDX type code 0x{type_code:02X}; known: {known}.")
    header_length = 4 + 4 * n_dims
    if n_dims == 0 or len(raw) < header_length:
        raise ValueError(
            f"{source} declares {n_dims} dimensions but its header is truncated or empty."
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", n_dims, offset=4))
    return _IDX_DTYPES[type_code], shape, header_length


def read_idx(path):
    """Read one IDX file (the format of MNIST and Fashion-MNIST), gzipped or not.

    An IDX file is a magic number (two zero bytes, a type code, the number of dimensions),
    one big-endian 32-bit size per dimension, then the elements in C order, big-endian.
    Compression is recognised by gzip's magic bytes, not by the file name.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        Of the shape the header declares and the element type its type code names (uint8,
        int8, int16, int32, float32 or float64), in native byte order.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the header is malformed, the type code unknown, or the data are not the size
        the header declares.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_cebm.datasets import read_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny-idx2-ubyte")
    >>> with open(path, "wb") as file:
    ...     _ = file.write(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    >>> read_idx(path)
    array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8)
    """
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    dtype, shape, header_length = _parse_idx_header(raw, os.fspath(path))
    expected_bytes = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header_length != expected_bytes:
        raise ValueError(
            f"{os.fspath(path)} declares shape {shape} of {dtype.name} ({expected_bytes} bytes) "
            f"but holds {len(raw) - header_length} bytes of data."
        )
    data = np.frombuffer(raw, dtype, offset=header_length).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def load_idx_folder(folder):
    """Read every IDX file of a folder: the files whose names contain ``idx<N>``.

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    dict of str to ndarray
        Keyed by file name without a ``.gz`` suffix (``'train-images-idx3-ubyte'``), in
        sorted order.

    Raises
    ------
    FileNotFoundError
        If ``folder`` is not a directory.
    ValueError
        If one of the files is not a well-formed IDX file.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_cebm.datasets import load_idx_folder
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "labels-idx1-ubyte"), "wb") as file:
    ...     _ = file.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> load_idx_folder(folder)
    {'labels-idx1-ubyte': array([7, 8, 9], dtype=uint8)}
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{os.fspath(folder)} is not a folder.")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and _IDX_NAME.search(p.name))
    return {path.name.removesuffix(".gz"): read_idx(path) for path in paths}


def _find_idx_file(folder, stem):
    """The path of ``stem`` or ``stem.gz`` in ``folder``, or None."""
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_fashion_mnist_subset(folder, subset):
    """Images ``(n, 28, 28)`` and labels ``(n,)`` of one of the two official splits."""
    stems = _FASHION_MNIST_FILES[subset]
    paths = [_find_idx_file(folder, stem) for stem in stems]
    missing = [f"{stem}.gz" for stem, path in zip(stems, paths, strict=True) if path is None]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files missing from {os.fspath(folder)}: {', '.join(missing)}. "
            "Install them with `apt-get install dataset-fashion-mnist` (Debian, Ubuntu) or "
            "pass data_home= a folder holding the IDX files of "
            "https://github.com/zalandoresearch/fashion-mnist."
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"Fashion-MNIST {subset} files hold images of shape {images.shape} and labels of "
            f"shape {labels.shape}; expected (n, 28, 28) and (n,)."
        )
    return images, labels


def load_fashion_mnist(data_home=None, *, subset="train", dtype=np.float32, return_X_y=False):
    """Load Fashion-MNIST from its IDX files.

    =====================  ==============
    Classes                            10
    Samples (train, test)   60000, 10000
    Dimensionality                    784
    Features               integers 0-255
    =====================  ==============

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (or the same
        uncompressed); ``None`` for ``/usr/share/datasets/fashion-mnist``, where Debian's
        ``dataset-fashion-mnist`` package puts them.
    subset : {'train', 'test', 'all'}, default='train'
        The 60,000 training images, the 10,000 test images, or both (training first).
    dtype : numpy dtype, default=numpy.float32
        Of ``data`` and ``images``. The raw pixel values 0-255 are kept (no rescaling); they
        are exact in any float type. float32, the precision the models compute in, takes a
        quarter of float64's memory (188 MB for all 70,000 images); ``numpy.uint8`` keeps
        the files' own bytes.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` of shape (n, 784), the flattened images; ``images`` of shape
        (n, 28, 28), a view of the same memory; ``target`` of shape (n,), int64 class
        indices; ``target_names``, the 10 class names; ``feature_names``
        (``'pixel_<row>_<column>'``); ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If the files are not in the folder; the message says how to get them.

    References
    ----------
    H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking
    Machine Learning Algorithms. arXiv:1708.07747, 2017.

    Examples
    --------
    >>> from sklearn_cebm.datasets import load_fashion_mnist
    >>> try:
    ...     X, y = load_fashion_mnist(subset="test", return_X_y=True)
    ... except FileNotFoundError as error:
    ...     print("apt-get install dataset-fashion-mnist" in str(error))
    ... else:
    ...     print(X.shape == (10000, 784) and y.shape == (10000,))
    True
    """
    if subset not in ("train", "test", "all"):
        raise ValueError(f"subset must be 'train', 'test' or 'all'; got {subset!r}.")
    folder = Path(FASHION_MNIST_HOME if data_home is None else data_home)
    subsets = ("train", "test") if subset == "all" else (subset,)
    parts = [_read_fashion_mnist_subset(folder, name) for name in subsets]
    images = np.concatenate([part[0] for part in parts]).astype(dtype, copy=False)
    target = np.concatenate([part[1] for part in parts]).astype(np.int64)
    data = images.reshape(len(images), -1)
    if return_X_y:
        return data, target
    height, width = images.shape[1:]
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=np.array(FASHION_MNIST_CLASSES),
        feature_names=[f"pixel_{row}_{column}" for row in range(height) for column in range(width)],
        DESCR=_FASHION_MNIST_DESCR,
    )
