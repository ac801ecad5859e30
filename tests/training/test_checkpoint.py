"""Resumable training: EpochCheckpoint writes the estimator at epoch ends, resume_fit
finishes the call, after a crash and after the process was killed outright."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from skorch.callbacks import Callback

from sklearn_cebm import CEBMEncoder, EpochCheckpoint, GMMCEBMClusterer, VAEEncoder, resume_fit
from sklearn_cebm._estimators.base import copy_sharing_user_callbacks

from ..conftest import CHEAP_SETTINGS
from ..test_common import CHEAP_SETTINGS_FOR_CLUSTERING, CHEAP_SETTINGS_FOR_VAE

REPO_ROOT = Path(__file__).resolve().parents[2]


class SlowEpochs(Callback):
    """Sleep ``SLOW_EPOCH_S`` seconds (an environment variable; 0 if unset) per epoch, so
    that a test can kill the training process in the middle of a fit."""

    def on_epoch_end(self, net, **kwargs):
        time.sleep(float(os.environ.get("SLOW_EPOCH_S", "0")))


class CrashAtEpoch(Callback):
    """Raise ``RuntimeError`` at the end of epoch ``epoch``, once while ``armed``: a crash
    mid-fit, which the resumed fit (whose net holds a copy of this callback) does not meet.
    """

    armed = False

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if CrashAtEpoch.armed and len(net.history) == self.epoch:
            CrashAtEpoch.armed = False
            raise RuntimeError("crash")


def _data(seed=0, n_samples=128):
    return np.random.default_rng(seed).normal(size=(n_samples, 3))


ESTIMATORS = {
    "CEBMEncoder": CEBMEncoder(**CHEAP_SETTINGS | dict(max_iter=4)),
    # One run, so that the checkpoint is of the whole fit; the means are placed at the
    # end of epoch 2, the clustering stage is epochs 3 and 4.
    "GMMCEBMClusterer": GMMCEBMClusterer(
        **CHEAP_SETTINGS_FOR_CLUSTERING | dict(n_init=1, clustering_updates=8)
    ),
    "VAEEncoder": VAEEncoder(**CHEAP_SETTINGS_FOR_VAE | dict(max_iter=4)),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("crash_epoch", [2, 3])
def test_resume_fit_after_a_crash_finishes_the_fit_as_uninterrupted(name, crash_epoch, tmp_path):
    X, path = _data(), tmp_path / "model.joblib"
    settings = dict(random_state=0, batch_size=32)
    whole = clone(ESTIMATORS[name]).set_params(**settings).fit(X)
    crashing = clone(ESTIMATORS[name]).set_params(
        **settings, callbacks=[CrashAtEpoch(crash_epoch), EpochCheckpoint(path)]
    )
    CrashAtEpoch.armed = True
    with pytest.raises(RuntimeError, match="crash"):
        crashing.fit(X)
    assert not hasattr(crashing, "net_")  # the failed call left the estimator as it was
    assert joblib.load(path)["epochs_left"] == whole.n_iter_ - (crash_epoch - 1)
    resumed = resume_fit(path, X)
    assert resumed.n_iter_ == len(resumed.history_) == whole.n_iter_
    assert resumed.history_[:, "epoch"] == list(range(1, whole.n_iter_ + 1))
    np.testing.assert_allclose(resumed.history_[:, "train_loss"], whole.history_[:, "train_loss"])
    np.testing.assert_allclose(resumed.transform(X), whole.transform(X), rtol=1e-5, atol=1e-6)
    # The file now holds the end of the fit.
    assert joblib.load(path)["epochs_left"] == 0


def test_checkpoint_every_writes_at_multiples_of_every(tmp_path):
    path = tmp_path / "model.joblib"
    encoder = CEBMEncoder(
        **CHEAP_SETTINGS | dict(max_iter=3), callbacks=[EpochCheckpoint(path, every=2)]
    ).fit(_data())
    checkpoint = joblib.load(path)
    assert checkpoint["estimator"].n_iter_ == 2 and checkpoint["epochs_left"] == 1
    assert resume_fit(path, _data()).n_iter_ == encoder.n_iter_ == 3


def test_checkpoint_holds_no_training_data(tmp_path):
    path = tmp_path / "model.joblib"
    X = _data()
    clusterer = GMMCEBMClusterer(
        **CHEAP_SETTINGS_FOR_CLUSTERING | dict(n_init=1, random_state=0),
        callbacks=[EpochCheckpoint(path)],
    )
    clusterer.fit(X)
    net = joblib.load(path)["estimator"].net_
    assert all(getattr(cb, "training_data_", None) is None for _, cb in net.callbacks_)


@pytest.mark.parametrize("every", [0, 1.5, True])
def test_checkpoint_rejects_a_bad_every(every, tmp_path):
    encoder = CEBMEncoder(
        **CHEAP_SETTINGS, callbacks=[EpochCheckpoint(tmp_path / "m.joblib", every=every)]
    )
    with pytest.raises(ValueError, match="every >= 1"):
        encoder.fit(_data())
    assert not hasattr(encoder, "net_")


def test_resume_fit_rejects_a_file_that_is_no_checkpoint(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(CEBMEncoder(**CHEAP_SETTINGS).fit(_data()), path)
    with pytest.raises(ValueError, match="not a checkpoint written by EpochCheckpoint"):
        resume_fit(path, _data())


_TRAINING_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from sklearn_cebm import CEBMEncoder, EpochCheckpoint
    from tests.conftest import CHEAP_SETTINGS
    from tests.training.test_checkpoint import SlowEpochs
    X = np.random.default_rng(0).normal(size=(128, 3))
    CEBMEncoder(**CHEAP_SETTINGS | dict(max_iter={max_iter}), random_state=0,
                callbacks=[SlowEpochs(), EpochCheckpoint({path!r})]).fit(X)
    """
)


