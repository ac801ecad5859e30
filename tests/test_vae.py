"""VAEEncoder: shapes, determinism, training, bad input, pickling."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from sklearn_cebm import VAEEncoder

SETTINGS = dict(n_components=4, hidden_layer_sizes=(16,), max_iter=3, batch_size=32)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


def test_vae_encoder_shapes(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, random_state=0).fit(X)
    mean, std = vae.transform(X[:10], return_std=True)
    assert mean.shape == std.shape == (10, 4)
    assert np.all(std > 0)
    assert vae.score_samples(X[:10]).shape == (10,)
    assert np.all(vae.score_gradient_norm(X[:10]) >= 0)
    assert vae.sample(6, random_state=1).shape == (6, 64)
    assert list(vae.get_feature_names_out()) == [f"vaeencoder{i}" for i in range(4)]


def test_vae_encoder_conv_on_images(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, image_shape=(1, 8, 8), random_state=0).fit(X)
    assert type(vae.net_.module_.decoder).__name__ == "ConvDecoder"
    assert vae.transform(X[:5]).shape == (5, 4)
    assert vae.sample(2).shape == (2, 64)


def test_vae_encoder_is_deterministic_given_random_state(digits):
    X, _ = digits
    first = VAEEncoder(**SETTINGS, random_state=3).fit(X)
    second = VAEEncoder(**SETTINGS, random_state=3).fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    np.testing.assert_array_equal(first.score_samples(X), second.score_samples(X))
    np.testing.assert_array_equal(first.sample(3), second.sample(3))


def test_vae_encoder_fit_leaves_the_global_generator_alone(digits):
    X, _ = digits
    state = torch.get_rng_state()
    VAEEncoder(**SETTINGS, random_state=0).fit(X).sample(2)
    assert torch.equal(torch.get_rng_state(), state)


def test_vae_encoder_training_raises_the_elbo(digits):
    X, _ = digits
    short = VAEEncoder(**dict(SETTINGS, max_iter=1), random_state=0).fit(X)
    long = VAEEncoder(**dict(SETTINGS, max_iter=15), random_state=0).fit(X)
    elbo = long.history_[:, "elbo"]
    assert elbo[-1] > elbo[0] + 5.0
    assert long.score(X) > short.score(X) + 5.0


def test_vae_encoder_score_samples_is_row_wise(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, random_state=0).fit(X)
    together = vae.score_samples(X[:20])
    reversed_rows = vae.score_samples(X[:20][::-1])[::-1]
    np.testing.assert_allclose(together, reversed_rows, rtol=1e-5)
    np.testing.assert_allclose(vae.score_samples(X[3:4]), together[3:4], rtol=1e-5)


def test_vae_encoder_partial_fit_counts_epochs(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, random_state=0)
    vae.partial_fit(X).partial_fit(X)
    assert vae.n_iter_ == 2


def test_vae_encoder_joblib_round_trip(digits, tmp_path):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, random_state=0).fit(X)
    path = tmp_path / "vae.joblib"
    joblib.dump(vae, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.transform(X), vae.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X), vae.score_samples(X))


@pytest.mark.parametrize(
    ("params", "X", "error", "match"),
    [
        ({}, np.array([[0.0, np.nan], [1.0, 2.0]]), ValueError, "NaN"),
        ({"image_shape": (1, 8, 8)}, np.zeros((5, 10)), ValueError, "holds 64 values"),
        ({"n_components": 0}, np.zeros((5, 2)), ValueError, "n_components"),
        ({"encoder": nn.Linear(3, 5)}, np.zeros((5, 3)), ValueError, r"\(n_samples, 8\)"),
    ],
)
def test_vae_encoder_bad_input(params, X, error, match):
    with pytest.raises(error, match=match):
        VAEEncoder(**dict(SETTINGS, **params)).fit(X)


def test_vae_encoder_has_no_sampler_parameters():
    with pytest.raises(TypeError, match="sgld_steps"):
        VAEEncoder(sgld_steps=3)


def test_vae_encoder_sample_rejects_zero_samples(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_samples >= 1"):
        vae.sample(0)


def test_vae_encoder_transform_checks_the_width(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        vae.transform(X[:, :10])
