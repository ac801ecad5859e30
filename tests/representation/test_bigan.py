"""BIGANEncoder: the game's losses and gradients, what training does, and its collapse reports.

What every estimator shares (check_estimator, persistence, determinism, bad input) is in
tests/test_common.py.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_cebm import BIGANEncoder, GameCollapseWarning
from sklearn_cebm._core.bigan import BidirectionalGAN
from sklearn_cebm._training import adversarial_net
from sklearn_cebm._training.adversarial_net import (
    COLLAPSED_SPREAD,
    GameMonitor,
    collapse_verdict,
)


class _FixedLogits(nn.Module):
    """A discriminator whose logit is ``w * (x.sum() + z.sum())``: known in closed form."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.7))

    def forward(self, x, z):
        return self.weight * (x.sum(dim=1) + z.sum(dim=1))


class _MeanEncoder(nn.Module):
    """Codes ``(x, log(e - 1))``: mean x, std softplus(log(e - 1)) = 1 (plus the floor)."""

    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        return torch.cat([x + self.shift, torch.full_like(x, np.log(np.e - 1))], dim=1)


def _toy_game():
    generator = nn.Linear(1, 1)
    with torch.no_grad():
        generator.weight.fill_(0.5)
        generator.bias.fill_(-0.2)
    return BidirectionalGAN(_MeanEncoder(), generator, _FixedLogits(), (1,), 1)


def _softplus(value):
    return np.logaddexp(0.0, value)


def test_losses_are_the_cross_entropies_of_the_game_in_closed_form():
    game = _toy_game()
    x = torch.tensor([[0.3], [-0.6], [0.9]])
    noise = torch.tensor([[0.5], [-1.0], [0.0]])
    prior = torch.tensor([[1.2], [-0.4]])
    losses = game.losses(x, noise, prior)

    xs, eps, zs = (t.numpy().ravel().astype(np.float64) for t in (x, noise, prior))
    encoded = xs + (1.0 + 1e-4) * eps  # E(x) = mean + std * noise
    generated = np.tanh(0.5 * zs - 0.2)
    real, fake = 0.7 * (xs + encoded), 0.7 * (generated + zs)
    expected_discriminator = _softplus(-real).mean() + _softplus(fake).mean()
    expected_generator = _softplus(real).mean() + _softplus(-fake).mean()
    assert losses.discriminator.item() == pytest.approx(expected_discriminator, rel=1e-6)
    assert losses.generator.item() == pytest.approx(expected_generator, rel=1e-6)
    right = np.concatenate([real > 0, fake < 0]).mean()
    assert float(losses.discriminator_accuracy) == pytest.approx(right)
    spread = generated.std() / xs.std()
    assert float(losses.sample_spread) == pytest.approx(spread, rel=1e-5)
    assert float(losses.largest_logit) == pytest.approx(np.abs([*real, *fake]).max(), rel=1e-6)


def test_at_an_undecided_discriminator_both_losses_are_two_log_two():
    game = _toy_game()
    with torch.no_grad():
        game.discriminator.weight.zero_()
    losses = game.losses(torch.ones(4, 1), torch.zeros(4, 1), torch.zeros(4, 1))
    assert losses.discriminator.item() == pytest.approx(2 * np.log(2))
    assert losses.generator.item() == pytest.approx(2 * np.log(2))


def test_each_player_steps_on_the_gradient_of_its_own_loss(monkeypatch):
    X = np.random.default_rng(0).normal(size=(32, 3))
    bigan = BIGANEncoder(n_components=2, hidden_layer_sizes=(8,), max_iter=1, batch_size=32)
    bigan.set_params(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GameCollapseWarning)
        bigan.fit(X)
    net = bigan.net_
    module = net.module_
    x = torch.as_tensor((X - bigan.input_center_) / bigan.input_scale_, dtype=torch.float32)
    state = net.random_generator_.get_state()
    draws = torch.randn((2, len(x), 2), generator=net.random_generator_)
    losses = module.losses(x, draws[0], draws[1])
    discriminator, others = module.player_parameters()
    expected_d = torch.autograd.grad(losses.discriminator, discriminator, retain_graph=True)
    expected_o = torch.autograd.grad(losses.generator, others)

    net.random_generator_.set_state(state)
    net.train_step_single((x, None))
    expected = (*expected_d, *expected_o)
    for parameter, gradient in zip((*discriminator, *others), expected, strict=True):
        torch.testing.assert_close(parameter.grad, gradient)