@pytest.mark.slow
def test_resume_fit_after_the_process_was_killed(tmp_path):
    path, max_iter = tmp_path / "model.joblib", 12
    script = _TRAINING_SCRIPT.format(max_iter=max_iter, path=str(path))
    env = dict(os.environ, SLOW_EPOCH_S="0.5", OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists(), "the training process wrote no checkpoint"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    checkpoint = joblib.load(path)
    done = checkpoint["estimator"].n_iter_
    assert 1 <= done < max_iter and checkpoint["epochs_left"] == max_iter - done
    resumed = resume_fit(path, _data())
    assert resumed.n_iter_ == len(resumed.history_) == max_iter
    assert resumed.history_[:, "epoch"] == list(range(1, max_iter + 1))
    assert (
        resumed.history_[:done, "train_loss"] == checkpoint["estimator"].history_[:, "train_loss"]
    )
    assert np.isfinite(resumed.transform(_data())).all()


def test_copies_share_the_checkpoint_but_not_the_estimators_own_callbacks(tmp_path):
    """The checkpoint goes after the mixture's seeding in the net: a copy of the net for
    a clustering run still shares only the user's callbacks."""
    clusterer = GMMCEBMClusterer(
        **CHEAP_SETTINGS_FOR_CLUSTERING | dict(n_init=1, random_state=0),
        callbacks=[EpochCheckpoint(tmp_path / "m.joblib")],
    ).fit(_data())
    copy = copy_sharing_user_callbacks(clusterer, clusterer)
    original, copied = dict(clusterer.net_.callbacks_), dict(copy.net_.callbacks_)
    assert copied["EpochCheckpoint"] is original["EpochCheckpoint"]
    assert copied["mixture_means_seeding"] is not original["mixture_means_seeding"]
    names = list(original)
    assert names.index("EpochCheckpoint") > names.index("mixture_means_seeding")
