"""The clustering benchmark's data sets: each a function of a seed-free recipe that
returns ``X_train, y_train, X_test, y_test`` (``X_test`` None where a set is fitted and
scored whole).

Beyond the digits and Fashion-MNIST the team tunes on, the sets are built to be unlike
them in the ways a new image set can be: other sizes (subsets of 5,000 / 20,000 / 60,000
images), fewer classes, images shifted or with their contrast changed, and an MNIST-like
set of 28x28 handwritten digits made from scikit-learn's 8x8 digits, upscaled and
randomly rotated, scaled, sheared, shifted and thickened. Its training and test images
come from disjoint halves of the originals, so the test digits are other writers'.
Every set is drawn by a fixed generator, so every method and seed sees the same images.
"""

import numpy as np
from _common import fashion_mnist_subset, synthetic_images
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["CLUSTERING_SETS", "load_clustering_set"]

SIDE = 28


def _fashion(n_train, n_test, classes=None):
    """A random subset of Fashion-MNIST's training and test images, of ``classes`` only
    where given."""
    rng = np.random.default_rng(0)
    X_train, y_train = fashion_mnist_subset("train", 60000, rng)
    X_test, y_test = fashion_mnist_subset("test", 10000, rng)
    if classes is not None:
        keep_train, keep_test = np.isin(y_train, classes), np.isin(y_test, classes)
        X_train, y_train = X_train[keep_train], y_train[keep_train]
        X_test, y_test = X_test[keep_test], y_test[keep_test]
    return X_train[:n_train], y_train[:n_train], X_test[:n_test], y_test[:n_test]


def _shifted(images, rng, max_shift=3):
    """Each 28x28 image moved by a random whole number of pixels in each direction."""
    shifted = np.empty_like(images)
    for i, image in enumerate(images.reshape(-1, SIDE, SIDE)):
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
        shifted[i] = np.roll(image, (dy, dx), axis=(0, 1)).ravel()
    return shifted


def _contrast_changed(images, rng):
    """Each image's intensities raised to a random power (gamma 0.4-2.5) and scaled by a
    random gain (0.5-1), as photographs under other exposures."""
    unit = images / 255.0
    gamma = np.exp(rng.uniform(np.log(0.4), np.log(2.5), size=(len(images), 1)))
    gain = rng.uniform(0.5, 1.0, size=(len(images), 1))
    return 255.0 * gain * unit**gamma


def _fashion_transformed(n_train, n_test, transform):
    X_train, y_train, X_test, y_test = _fashion(n_train, n_test)
    rng = np.random.default_rng(1)
    return transform(X_train, rng), y_train, transform(X_test, rng), y_test


def _handwritten(originals, rng):
    """28x28 images in 0-255, a random affine warp of each of the 8x8 ``originals``
    (values 0-16) upscaled to 20x20 and centred, as MNIST centres its digits: rotated by
    up to 20 degrees, scaled by 0.8-1.2, sheared by up to 0.3, shifted by up to 2
    pixels, its strokes thickened or thinned at random."""
    centre = (SIDE - 1) / 2
    images = np.empty((len(originals), SIDE * SIDE), dtype=np.float32)
    for i, original in enumerate(originals):
        canvas = np.zeros((SIDE, SIDE))
        canvas[4:24, 4:24] = ndimage.zoom(original, 20 / 8, order=1)
        angle = np.deg2rad(rng.uniform(-20, 20))
        scale = rng.uniform(0.8, 1.2)
        shear = rng.uniform(-0.3, 0.3)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        forward = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]])
        inverse = np.linalg.inv(forward)
        shift = rng.uniform(-2, 2, size=2)
        offset = centre - inverse @ (centre + shift)
        warped = ndimage.affine_transform(canvas, inverse, offset=offset, order=1)
        thickness = rng.integers(-1, 2)
        if thickness > 0:
            warped = ndimage.grey_dilation(warped, size=(2, 2))
        elif thickness < 0:
            warped = np.clip(warped - 4.0, 0, None)
        images[i] = np.clip(warped * (255 / 16), 0, 255).ravel()
    return images


def _handwritten_digits(n_train, n_test, classes=None):
    """The MNIST-like set: training images from one half of the digits' originals, test
    images from the other."""
    X, y = load_digits(return_X_y=True)
    if classes is not None:
        keep = np.isin(y, classes)
        X, y = X[keep], y[keep]
    originals_train, originals_test, y_originals_train, y_originals_test = train_test_split(
        X.reshape(-1, 8, 8), y, test_size=0.5, stratify=y, random_state=0
    )
    rng = np.random.default_rng(0)
    rows_train = rng.integers(0, len(originals_train), size=n_train)
    rows_test = rng.integers(0, len(originals_test), size=n_test)
    X_train = _handwritten(originals_train[rows_train], rng)
    X_test = _handwritten(originals_test[rows_test], rng)
    return X_train, y_originals_train[rows_train], X_test, y_originals_test[rows_test]


def _digits():
    X, y = load_digits(return_X_y=True)
    return X, y, None, None


def _synthetic(n_train, n_test):
    rng = np.random.default_rng(0)
    return (*synthetic_images(n_train, rng), *synthetic_images(n_test, rng))


# name: (loader, needs Fashion-MNIST)
CLUSTERING_SETS = {
    "digits": (_digits, False),
    "digits-0-4": (lambda: (*load_digits(n_class=5, return_X_y=True), None, None), False),
    "handwritten-60k": (lambda: _handwritten_digits(60000, 10000), False),
    "handwritten-20k": (lambda: _handwritten_digits(20000, 10000), False),
    "fashion-mnist": (lambda: _fashion(60000, 10000), True),
    "fashion-mnist-20k": (lambda: _fashion(20000, 10000), True),
    "fashion-mnist-5k": (lambda: _fashion(5000, 2000), True),
    # The five classes of tops and the shoes, which k-means confuses most.
    "fashion-mnist-tops": (lambda: _fashion(20000, 10000, classes=[0, 2, 3, 4, 6]), True),
    "fashion-mnist-shifted-20k": (
        lambda: _fashion_transformed(20000, 10000, _shifted),
        True,
    ),
    "fashion-mnist-contrast-20k": (
        lambda: _fashion_transformed(20000, 10000, _contrast_changed),
        True,
    ),
    "synthetic": (lambda: _synthetic(5000, 2000), False),
}


def load_clustering_set(name):
    """``X_train, y_train, X_test, y_test`` of the set ``name`` (``X_test`` None for the
    sets fitted and scored whole)."""
    loader, _ = CLUSTERING_SETS[name]
    return loader()
