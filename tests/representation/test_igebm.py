"""IGEBMEncoder: which features it returns, convolutions on images, what it learns.

What every estimator must do (persistence, determinism, bad input, scikit-learn's tools) is
tested over all of them in tests/test_common.py.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from sklearn_cebm import IGEBMEncoder

from ..conftest import CHEAP_SETTINGS


def test_igebm_encoder_transform_is_the_input_of_the_energy_head(digits):
    X, _ = digits
    igebm = IGEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    features = igebm.transform(X[:20])
    # The SiLU of the fitted feature network's output, on the scaled input: the whole of
    # each row, where the head below sees only its projection on the head's weights.
    X_unit = (X[:20] - igebm.input_center_) / igebm.input_scale_
    with torch.no_grad():
        raw = igebm.net_.module_.encoder(torch.as_tensor(X_unit, dtype=torch.float32))
    np.testing.assert_allclose(features, functional.silu(raw).numpy(), rtol=1e-5, atol=1e-6)
    head = igebm.net_.module_.head
    weight = head.weight.detach().numpy().ravel()
    energy = features @ weight + head.bias.item()
    np.testing.assert_allclose(igebm.score_samples(X[:20]), -energy, rtol=1e-4, atol=1e-5)


def test_igebm_encoder_conv_on_images(digits):
    X, _ = digits
    igebm = IGEBMEncoder(**CHEAP_SETTINGS, image_shape=(1, 8, 8), random_state=0).fit(X)
    assert type(igebm.net_.module_.encoder).__name__ == "ConvEncoder"
    assert igebm.transform(X[:5]).shape == (5, 4)


def test_igebm_encoder_learns_data_above_noise(digits):
    X, _ = digits
    settings = dict(CHEAP_SETTINGS, max_iter=10, sgld_steps=10)
    igebm = IGEBMEncoder(**settings, random_state=0).fit(X)
    noise = np.random.default_rng(0).uniform(0, 16, size=X.shape)
    assert igebm.score_samples(X).mean() > igebm.score_samples(noise).mean()


def test_igebm_encoder_user_module_must_output_n_components():
    with pytest.raises(ValueError, match=r"\(n_samples, 4\)"):
        IGEBMEncoder(**CHEAP_SETTINGS, encoder=nn.Linear(3, 8)).fit(np.zeros((5, 3)))
