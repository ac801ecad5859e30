"""Ctrl-C during training: every estimator stops at a batch's end, keeps a usable model,
closes the history's last row and warns with ``TrainingInterrupted``.

The interrupt is raised deterministically by a skorch callback at the end of a chosen
batch, where skorch's ``partial_fit`` catches it as it would a real Ctrl-C.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from skorch.callbacks import Callback, EarlyStopping

from sklearn_cebm import CEBMEncoder, GMMCEBMClusterer, TrainingInterrupted, VAEEncoder

from .conftest import CHEAP_SETTINGS
from .test_common import CHEAP_SETTINGS_FOR_CLUSTERING, CHEAP_SETTINGS_FOR_VAE, ESTIMATORS

BATCH_SIZE = 32
N_BATCHES = 12


def _press_ctrl_c():
    # Ctrl-C raises wherever the interpreter is; a callback's own raise is a deliberate
    # stop (skorch's EarlyStopping), which is no interrupt. Raised here, outside any
    # callback method, it is the interrupt a user causes.
    raise KeyboardInterrupt


class InterruptAtBatch(Callback):
    """Press Ctrl-C at the end of training batch ``batch`` of training call ``call``
    (counted over the calls of the net and of the copies that share this callback).
    """

    def __init__(self, batch=3, call=1):
        self.batch = batch
        self.call = call
        self.calls_ = 0

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.calls_ += 1
        self.batches_ = 0

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        self.batches_ += training
        if self.calls_ == self.call and self.batches_ == self.batch:
            _press_ctrl_c()


def _data(seed=0):
    return np.random.default_rng(seed).normal(size=(BATCH_SIZE * N_BATCHES, 3))


def _interrupter(estimator):
    """The estimator's own copy of the interrupting callback, as its net ran it."""
    return next(cb for _, cb in estimator.net_.callbacks_ if isinstance(cb, InterruptAtBatch))


def _check_closed_interrupted_row(estimator, n_rows):
    history = estimator.history_
    assert estimator.n_iter_ == len(history) == n_rows
    assert all("train_loss" in row for row in history)
    assert history[-1, "interrupted"] is True
    assert history[-1, "train_batch_count"] == 3
    assert not any(row.get("interrupted") for row in history[:-1])


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_interrupted_fit_keeps_a_usable_model_and_warns(name):
    estimator = clone(ESTIMATORS[name]).set_params(
        batch_size=BATCH_SIZE, max_iter=3, callbacks=[InterruptAtBatch()], random_state=0
    )
    X = _data()
    with pytest.warns(TrainingInterrupted, match="epoch 1 after 3 batches"):
        estimator.fit(X)
    _check_closed_interrupted_row(estimator, n_rows=1)
    # The BiGAN has no density: its codes stand in for the scores.
    output = getattr(estimator, "score_samples", None) or estimator.transform
    assert np.isfinite(output(X[:5])).all()


def test_cebm_encoder_interrupt_keeps_the_updates_made():
    X = _data()
    settings = dict(CHEAP_SETTINGS, batch_size=BATCH_SIZE, max_iter=1, random_state=0)
    one_update = CEBMEncoder(**settings, callbacks=[InterruptAtBatch(batch=1)])
    interrupted = CEBMEncoder(**settings, callbacks=[InterruptAtBatch()])
    with pytest.warns(TrainingInterrupted):
        one_update.fit(X)
        interrupted.fit(X)
    # Three updates moved the weights beyond the first one's.
    assert not np.allclose(one_update.transform(X[:5]), interrupted.transform(X[:5]))
    assert interrupted.history_[-1, "train_loss"] == pytest.approx(
        np.mean([batch["train_loss"] for batch in interrupted.history_[-1, "batches"]])
    )


def test_vae_encoder_interrupted_fit_keeps_a_usable_model():
    estimator = VAEEncoder(
        **CHEAP_SETTINGS_FOR_VAE | dict(batch_size=BATCH_SIZE, max_iter=3, random_state=0),
        callbacks=[InterruptAtBatch()],
    )
    with pytest.warns(TrainingInterrupted):
        estimator.fit(_data())
    _check_closed_interrupted_row(estimator, n_rows=1)
    assert "elbo" in estimator.history_[-1]
    assert np.isfinite(estimator.transform(_data(1)[:5])).all()


