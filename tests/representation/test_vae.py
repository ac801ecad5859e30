"""VAEEncoder: its posterior, decoder, ELBO and parameters.

What every estimator must do (persistence, determinism, bad input, scikit-learn's tools) is
tested over all of them in tests/test_common.py.
"""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_cebm import VAEEncoder

SETTINGS = dict(n_components=4, hidden_layer_sizes=(16,), max_iter=3, batch_size=32)


def test_vae_encoder_posterior_mean_and_std(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, random_state=0).fit(X)
    mean, std = vae.transform(X[:10], return_std=True)
    assert mean.shape == std.shape == (10, 4)
    np.testing.assert_array_equal(mean, vae.transform(X[:10]))
    # The fitted encoder's 2 K outputs on the scaled input: the means, then the stds
    # before a softplus (and a floor of 1e-4).
    X_unit = (X[:10] - vae.input_center_) / vae.input_scale_
    with torch.no_grad():
        raw = vae.net_.module_.encoder(torch.as_tensor(X_unit, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(mean, raw[:, :4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, np.logaddexp(0, raw[:, 4:]), rtol=1e-5, atol=2e-4)


def test_vae_encoder_conv_on_images(digits):
    X, _ = digits
    vae = VAEEncoder(**SETTINGS, image_shape=(1, 8, 8), random_state=0).fit(X)
    assert type(vae.net_.module_.decoder).__name__ == "ConvDecoder"
    assert vae.transform(X[:5]).shape == (5, 4)
    assert vae.sample(2).shape == (2, 64)


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


def test_vae_encoder_user_module_must_output_twice_n_components():
    # The encoder gives the posterior's means and standard deviations, n_components each.
    with pytest.raises(ValueError, match=r"\(n_samples, 8\)"):
        VAEEncoder(**SETTINGS, encoder=nn.Linear(3, 5)).fit(np.zeros((5, 3)))


def test_vae_encoder_has_no_sampler_parameters():
    with pytest.raises(TypeError, match="sgld_steps"):
        VAEEncoder(sgld_steps=3)
