"""IDX reading and the Fashion-MNIST loader, on small files the tests write."""

import gzip

import numpy as np
import pytest
from sklearn.utils import Bunch

from sklearn_cebm.datasets import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_HOME,
    load_fashion_mnist,
    load_idx_folder,
    read_idx,
)

from .conftest import missing_fashion_mnist_files

TYPE_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def _idx_bytes(array, type_code=None):
    array = np.asarray(array)
    code = TYPE_CODES[array.dtype.type] if type_code is None else type_code
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, content, compress=False):
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


def _write_fashion_mnist(folder, n_train=5, n_test=3, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    splits = {"train": n_train, "t10k": n_test}
    for prefix, n_images in splits.items():
        images = rng.integers(0, 256, size=(n_images, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_images, dtype=np.uint8)
        _write(folder / f"{prefix}-images-idx3-ubyte{suffix}", _idx_bytes(images), compress)
        _write(folder / f"{prefix}-labels-idx1-ubyte{suffix}", _idx_bytes(labels), compress)
    return folder


# ----------------------------------------------------------------- read_idx
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(TYPE_CODES))
def test_read_idx_round_trips_every_type(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 2)) * 50).astype(dtype)
    path = _write(tmp_path / "array-idx3", _idx_bytes(array), compress)
    result = read_idx(path)
    np.testing.assert_array_equal(result, array)
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    assert result.flags.writeable


def test_read_idx_recognises_gzip_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    gzipped = _write(tmp_path / "plain-name-idx1-ubyte", _idx_bytes(array), compress=True)
    plain = _write(tmp_path / "gz-name-idx1-ubyte.gz", _idx_bytes(array))
    np.testing.assert_array_equal(read_idx(gzipped), array)
    np.testing.assert_array_equal(read_idx(str(plain)), array)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not an IDX file"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x00", "not an IDX file"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00", "unknown IDX type code 0x0A"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "header is truncated"),
        (b"\x00\x00\x08\x00", "declares 0 dimensions"),
        (_idx_bytes(np.zeros(4, np.uint8))[:-1], "holds 3 bytes"),
        (_idx_bytes(np.zeros(4, np.uint8)) + b"\x00", "holds 5 bytes"),
        (_idx_bytes(np.zeros(4, np.int32))[:-2], r"shape \(4,\) of int32 \(16 bytes\)"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, content, match):
    path = _write(tmp_path / "bad-idx1", content)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent-idx1-ubyte")


# ----------------------------------------------------------------- load_idx_folder
def test_load_idx_folder_reads_the_idx_files_only(tmp_path):
    _write(tmp_path / "b-idx1-ubyte.gz", _idx_bytes(np.arange(3, dtype=np.uint8)), compress=True)
    _write(tmp_path / "a-idx2-float", _idx_bytes(np.eye(2, dtype=np.float32)))
    (tmp_path / "README.txt").write_text("not data")
    (tmp_path / "sub-idx1").mkdir()
    arrays = load_idx_folder(tmp_path)
    assert list(arrays) == ["a-idx2-float", "b-idx1-ubyte"]
    np.testing.assert_array_equal(arrays["a-idx2-float"], np.eye(2))
    np.testing.assert_array_equal(arrays["b-idx1-ubyte"], [0, 1, 2])


def test_load_idx_folder_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_idx_folder(tmp_path / "absent")


# ----------------------------------------------------------------- load_fashion_mnist
@pytest.mark.parametrize("compress", [True, False])
def test_load_fashion_mnist_bunch(tmp_path, compress):
    folder = _write_fashion_mnist(tmp_path, compress=compress)
    bunch = load_fashion_mnist(folder)
    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (5, 784) and bunch.data.dtype == np.float32
    assert bunch.images.shape == (5, 28, 28) and np.shares_memory(bunch.data, bunch.images)
    raw = load_idx_folder(folder)
    np.testing.assert_array_equal(bunch.images, raw["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(bunch.target, raw["train-labels-idx1-ubyte"])
    assert bunch.target.dtype == np.int64
    assert list(bunch.target_names) == list(FASHION_MNIST_CLASSES)
    # Label i names class i, in the order of Fashion-MNIST's README.
    assert ", ".join(FASHION_MNIST_CLASSES) == (
        "T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot"
    )
    assert len(bunch.feature_names) == 784 and bunch.feature_names[29] == "pixel_1_1"
    assert "Fashion-MNIST" in bunch.DESCR


def test_load_fashion_mnist_subsets_and_return_x_y(tmp_path):
    folder = _write_fashion_mnist(tmp_path)
    X_train, y_train = load_fashion_mnist(folder, subset="train", return_X_y=True)
    X_test, y_test = load_fashion_mnist(folder, subset="test", return_X_y=True)
    X_all, y_all = load_fashion_mnist(folder, subset="all", return_X_y=True)
    assert X_train.shape == (5, 784) and X_test.shape == (3, 784)
    np.testing.assert_array_equal(X_all, np.concatenate([X_train, X_test]))
    np.testing.assert_array_equal(y_all, np.concatenate([y_train, y_test]))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_load_fashion_mnist_dtype_keeps_raw_pixel_values(tmp_path, dtype):
    folder = _write_fashion_mnist(tmp_path)
    X, _ = load_fashion_mnist(folder, dtype=dtype, return_X_y=True)
    assert X.dtype == dtype
    raw = read_idx(folder / "train-images-idx3-ubyte.gz").reshape(5, -1)
    np.testing.assert_array_equal(X, raw)


def test_load_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist(tmp_path / "nowhere", subset="test")
    assert "data_home" in str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)


def test_load_fashion_mnist_rejects_inconsistent_files(tmp_path):
    folder = _write_fashion_mnist(tmp_path)
    labels = np.zeros(4, dtype=np.uint8)
    _write(folder / "train-labels-idx1-ubyte.gz", _idx_bytes(labels), compress=True)
    with pytest.raises(ValueError, match="expected"):
        load_fashion_mnist(folder)


def test_load_fashion_mnist_rejects_an_unknown_subset(tmp_path):
    with pytest.raises(ValueError, match="subset must be"):
        load_fashion_mnist(tmp_path, subset="validation")


@pytest.mark.slow
@pytest.mark.skipif(
    bool(missing_fashion_mnist_files()),
    reason=f"Fashion-MNIST is not in {FASHION_MNIST_HOME} (apt-get install dataset-fashion-mnist)",
)
@pytest.mark.parametrize(("subset", "n_per_class"), [("test", 1000), ("train", 6000)])
def test_load_fashion_mnist_real_data(subset, n_per_class):
    bunch = load_fashion_mnist(subset=subset, dtype=np.uint8)
    assert bunch.data.shape == (10 * n_per_class, 784)
    assert bunch.data.min() == 0 and bunch.data.max() == 255
    np.testing.assert_array_equal(np.bincount(bunch.target), np.full(10, n_per_class))
