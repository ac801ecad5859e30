"""The ``precision`` parameter of the energy estimators: what it resolves to, and that a
model trained in bfloat16 trains, infers in float32, reproduces and persists."""

import pickle

import numpy as np
import pytest

from sklearn_cebm import CEBMEncoder, GMMCEBMClusterer, IGEBMEncoder
from sklearn_cebm._core import precision

IMAGE_SHAPE = (1, 8, 8)


def _images(n=60, seed=0):
    return np.random.default_rng(seed).uniform(0, 16, size=(n, 64))


def _encoder(**params):
    settings = dict(
        image_shape=IMAGE_SHAPE, n_components=4, max_iter=2, batch_size=20, sgld_steps=2
    )
    return CEBMEncoder(**{**settings, **params, "random_state": 0})


@pytest.mark.parametrize(
    "make",
    [
        lambda **p: _encoder(**p),
        lambda **p: IGEBMEncoder(
            image_shape=IMAGE_SHAPE, n_components=4, max_iter=2, batch_size=20, sgld_steps=2, **p
        ),
        lambda **p: GMMCEBMClusterer(
            n_clusters=2,
            n_components=4,
            max_iter=2,
            batch_size=20,
            sgld_steps=2,
            clustering_updates=4,
            n_init=1,
            **p,
        ),
    ],
    ids=["CEBMEncoder", "IGEBMEncoder", "GMMCEBMClusterer"],
)
def test_bfloat16_estimators_train_and_give_float_outputs_of_x_dtype(make):
    X = _images()
    estimator = make(precision="bfloat16", random_state=0).fit(X)
    assert estimator.precision_ == "bfloat16"
    scores = estimator.score_samples(X)
    assert scores.dtype == X.dtype and np.isfinite(scores).all()
    codes = estimator.transform(X)
    assert codes.dtype == X.dtype and np.isfinite(codes).all()


@pytest.mark.hardware_precision
def test_float32_is_float32_and_auto_follows_the_hardware(monkeypatch):
    X = _images()
    assert _encoder(precision="float32").fit(X).precision_ == "float32"
    monkeypatch.setattr(precision, "has_native_bfloat16", lambda device: True)
    assert _encoder(precision="auto").fit(X).precision_ == "bfloat16"
    monkeypatch.setattr(precision, "has_native_bfloat16", lambda device: False)
    assert _encoder(precision="auto").fit(X).precision_ == "float32"


def test_bfloat16_fit_is_reproducible_and_persists():
    X = _images()
    first = _encoder(precision="bfloat16").fit(X)
    second = _encoder(precision="bfloat16").fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    restored = pickle.loads(pickle.dumps(first))
    assert restored.precision_ == "bfloat16"
    np.testing.assert_array_equal(restored.score_samples(X), first.score_samples(X))


def test_inference_is_float32_whatever_the_training_precision():
    X = _images()
    encoder = _encoder(precision="float32").fit(X)
    exact, codes = encoder.score_samples(X), encoder.transform(X)
    encoder.net_.module_.compute_dtype = precision.compute_dtype_for("bfloat16", None)
    assert encoder.precision_ == "bfloat16"
    np.testing.assert_array_equal(encoder.score_samples(X), exact)
    np.testing.assert_array_equal(encoder.transform(X), codes)


def test_a_model_pickled_before_precision_loads_as_float32():
    X = _images()
    encoder = _encoder(precision="bfloat16").fit(X)
    # What a model pickled by an earlier version holds: no compute_dtype of its own.
    del encoder.net_.module_.__dict__["compute_dtype"]
    restored = pickle.loads(pickle.dumps(encoder))
    assert restored.precision_ == "float32"
    assert np.isfinite(restored.score_samples(X)).all()


def test_an_unknown_precision_is_rejected_at_fit():
    with pytest.raises(ValueError, match="precision"):
        _encoder(precision="float16").fit(_images())
