"""sklearn_cebm.persistence: save / load round trips that run no code from the file.

Every estimator of ``tests/test_common.py``'s table goes through a round trip, in full and
inference-only; the kept fixture ``tests/data/cebm_encoder_v1.zip`` catches a change of
format (rewrite it with ``python -m tests.test_persistence`` only when the format version
changes, and keep the old file's test).
"""

import json
import os
import pickle
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from skorch.callbacks import EpochTimer

from sklearn_cebm import CEBMEncoder
from sklearn_cebm.persistence import FORMAT_VERSION, load, save

from .test_common import ESTIMATORS, _assert_same_outputs, _fitted_values, _outputs

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "cebm_encoder_v1.zip"
FIXTURE_OUTPUTS = DATA / "cebm_encoder_v1_outputs.json"
FIXTURE_ROWS = 5  # the digits whose outputs the fixture keeps


def _blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 2.0, -2.0]])
    return centers[rng.integers(0, 3, size=150)] + 0.3 * rng.standard_normal((150, 3))


@cache
def _fitted(name):
    """ESTIMATORS[name] fitted once on the blobs; tests must not change it."""
    return clone(ESTIMATORS[name]).set_params(random_state=0).fit(_blobs())


def _round_trip(estimator, tmp_path, **kwargs):
    path = tmp_path / "model.zip"
    save(estimator, path, **kwargs)
    return load(path)


def _rewrite_metadata(path, change):
    """Rewrite ``model.json`` of the file at ``path`` by ``change(metadata)``."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    metadata = json.loads(members["model.json"])
    change(metadata)
    members["model.json"] = json.dumps(metadata).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


@pytest.mark.parametrize("inference_only", [False, True], ids=["full", "inference_only"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_round_trip_gives_bit_identical_outputs(name, inference_only, tmp_path):
    fitted, X = _fitted(name), _blobs()
    loaded = _round_trip(fitted, tmp_path, inference_only=inference_only)
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    _assert_same_outputs(_outputs(loaded, X), _outputs(fitted, X))
    np.testing.assert_equal(_fitted_values(loaded), _fitted_values(fitted))
    for key, value in fitted.net_.module_.state_dict().items():
        assert torch.equal(loaded.net_.module_.state_dict()[key], value), key


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_round_trip_continues_training_identically(name, tmp_path):
    X = _blobs()
    original = clone(ESTIMATORS[name]).set_params(random_state=0).fit(X)
    loaded = _round_trip(original, tmp_path)
    original.partial_fit(X)
    loaded.partial_fit(X)
    _assert_same_outputs(_outputs(loaded, X), _outputs(original, X))
    assert len(loaded.history_) == len(original.history_)


def test_inference_only_leaves_out_training_state(tmp_path):
    fitted = _fitted("CEBMEncoder")
    save(fitted, tmp_path / "full.zip")
    save(fitted, tmp_path / "small.zip", inference_only=True)
    assert (tmp_path / "small.zip").stat().st_size < (tmp_path / "full.zip").stat().st_size
    loaded = load(tmp_path / "small.zip")
    assert loaded.net_.replay_buffer_ is None
    assert not loaded.net_.optimizer_.state_dict()["state"]
    # The epochs are still counted, without their batches.
    assert len(loaded.history_) == len(fitted.history_)
    assert loaded.history_[-1, "train_loss"] == fitted.history_[-1, "train_loss"]
    assert all(not row["batches"] for row in loaded.history_)
    loaded.partial_fit(_blobs())  # training further restarts Adam and the chains
    assert len(loaded.history_) == len(fitted.history_) + 1


def test_load_runs_no_pickle(tmp_path, monkeypatch):
    path = tmp_path / "model.zip"
    save(_fitted("GMMCEBMClusterer"), path)

    def refuse(*args, **kwargs):
        raise AssertionError("load unpickled something")

    for module, name in [(pickle, "loads"), (pickle, "load"), (torch, "load")]:
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "_Unpickler", refuse)
    load(path)


def test_load_rejects_another_format_version(tmp_path):
    path = tmp_path / "model.zip"
    save(_fitted("CEBMEncoder"), path)
    _rewrite_metadata(path, lambda metadata: metadata.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}.*reads version"):
        load(path)


def test_load_rejects_unknown_classes(tmp_path):
    path = tmp_path / "model.zip"
    save(_fitted("CEBMEncoder"), path)
    _rewrite_metadata(path, lambda metadata: metadata.update(estimator="os.system"))
    with pytest.raises(ValueError, match=r"'os\.system', which is not an estimator"):
        load(path)


def test_load_rejects_files_that_are_not_models(tmp_path):
    (tmp_path / "text.zip").write_text("not a zip file")
    with pytest.raises(ValueError, match="not a model file"):
        load(tmp_path / "text.zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("model.json", json.dumps({"format": "other"}))
        archive.writestr("tensors.safetensors", b"")
    with pytest.raises(ValueError, match="not a model file"):
        load(tmp_path / "other.zip")


def test_model_trained_on_cuda_loads_on_the_cpu(tmp_path):
    """A file saved from CUDA names that device; without it here, the model goes on the CPU."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA (tests/test_cuda.py covers one with it)")
    fitted, path = _fitted("CEBMEncoder"), tmp_path / "model.zip"
    save(fitted, path)

    def as_if_on_cuda(metadata):
        metadata["attributes"]["device_"]["value"] = "cuda:0"
        params = dict(metadata["params"]["items"])
        params["device"] = "cuda"
        metadata["params"]["items"] = [[key, value] for key, value in params.items()]

    _rewrite_metadata(path, as_if_on_cuda)
    loaded = load(path)
    assert loaded.device_ == torch.device("cpu")
    assert loaded.device == "cuda"
    assert next(loaded.net_.module_.parameters()).device == torch.device("cpu")
    _assert_same_outputs(_outputs(loaded, _blobs()), _outputs(fitted, _blobs()))


