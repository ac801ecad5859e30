"""
=========================================
A hyperparameter search on a dask cluster
=========================================

``GridSearchCV`` hands its fits to joblib, and joblib to whichever backend is active:
here dask.distributed's, on a local cluster of two worker processes. The same code runs
on a cluster of many machines: only the line that makes the cluster changes (a
``Client("scheduler-address:8786")`` instead of a ``LocalCluster``). ray's backend works
alike (``ray.util.joblib.register_ray()``, then ``parallel_config(backend="ray")``).

Each worker has one thread (``threads_per_worker=1``), and dask starts each worker process
with ``OMP_NUM_THREADS=1``, so torch runs one thread per fit: with as many fits running as
cores, more threads would only compete for them (see the user guide's "Scaling up" page).
Needs the ``scaling`` extra: ``pip install "sklearn-cebm[scaling]"``.
"""

# %%
# The search: the codes of a CEBM, read by a logistic regression, on 600 digits; the
# number of latent dimensions is chosen by cross-validated accuracy. Five epochs keep the
# example quick; the accuracies are those of a short training.
import logging
import time

from distributed import Client, LocalCluster
from joblib import parallel_config
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklearn_cebm import CEBMEncoder

X, y = load_digits(return_X_y=True)
X, y = X[:600], y[:600]
encoder = CEBMEncoder(
    image_shape=(1, 8, 8),
    encoder="mlp",
    hidden_layer_sizes=(64,),
    max_iter=5,
    precision="float32",
    random_state=0,
)
pipe = make_pipeline(encoder, LogisticRegression(max_iter=500))
search = GridSearchCV(pipe, {"cebmencoder__n_components": [8, 16]}, cv=3, n_jobs=-1)

# %%
# The cluster, and the search on it. The workers are new processes that import this
# file, so a script makes the cluster only under ``if __name__ == "__main__"``.
if __name__ == "__main__":
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster),
        parallel_config(backend="dask"),
    ):
        start = time.perf_counter()
        search.fit(X, y)
        elapsed = time.perf_counter() - start
    print(f"{len(search.cv_results_['params']) * 3} fits on 2 workers in {elapsed:.1f} s")
    for params, score in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
    ):
        print(f"{params}: accuracy {score:.3f}")
    print("best:", search.best_params_)