def test_training_moves_the_generator_from_the_box_centre_onto_the_data():
    # Exponential data: the box's centre, where the untrained generator puts its samples
    # (tanh of small outputs), lies far above the data's median.
    X = np.random.default_rng(0).exponential(size=(2000, 1))
    median, centre = np.median(X), (X.min() + X.max()) / 2
    bigan = BIGANEncoder(
        n_components=1, hidden_layer_sizes=(32, 32), max_iter=40, batch_size=64, random_state=0
    )
    untrained = np.median(bigan.set_params(max_iter=1, learning_rate=1e-9).fit(X).sample(2000))
    assert untrained - median > 0.8 * (centre - median)
    with warnings.catch_warnings():
        # The 1-D game oscillates: its spread may fall for an epoch, which is reported.
        warnings.simplefilter("ignore", GameCollapseWarning)
        bigan.set_params(max_iter=40, learning_rate=2e-4).fit(X)
    samples = bigan.sample(4000, random_state=1)
    assert abs(np.median(samples) - median) < 0.25 * (centre - median)
    assert np.all((samples >= X.min()) & (samples <= X.max()))  # the tanh keeps the box


def test_codes_of_a_trained_bigan_separate_the_digits_better_than_chance():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GameCollapseWarning)
        codes = BIGANEncoder(n_components=16, max_iter=10, random_state=0).fit_transform(X)
    accuracy = cross_val_score(LogisticRegression(max_iter=2000), codes, y, cv=3).mean()
    assert accuracy > 0.5  # chance is 0.1; 30 epochs give 0.72 (pixels 0.93)


def test_collapse_verdicts():
    assert collapse_verdict(0.6, 0.8, 0.9) == ""
    assert "discriminator won" in collapse_verdict(0.995, 0.8, 0.9)
    # A narrow spread is a collapse once an earlier epoch was wider, not from the start.
    assert collapse_verdict(0.6, 0.05, 0.08) == ""
    assert "generator collapsed" in collapse_verdict(0.6, 0.05, COLLAPSED_SPREAD)
    both = collapse_verdict(0.999, 0.01, 0.5)
    assert "discriminator won" in both and "generator collapsed" in both


def test_a_collapse_is_recorded_in_history_and_warned_once(monkeypatch):
    # No generator spreads its samples ten times as wide as the data: with that as the
    # threshold, every epoch's generator has "never spread".
    monkeypatch.setattr(adversarial_net, "COLLAPSED_SPREAD", 10.0)
    X = np.random.default_rng(0).normal(size=(40, 3))
    bigan = BIGANEncoder(n_components=2, hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with pytest.warns(GameCollapseWarning, match="never spread") as caught:
        bigan.fit(X)
    assert len([w for w in caught if w.category is GameCollapseWarning]) == 1
    verdicts = bigan.history_[:, "collapse"]
    assert verdicts[:-1] == ["", ""] and "never spread" in verdicts[-1]


def test_a_healthy_epoch_records_an_empty_verdict():
    monitor = GameMonitor()

    class _Net:
        history = [{"epoch": 1, "discriminator_accuracy": 0.55, "sample_spread": 0.7}]

    class _History(list):
        def record(self, key, value):
            self[-1][key] = value

    net = _Net()
    net.history = _History(net.history)
    monitor.on_train_begin(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GameCollapseWarning)
        monitor.on_epoch_end(net)
        monitor.on_train_end(net)
    assert net.history[-1]["collapse"] == ""