_LOAD_WITHOUT_CUDA = """
import json, sys
import numpy as np, torch
from sklearn_cebm.persistence import load
loaded = load(sys.argv[1])
X = np.load(sys.argv[2])
print(json.dumps({
    "cuda_available": torch.cuda.is_available(),
    "device_": str(loaded.device_),
    "score_samples": loaded.score_samples(X).tolist(),
    "transform": loaded.transform(X).tolist(),
}))
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model_trained_on_cuda_loads_on_cuda_here_and_on_the_cpu_without_it(tmp_path):
    X = _blobs()
    fitted = clone(ESTIMATORS["CEBMEncoder"]).set_params(random_state=0, device="cuda").fit(X)
    save(fitted, tmp_path / "model.zip")
    loaded = load(tmp_path / "model.zip")
    assert loaded.device_.type == "cuda"
    _assert_same_outputs(_outputs(loaded, X), _outputs(fitted, X))
    np.save(tmp_path / "X.npy", X)
    arguments = [str(tmp_path / "model.zip"), str(tmp_path / "X.npy")]
    completed = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_CUDA, *arguments],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["cuda_available"] is False and report["device_"] == "cpu"
    for method in ("score_samples", "transform"):
        on_gpu = getattr(fitted, method)(X)
        np.testing.assert_allclose(report[method], on_gpu, rtol=1e-4, atol=1e-5, err_msg=method)


@pytest.mark.parametrize(
    "params, problem",
    [
        (dict(encoder=torch.nn.Sequential(torch.nn.Linear(3, 8))), "custom torch module"),
        (dict(callbacks=[EpochTimer()]), "user callbacks"),
    ],
    ids=["encoder", "callbacks"],
)
def test_save_refuses_what_plain_values_cannot_rebuild(params, problem, tmp_path):
    fitted = CEBMEncoder(n_components=4, max_iter=1, random_state=0, **params).fit(_blobs())
    with pytest.raises(ValueError, match=f"{problem}.*Use joblib.dump"):
        save(fitted, tmp_path / "model.zip")
    assert not (tmp_path / "model.zip").exists()


def test_save_refuses_subclasses_and_unfitted_estimators(tmp_path):
    class MyEncoder(CEBMEncoder):
        pass

    fitted = MyEncoder(n_components=4, max_iter=1, random_state=0).fit(_blobs())
    with pytest.raises(ValueError, match=r"only the package's estimators.*joblib"):
        save(fitted, tmp_path / "model.zip")
    with pytest.raises(NotFittedError):
        save(CEBMEncoder(), tmp_path / "model.zip")


def test_round_trip_keeps_feature_names_and_random_state_instances(tmp_path):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_blobs(), columns=["a", "b", "c"])
    random_state = np.random.RandomState(0)
    fitted = CEBMEncoder(n_components=4, max_iter=1, random_state=random_state).fit(X)
    loaded = _round_trip(fitted, tmp_path)
    np.testing.assert_array_equal(loaded.feature_names_in_, fitted.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert loaded.random_state.randint(1000) == fitted.random_state.randint(1000)
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))


# ----------------------------------------------------------------- the kept fixture
def _fixture_outputs(estimator):
    X = load_digits().data[:FIXTURE_ROWS]
    mean, std = estimator.transform(X, return_std=True)
    return {
        "transform": mean.tolist(),
        "transform_std": std.tolist(),
        "score_samples": estimator.score_samples(X).tolist(),
        "sample": estimator.sample(2, n_steps=5, random_state=0).tolist(),
    }


def write_fixture():
    """Train the fixture's model (4 components, 8 hidden units, 1 epoch on 50 digits) and
    save it, with its outputs on the first digits beside it."""
    X = load_digits().data[:50]
    encoder = CEBMEncoder(
        n_components=4,
        hidden_layer_sizes=(8,),
        max_iter=1,
        batch_size=25,
        buffer_size=16,
        random_state=0,
        device="cpu",
    ).fit(X)
    DATA.mkdir(exist_ok=True)
    save(encoder, FIXTURE)
    FIXTURE_OUTPUTS.write_text(json.dumps(_fixture_outputs(encoder), indent=1) + "\n")


def test_kept_fixture_loads_with_its_outputs():
    """A file of format version 1, written by an earlier checkout, still loads the same."""
    loaded = load(FIXTURE)
    assert type(loaded) is CEBMEncoder and loaded.n_components == 4
    assert loaded.net_.replay_buffer_.samples.shape == (16, 64)
    expected = json.loads(FIXTURE_OUTPUTS.read_text())
    outputs = _fixture_outputs(loaded)
    for name, values in expected.items():
        # Exact here and now; the tolerance allows another BLAS's float32 sums elsewhere.
        np.testing.assert_allclose(outputs[name], values, rtol=1e-5, atol=1e-6, err_msg=name)


if __name__ == "__main__":
    write_fixture()
