"""IGEBMEncoder: which features it returns, determinism, bad input, pickling."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from sklearn_cebm import IGEBMEncoder

from .conftest import CHEAP_SETTINGS

# The minimum of silu(u) = u * sigmoid(u), reached at u = -1.278.
SILU_MINIMUM = -0.2785


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


def test_igebm_encoder_shapes(digits):
    X, _ = digits
    igebm = IGEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    assert igebm.transform(X[:10]).shape == (10, 4)
    assert igebm.score_samples(X[:10]).shape == (10,)
    assert np.all(igebm.score_gradient_norm(X[:10]) >= 0)
    assert igebm.sample(3, n_steps=2).shape == (3, 64)
    assert list(igebm.get_feature_names_out()) == [f"igebmencoder{i}" for i in range(4)]


def test_igebm_encoder_transform_is_the_input_of_the_energy_head(digits):
    X, _ = digits
    igebm = IGEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    features = igebm.transform(X[:20])
    assert features.min() >= SILU_MINIMUM
    head = igebm.net_.module_.head
    weight = head.weight.detach().numpy().ravel()
    energy = features @ weight + head.bias.item()
    np.testing.assert_allclose(igebm.score_samples(X[:20]), -energy, rtol=1e-4, atol=1e-5)


def test_igebm_encoder_conv_on_images(digits):
    X, _ = digits
    igebm = IGEBMEncoder(**CHEAP_SETTINGS, image_shape=(1, 8, 8), random_state=0).fit(X)
    assert type(igebm.net_.module_.encoder).__name__ == "ConvEncoder"
    assert igebm.transform(X[:5]).shape == (5, 4)


def test_igebm_encoder_is_deterministic_given_random_state(digits):
    X, _ = digits
    first = IGEBMEncoder(**CHEAP_SETTINGS, random_state=2).fit(X)
    second = IGEBMEncoder(**CHEAP_SETTINGS, random_state=2).fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    np.testing.assert_array_equal(first.sample(2, n_steps=3), second.sample(2, n_steps=3))


def test_igebm_encoder_fit_leaves_the_global_generator_alone(digits):
    X, _ = digits
    state = torch.get_rng_state()
    IGEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    assert torch.equal(torch.get_rng_state(), state)


def test_igebm_encoder_learns_data_above_noise(digits):
    X, _ = digits
    settings = dict(CHEAP_SETTINGS, max_iter=10, sgld_steps=10)
    igebm = IGEBMEncoder(**settings, random_state=0).fit(X)
    noise = np.random.default_rng(0).uniform(0, 16, size=X.shape)
    assert igebm.score_samples(X).mean() > igebm.score_samples(noise).mean()


def test_igebm_encoder_joblib_round_trip(digits, tmp_path):
    X, _ = digits
    igebm = IGEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    path = tmp_path / "igebm.joblib"
    joblib.dump(igebm, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.transform(X), igebm.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X), igebm.score_samples(X))


@pytest.mark.parametrize(
    ("params", "X", "match"),
    [
        ({}, np.array([[0.0, np.inf], [1.0, 2.0]]), "infinity"),
        ({"image_shape": (1, 8, 8)}, np.zeros((5, 10)), "holds 64 values"),
        ({"sgld_steps": -1}, np.zeros((5, 2)), "sgld_steps"),
        ({"encoder": nn.Linear(3, 8)}, np.zeros((5, 3)), r"\(n_samples, 4\)"),
    ],
)
def test_igebm_encoder_bad_input(params, X, match):
    with pytest.raises(ValueError, match=match):
        IGEBMEncoder(**dict(CHEAP_SETTINGS, **params)).fit(X)
