"""One model trained on several processes with Hugging Face accelerate (``accelerator=``).

Needs the ``scaling`` extra (accelerate), without which the tests skip. The tests in this
process use a one-process ``Accelerator``, which must train exactly as no accelerator;
one test launches two CPU processes (``accelerate launch``, gloo) and checks what they
share, what each keeps, that they stop together when one diverges, and that the model
saved by the main process loads and trains on in a plain process.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_cebm import CEBMEncoder, EpochCheckpoint, IGEBMEncoder
from sklearn_cebm._training.nets import DSMNet
from sklearn_cebm._training.pcd_net import PCDNet

from ..conftest import CHEAP_SETTINGS

accelerate = pytest.importorskip("accelerate")
# With the other tests of the scaling extra, out of the default run (pyproject.toml).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_process():
    return accelerate.Accelerator(cpu=True)


@pytest.mark.parametrize(
    "Estimator, objective, net_class",
    [
        (CEBMEncoder, "pcd", PCDNet),
        (CEBMEncoder, "dsm", DSMNet),
        (IGEBMEncoder, "pcd", PCDNet),
    ],
)
def test_one_process_accelerator_trains_as_without_one(
    X, one_process, Estimator, objective, net_class
):
    settings = dict(CHEAP_SETTINGS, objective=objective, precision="float32", random_state=0)
    plain = Estimator(**settings).fit(X)
    accelerated = Estimator(**settings, accelerator=one_process).fit(X)
    np.testing.assert_array_equal(accelerated.transform(X), plain.transform(X))
    assert type(accelerated.net_) is net_class  # handed back plain
    assert not hasattr(accelerated.net_, "accelerator")
    losses = [epoch["train_loss"] for epoch in accelerated.history_]
    assert losses == [epoch["train_loss"] for epoch in plain.history_]
    # Continued training, too, goes on as without one.
    plain.partial_fit(X)
    accelerated.partial_fit(X)
    np.testing.assert_array_equal(accelerated.transform(X), plain.transform(X))


def test_accelerated_model_pickles_without_its_accelerator(X, one_process, tmp_path):
    encoder = CEBMEncoder(**CHEAP_SETTINGS, random_state=0, accelerator=one_process).fit(X)
    joblib.dump(encoder, tmp_path / "encoder.joblib")
    loaded = joblib.load(tmp_path / "encoder.joblib")
    assert loaded.accelerator is None
    assert encoder.accelerator is one_process  # the live estimator keeps its own
    np.testing.assert_array_equal(loaded.transform(X), encoder.transform(X))
    loaded.partial_fit(X)  # trains on in a plain process
    assert loaded.n_iter_ == encoder.n_iter_ + 1


class _FakeAccelerator:
    """Has an Accelerator's methods and the settings the estimators check."""

    num_processes = 1
    process_index = 0
    device = torch.device("cpu")

    def __init__(self, mixed_precision="no", gradient_accumulation_steps=1):
        self.mixed_precision = mixed_precision
        self.gradient_accumulation_steps = gradient_accumulation_steps

    def prepare(self, obj):
        return obj

    def unwrap_model(self, model):
        return model

    def gather(self, tensor):
        return tensor

    def reduce(self, tensor, reduction="sum"):
        return tensor


@pytest.mark.parametrize(
    "accelerator, settings, match",
    [
        (_FakeAccelerator(mixed_precision="bf16"), {}, "mixed_precision='bf16'"),
        (_FakeAccelerator(gradient_accumulation_steps=4), {}, "gradient_accumulation_steps=4"),
        (_FakeAccelerator(), {"device": "cuda:0"}, "differs from the accelerator's device"),
    ],
)
def test_accelerator_settings_training_does_not_follow_are_refused(X, accelerator, settings, match):
    encoder = CEBMEncoder(**CHEAP_SETTINGS, **settings, accelerator=accelerator)
    with pytest.raises(ValueError, match=match):
        encoder.fit(X)
    assert not hasattr(encoder, "net_")


def test_accelerator_counting_fewer_processes_than_launched_is_refused(X, one_process, monkeypatch):
    # Accelerator() without cpu=True, under a launcher on a machine without GPUs.
    monkeypatch.setenv("WORLD_SIZE", "2")
    encoder = CEBMEncoder(**CHEAP_SETTINGS, accelerator=one_process)
    with pytest.raises(ValueError, match=r"started 2 processes .* Accelerator\(cpu=True\)"):
        encoder.fit(X)


def test_accelerator_with_a_checkpoint_is_refused(X, one_process, tmp_path):
    checkpoint = EpochCheckpoint(tmp_path / "fit.ckpt")
    encoder = CEBMEncoder(**CHEAP_SETTINGS, callbacks=[checkpoint], accelerator=one_process)
    with pytest.raises(ValueError, match="EpochCheckpoint is not supported"):
        encoder.fit(X)
    assert not (tmp_path / "fit.ckpt").exists()


def test_accelerator_that_is_none_of_one_is_refused(X):
    with pytest.raises(InvalidParameterError, match="accelerator"):
        CEBMEncoder(**CHEAP_SETTINGS, accelerator="gloo").fit(X)