def test_interrupted_partial_fit_keeps_its_updates_and_warns():
    X = _data()
    estimator = CEBMEncoder(
        **CHEAP_SETTINGS | dict(batch_size=BATCH_SIZE, random_state=0),
        callbacks=[InterruptAtBatch(call=2)],
    )
    estimator.partial_fit(X)
    before = estimator.transform(X[:5])
    with pytest.warns(TrainingInterrupted, match="epoch 2 after 3 batches"):
        estimator.partial_fit(X)
    _check_closed_interrupted_row(estimator, n_rows=2)
    assert not np.allclose(before, estimator.transform(X[:5]))
    # The model continues from there: the next call trains a whole epoch.
    estimator.partial_fit(X)
    assert estimator.n_iter_ == 3 and "interrupted" not in estimator.history_[-1]


def test_interrupt_turned_into_an_error_leaves_the_estimator_unchanged():
    X = _data()
    estimator = CEBMEncoder(
        **CHEAP_SETTINGS | dict(batch_size=BATCH_SIZE, random_state=0),
        callbacks=[InterruptAtBatch(call=2)],
    )
    estimator.partial_fit(X)
    before = estimator.transform(X[:5])
    with warnings.catch_warnings(), pytest.raises(TrainingInterrupted):
        warnings.simplefilter("error", TrainingInterrupted)
        estimator.partial_fit(X)
    np.testing.assert_array_equal(before, estimator.transform(X[:5]))
    assert estimator.n_iter_ == 1


@pytest.mark.parametrize("call, n_rows", [(1, 1), (2, 3)])
def test_clusterer_interrupt_stops_the_whole_fit(call, n_rows):
    """Call 1 is the shared likelihood stage (2 epochs), call 2 the first of 2 runs."""
    clusterer = GMMCEBMClusterer(
        **CHEAP_SETTINGS_FOR_CLUSTERING
        | dict(
            batch_size=BATCH_SIZE,
            clustering_updates=N_BATCHES,
            random_state=0,
            init_params="k-means++",  # the runs of the clustering stage
        ),
        callbacks=[InterruptAtBatch(call=call)],
    )
    X = _data()
    with pytest.warns(TrainingInterrupted):
        clusterer.fit(X)
    # No run began after the interrupt.
    assert _interrupter(clusterer).calls_ == call
    _check_closed_interrupted_row(clusterer, n_rows=n_rows)
    assert clusterer.labels_.shape == (len(X),)
    np.testing.assert_array_equal(clusterer.labels_, clusterer.predict(X))


def test_early_stopping_is_no_interrupt():
    """skorch's EarlyStopping ends training with a KeyboardInterrupt of its own."""
    stopper = EarlyStopping(monitor="train_loss", patience=1, threshold=1e9, sink=lambda _: None)
    estimator = CEBMEncoder(**CHEAP_SETTINGS | dict(max_iter=10), callbacks=[stopper])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingInterrupted)
        estimator.fit(_data())
    assert estimator.n_iter_ == 2 and "interrupted" not in estimator.history_[-1]


class _StopAtBatch(InterruptAtBatch):
    """A time budget's way to stop: the callback raises KeyboardInterrupt itself."""

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        self.batches_ += training
        if self.calls_ == self.call and self.batches_ == self.batch:
            raise KeyboardInterrupt


def test_a_callbacks_own_stop_is_no_interrupt_but_closes_its_epoch():
    estimator = CEBMEncoder(**CHEAP_SETTINGS | dict(max_iter=3), callbacks=[_StopAtBatch()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingInterrupted)
        estimator.fit(_data())
    last = estimator.history_[-1]
    assert estimator.n_iter_ == 1 and last["train_batch_count"] == 3
    assert "train_loss" in last and last["interrupted"] is False
