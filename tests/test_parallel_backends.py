"""Hyperparameter searches on the joblib backends of dask.distributed and ray, and threads.

The "Scaling up" page of the user guide documents these paths; they need the ``scaling``
extra (``pip install "sklearn-cebm[scaling]"``), without which the tests skip. Each starts
a local cluster: dask's in this process (its workers are threads, which start in about a
second; its process workers are shown by the gallery's example), ray's with two workers.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Callback
from threadpoolctl import threadpool_limits

from sklearn_cebm import CEBMEncoder

from .conftest import CHEAP_SETTINGS

PARAMETER = "cebmencoder__n_components"


def _search():
    # float32: the workers may be other processes, where conftest's float32 'auto' does not
    # reach. Log loss, not accuracy: the blobs are separable, so both settings would score 1.
    encoder = CEBMEncoder(**CHEAP_SETTINGS, precision="float32", random_state=0)
    pipe = make_pipeline(encoder, LogisticRegression())
    return GridSearchCV(pipe, {PARAMETER: [2, 4]}, scoring="neg_log_loss", cv=2, n_jobs=2)


def _assert_same_as_serial(search, X, y):
    """The workers' scores are those of the same seeded fits in this process."""
    scores = search.cv_results_["mean_test_score"]
    for params, score in zip(search.cv_results_["params"], scores, strict=True):
        candidate = clone(search.estimator).set_params(**params)
        serial = cross_val_score(candidate, X, y, cv=2, scoring="neg_log_loss")
        assert score == pytest.approx(serial.mean(), rel=1e-6)
    assert search.best_estimator_[0].n_components == search.best_params_[PARAMETER]


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster(blobs):
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    joblib = pytest.importorskip("joblib")
    X, y = blobs
    search = _search()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        joblib.parallel_config(backend="dask"),
    ):
        search.fit(X, y)
        ran = client.run_on_scheduler(_task_prefixes)
    # The fits ran as the cluster's tasks, in batches joblib names after the function.
    assert any(prefix.startswith("batch_of__fit_and_score") for prefix in ran), ran
    _assert_same_as_serial(search, X, y)


def _task_prefixes(dask_scheduler):
    return list(dask_scheduler.task_prefixes)


@pytest.mark.slow
def test_dask_process_workers_get_one_thread_each():
    # The thread policy the user guide states for dask: its nannies start each worker
    # process with OMP_NUM_THREADS=1, which torch reads as its thread count.
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert int(environ["OMP_NUM_THREADS"]) == 1


def _torch_threads(estimator, X, y):
    """A scorer: the torch threads of the process that fitted ``estimator`` and scores it."""
    return torch.get_num_threads()


@pytest.mark.slow
def test_grid_search_on_ray(blobs):
    ray = pytest.importorskip("ray")
    joblib = pytest.importorskip("joblib")
    from ray.util.joblib import register_ray

    X, y = blobs
    search = _search()
    # The policy the user guide states for ray: its joblib backend's workers (actors of one
    # CPU) run with OMP_NUM_THREADS=1 unless the user set it; seen where the fits ran.
    search.set_params(scoring={"score": "neg_log_loss", "threads": _torch_threads}, refit="score")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        register_ray()
        with joblib.parallel_config(backend="ray"):
            search.fit(X, y)
    finally:
        ray.shutdown()
    _assert_same_as_serial(search, X, y)
    assert list(search.cv_results_["mean_test_threads"]) == [1, 1]


class _RecordThreads(Callback):
    def on_epoch_end(self, net, **kwargs):
        net.history.record("torch_threads", torch.get_num_threads())


def test_threadpool_limits_caps_torch_threads_in_fit(X):
    # The recipe of the thread policy: threadpoolctl caps the OpenMP pool torch runs on.
    torch.set_num_threads(2)  # conftest restores its own one thread after the test
    encoder = CEBMEncoder(**CHEAP_SETTINGS, callbacks=[_RecordThreads()], random_state=0)
    with threadpool_limits(limits=1):
        encoder.fit(X)
    assert list(encoder.history_[:, "torch_threads"]) == [1] * encoder.n_iter_
    assert torch.get_num_threads() == 2
    assert np.all(np.isfinite(encoder.transform(X)))