# Run by each of the two processes: a fit, then a fit that diverges on process 1 only.
_WORKER = textwrap.dedent(
    """
    import hashlib, json, sys
    import joblib, numpy as np, torch
    from accelerate import Accelerator
    from skorch.callbacks import Callback
    from sklearn.datasets import load_digits
    from sklearn_cebm import CEBMEncoder, TrainingDivergedError

    folder, settings = sys.argv[1], json.loads(sys.argv[2])
    accelerator = Accelerator(cpu=True)
    X = load_digits().data[:600]
    encoder = CEBMEncoder(**settings, accelerator=accelerator).fit(X)
    rank = accelerator.process_index
    chains = encoder.net_.replay_buffer_.samples
    half = chains.shape[0] // 2

    def digest(array):
        return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()

    weights = torch.cat([p.detach().flatten() for p in encoder.net_.module_.parameters()])
    report = {
        "processes": accelerator.num_processes,
        "weights": digest(weights.numpy()),
        "chains": digest(chains.numpy()),
        "generator": digest(encoder.net_.random_generator_.get_state().numpy()),
        "shards_differ": not torch.equal(chains[:half], chains[half:]),
        "n_chains": chains.shape[0],
        "history": [
            [epoch[key] for key in ("train_loss", "energy_gap", "train_batch_count")]
            for epoch in encoder.history_
        ],
    }
    if accelerator.is_main_process:
        joblib.dump(encoder, f"{folder}/encoder.joblib")
    # A continued training: each process takes its share of the gathered chains again.
    encoder.partial_fit(X)
    chains = encoder.net_.replay_buffer_.samples
    report["continued"] = [digest(chains.numpy()), chains.shape[0]]


    begun = []


    class PoisonOnProcessOne(Callback):
        # Non-finite weights on process 1 only, from its second batch on.
        def on_batch_begin(self, net, batch=None, training=None, **kwargs):
            batches = len(net.history[-1]["batches"])
            begun.append(batches)
            if training and net.accelerator.process_index == 1 and batches >= 2:
                module = net.accelerator.unwrap_model(net.module_)
                with torch.no_grad():
                    next(module.parameters()).fill_(float("nan"))


    poisoned = CEBMEncoder(**settings, accelerator=accelerator, callbacks=[PoisonOnProcessOne()])
    try:
        poisoned.fit(X)
        report["diverged"] = None
    except TrainingDivergedError as error:
        report["diverged"] = str(error)
    report["batches_begun"] = len(begun)
    with open(f"{folder}/process{rank}.json", "w") as file:
        json.dump(report, file)
    # Both processes done before either closes gloo's process group, or its exit may abort.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    """
)

_SETTINGS = dict(
    n_components=8,
    hidden_layer_sizes=(32,),
    max_iter=4,
    batch_size=16,  # per process: a global batch of 32
    sgld_steps=3,
    buffer_size=64,
    precision="float32",
    random_state=0,
)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _probe_accuracy(encoder, X, y):
    probe = LogisticRegression(max_iter=2000)
    return cross_val_score(probe, encoder.transform(X), y, cv=3).mean()


def test_two_processes_train_one_model_that_loads_in_a_plain_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    command += ["--num_processes=2", "--num_machines=1", "--mixed_precision=no"]
    command += ["--dynamo_backend=no", f"--main_process_port={_free_port()}"]
    command += [str(script), str(tmp_path), json.dumps(_SETTINGS)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # A process left waiting for the other (a divergence seen by one only) hangs: the
    # timeout turns that into a failure.
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / f"process{rank}.json").read_text()) for rank in (0, 1)]
    assert [report["processes"] for report in reports] == [2, 2]
    # Shared: weights, the gathered chains, the generator, and every recorded value.
    for key in ("weights", "chains", "generator", "history", "continued"):
        assert reports[0][key] == reports[1][key], key
    # Per process: each shard of chains moved on its own draws; each took half the data.
    assert reports[0]["n_chains"] == 64 and reports[0]["shards_differ"]
    assert reports[0]["continued"][1] == 64
    batches_per_process = int(np.ceil(np.ceil(600 / 16) / 2))
    assert [row[2] for row in reports[0]["history"]] == [batches_per_process] * 4
    # A divergence on one process stops both, with the package's error.
    for report in reports:
        assert report["diverged"] is not None and "non-finite energy" in report["diverged"]
        assert report["batches_begun"] == 2  # in the batch it happened in, not after

    encoder = joblib.load(tmp_path / "encoder.joblib")
    assert encoder.accelerator is None and type(encoder.net_) is PCDNet
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    codes = encoder.transform(X)
    assert np.isfinite(codes).all()
    # The references of the out-of-range rule, each process scoring half of X, are X's.
    lowest, highest = encoder.lowest_training_score_, encoder.highest_training_gradient_norm_
    assert lowest == pytest.approx(encoder.score_samples(X).min(), rel=1e-5)
    assert highest == pytest.approx(encoder.score_gradient_norm(X).max(), rel=1e-5)
    # As good as one process with the same global batch (32) and so the same updates.
    one = CEBMEncoder(**dict(_SETTINGS, batch_size=32)).fit(X)
    two_accuracy, one_accuracy = _probe_accuracy(encoder, X, y), _probe_accuracy(one, X, y)
    # Chance is 0.1; a tiny model trained 76 updates reaches about 0.35 either way.
    assert two_accuracy > max(0.2, one_accuracy - 0.1), (two_accuracy, one_accuracy)
    encoder.partial_fit(X)  # trains on in a plain process
    assert encoder.n_iter_ == 5
