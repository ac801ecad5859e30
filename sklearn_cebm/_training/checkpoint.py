"""Resumable training: an estimator dumped at epoch ends, and the call that resumes it.

:class:`EpochCheckpoint` is a skorch callback that knows nothing of the estimators: the
estimator training its net hands it, for the length of the call, the function that
writes the checkpoint (``write_``). :func:`resume_fit` loads one and finishes the
training call it was written in.
"""

import os
import tempfile
from numbers import Integral

import joblib
from skorch.callbacks import Callback

__all__ = ["EpochCheckpoint", "dump_atomically", "resume_fit"]

# What a checkpoint file holds, beside the estimator: its kind and layout.
CHECKPOINT_FORMAT = "sklearn_cebm.checkpoint/1"


def dump_atomically(obj, path):
    """``joblib.dump(obj, path)`` through a temporary file in the same folder.

    ``os.replace`` then swaps it in, so that a process killed while writing leaves the
    previous file whole, never half of a new one.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(handle)
    try:
        joblib.dump(obj, temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


class EpochCheckpoint(Callback):
    """Dump the estimator being trained to ``path`` every ``every`` epochs, for resume_fit.

    Give it to any estimator's ``callbacks``. At the end of every epoch whose number
    (counted over the model's whole history) is a multiple of ``every``, the estimator as
    it is then, with its network, optimiser state, replay buffer and history, replaces
    the file at ``path`` atomically: a process killed, even while writing, leaves the last
    whole checkpoint. :func:`resume_fit` finishes the interrupted training call from it.

    Parameters
    ----------
    path : str or path-like
        File to write; its folder must exist. Written with joblib (pickle): load only
        checkpoints you wrote yourself.
    every : int, default=1
        Write at the end of every ``every``-th epoch.

    See Also
    --------
    resume_fit : Finish the training call a checkpoint was written in.

    Notes
    -----
    The checkpoint is written after every other callback of the epoch has run (the
    mixtures' placement of their means included), so that the model it holds is the one
    training continues with. A checkpoint of :class:`GMMCEBMClusterer` with ``n_init >
    1`` holds the stage in progress (the shared likelihood stage, or one clustering
    run) as an estimator with ``n_init=1``; :func:`resume_fit` finishes that stage only.
    Use ``n_init=1`` for a clustering that must survive being killed.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_cebm import CEBMEncoder, EpochCheckpoint, resume_fit
    >>> X = np.random.default_rng(0).normal(size=(64, 3))
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.joblib")
    >>> encoder = CEBMEncoder(n_components=2, hidden_layer_sizes=(8,), max_iter=3,
    ...                       buffer_size=32, callbacks=[EpochCheckpoint(path)],
    ...                       random_state=0).fit(X)
    >>> resumed = resume_fit(path, X)  # after a crash: finishes the epochs left (none here)
    >>> resumed.n_iter_
    3
    """

    def __init__(self, path, every=1):
        self.path = path
        self.every = every

    def initialize(self):
        """Check the parameters when the net is built, and attach no writer yet."""
        if not isinstance(self.path, (str, os.PathLike)):
            raise TypeError(f"EpochCheckpoint needs a file path; got path={self.path!r}.")
        if isinstance(self.every, bool) or not isinstance(self.every, Integral) or self.every < 1:
            raise ValueError(f"EpochCheckpoint needs an int every >= 1; got every={self.every!r}.")
        self.write_ = None
        return super().initialize()

    def on_epoch_end(self, net, **kwargs):
        write = getattr(self, "write_", None)
        if write is not None and len(net.history) % self.every == 0:
            write(self.path)

    def __getstate__(self):
        # The writer holds the estimator being trained: checkpoints and copies never do.
        state = dict(self.__dict__)
        state["write_"] = None
        return state


def resume_fit(path, X):
    """Finish the training call a checkpoint of :class:`EpochCheckpoint` was written in.

    Loads the estimator from ``path`` and trains it, on the same ``X``, for the epochs
    that call had left (none when it ended), then sets what a fit sets at its end
    (``n_iter_``, the training scores' extremes, ``labels_``...). Its history continues the
    checkpoint's, and it goes on writing checkpoints to the same file.

    Parameters
    ----------
    path : str or path-like
        A file written by :class:`EpochCheckpoint`. Loading runs pickle: load only
        checkpoints you wrote yourself.
    X : array-like of shape (n_samples, n_features)
        The training data of the interrupted call.

    Returns
    -------
    estimator : object
        The estimator, trained to the end of that call.

    Raises
    ------
    ValueError
        If the file is not a checkpoint written by :class:`EpochCheckpoint`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_cebm import EpochCheckpoint, VAEEncoder, resume_fit
    >>> X = np.random.default_rng(0).normal(size=(64, 3))
    >>> path = os.path.join(tempfile.mkdtemp(), "vae.joblib")
    >>> _ = VAEEncoder(n_components=2, hidden_layer_sizes=(8,), max_iter=2,
    ...                callbacks=[EpochCheckpoint(path)], random_state=0).fit(X)
    >>> resume_fit(path, X).n_iter_
    2
    """
    checkpoint = joblib.load(path)
    if not (isinstance(checkpoint, dict) and checkpoint.get("format") == CHECKPOINT_FORMAT):
        raise ValueError(
            f"{os.fspath(path)!r} is not a checkpoint written by EpochCheckpoint "
            f"({CHECKPOINT_FORMAT}); an estimator saved with joblib.dump is loaded with "
            "joblib.load and continued with warm_start=True."
        )
    estimator = checkpoint["estimator"]
    return estimator._fit(X, reset=False, epochs=checkpoint["epochs_left"])
