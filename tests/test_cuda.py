"""The estimators on a CUDA device: fitting, outputs, determinism, and use without a GPU.

Skipped where torch sees no CUDA device, as on CI; ``benchmarks/gpu_check.sh`` runs them
on a lent GPU. Every fit is tiny, so the file takes well under a minute there.
"""

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
from inspect import signature
from itertools import chain
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from skorch.callbacks import Callback

from sklearn_cebm import (
    CEBMEncoder,
    CEBMOutlierDetector,
    GMMCEBMClusterer,
    IGEBMEncoder,
    VAEEncoder,
)

from .conftest import CHEAP_SETTINGS

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device: torch.cuda.is_available() is False here",
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]

# Each case: the estimator class, the settings it adds to CHEAP_SETTINGS, and its data.
CASES = {
    "CEBMEncoder": (CEBMEncoder, {}, "blobs"),
    "CEBMEncoder-dsm": (CEBMEncoder, {"objective": "dsm"}, "blobs"),
    "CEBMEncoder-cnn": (CEBMEncoder, {"image_shape": (1, 8, 8)}, "digits"),
    "CEBMEncoder-cnn-bfloat16": (
        CEBMEncoder,
        {"image_shape": (1, 8, 8), "precision": "bfloat16"},
        "digits",
    ),
    "GMMCEBMClusterer": (GMMCEBMClusterer, {"n_clusters": 3}, "blobs"),
    "CEBMOutlierDetector": (CEBMOutlierDetector, {}, "blobs"),
    "IGEBMEncoder": (IGEBMEncoder, {}, "blobs"),
    "VAEEncoder": (VAEEncoder, {}, "blobs"),
}
ESTIMATOR_CLASSES = [CEBMEncoder, GMMCEBMClusterer, CEBMOutlierDetector, IGEBMEncoder, VAEEncoder]

# Enough training for every estimator to tell data on a plane in 8 dimensions from uniform
# noise in its bounding box: on the CPU, over 8 seeds, the AUROC was 0.80 to 0.998.
QUALITY_SETTINGS = {
    **CHEAP_SETTINGS,
    "hidden_layer_sizes": (32,),
    "max_iter": 15,
    "sgld_steps": 20,
    "buffer_size": 256,
    "learning_rate": 4e-3,
}
QUALITY_MIN_AUROC = 0.7

# Largest |CPU - GPU| gap of a float output computed from the same GPU-trained weights, as
# a share of the output's largest magnitude: float32 rounding for the MLPs; cuDNN computes
# float32 convolutions in TF32 by default (10-bit mantissa), hence the conv case's.
CROSS_DEVICE_TOLERANCE = {"CEBMEncoder-cnn": 2e-2}
CROSS_DEVICE_DEFAULT_TOLERANCE = 1e-4
# Labels from nearly tied energies may flip between the devices' roundings.
CROSS_DEVICE_MIN_LABEL_AGREEMENT = 0.98


def _data(case):
    kind = CASES[case][2]
    if kind == "digits":
        return load_digits().data[:128]
    rng = np.random.default_rng(0)
    centers = np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 2.0, -2.0]])
    labels = rng.integers(0, 3, size=150)
    return centers[labels] + 0.3 * rng.standard_normal((150, 3))


def _own_params(estimator_class, settings):
    """The settings ``estimator_class`` takes: the VAE has no sampler parameters."""
    names = estimator_class().get_params()
    return {name: value for name, value in settings.items() if name in names}


def _estimator(case, **params):
    estimator_class, extra, _ = CASES[case]
    return estimator_class(**_own_params(estimator_class, {**CHEAP_SETTINGS, **extra, **params}))


def _outputs(estimator, X):
    """Every inference output of a fitted estimator on X, by method name."""
    outputs = {
        "score_samples": estimator.score_samples(X),
        "score_gradient_norm": estimator.score_gradient_norm(X),
    }
    for method in ("transform", "predict", "predict_proba", "decision_function"):
        if hasattr(estimator, method):
            outputs[method] = getattr(estimator, method)(X)
    transform = getattr(estimator, "transform", None)
    if transform is not None and "return_std" in signature(transform).parameters:
        outputs["transform_std"] = transform(X, return_std=True)[1]
    steps = {"n_steps": 5} if "n_steps" in signature(estimator.sample).parameters else {}
    outputs["sample"] = estimator.sample(4, random_state=0, **steps)
    return outputs


def _expected_shapes(estimator, n_rows):
    n_components = estimator.n_components
    return {
        "score_samples": (n_rows,),
        "score_gradient_norm": (n_rows,),
        "transform": (n_rows, n_components),
        "transform_std": (n_rows, n_components),
        "predict": (n_rows,),
        "predict_proba": (n_rows, getattr(estimator, "n_clusters", 0)),
        "decision_function": (n_rows,),
        "sample": (4, estimator.n_features_in_),
    }


def _check_outputs(estimator, X):
    """Outputs are finite numpy arrays of the documented shapes, floats in X's dtype."""
    outputs = _outputs(estimator, X)
    shapes = _expected_shapes(estimator, len(X))
    for name, value in outputs.items():
        assert isinstance(value, np.ndarray), name
        assert value.shape == shapes[name], name
        assert np.isfinite(value).all(), name
        if name == "predict":
            assert value.dtype == np.int64, name
        elif name != "sample":  # samples are in the training data's units, not X's
            assert value.dtype == X.dtype, name
    assert outputs["sample"].dtype.kind == "f"
    if "predict_proba" in outputs:
        np.testing.assert_allclose(outputs["predict_proba"].sum(axis=1), 1.0, rtol=1e-4)


def _on_cuda(estimator):
    module = estimator.net_.module_
    return all(t.is_cuda for t in chain(module.parameters(), module.buffers()))


@pytest.mark.parametrize("case", CASES)
def test_cuda_fit_runs_on_the_gpu_and_outputs_are_finite(case):
    X = _data(case)
    estimator = _estimator(case, device="cuda", random_state=0).fit(X)
    assert estimator.device_.type == "cuda"
    assert _on_cuda(estimator)
    _check_outputs(estimator, X)
    _check_outputs(estimator, X.astype(np.float32))


@pytest.mark.parametrize("device", ["cuda:0", torch.device("cuda"), "auto"], ids=str)
def test_cuda_device_spellings(device):
    X = _data("CEBMEncoder")
    encoder = _estimator("CEBMEncoder", device=device, random_state=0).fit(X)
    assert encoder.device_.type == "cuda"
    assert encoder.device_ == torch.device(device if device != "auto" else "cuda")
    assert _on_cuda(encoder)
    assert np.isfinite(encoder.transform(X)).all()


def _differences(first, second):
    """Names of the outputs and weights that differ between two fits, with the largest gap."""
    differences = []
    for name in first["outputs"]:
        a, b = first["outputs"][name], second["outputs"][name]
        if not np.array_equal(a, b):
            gap = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))
            differences.append(f"output {name}: max |difference| {gap:.3g}")
    for name, tensor in first["weights"].items():
        if not torch.equal(tensor, second["weights"][name]):
            gap = (tensor - second["weights"][name]).abs().max().item()
            differences.append(f"weight {name}: max |difference| {gap:.3g}")
    return differences


def _fit_and_record(case, X):
    estimator = _estimator(case, device="cuda", random_state=0).fit(X)
    weights = {name: t.detach().cpu() for name, t in estimator.net_.module_.state_dict().items()}
    return {"outputs": _outputs(estimator, X), "weights": weights}


@pytest.mark.parametrize("case", CASES)
def test_cuda_same_seed_same_outputs(case):
    """Two fits on the GPU with one ``random_state`` give bit-identical weights and outputs.

    Every draw comes from generators seeded by ``random_state``; a difference would come
    from a CUDA kernel whose result depends on thread scheduling. The replay buffer's
    write-back was one (repeated chain indices, fixed: the last one wins); cuDNN's default
    convolution backward algorithms are another, which the user controls: the conv net is
    reproducible on CUDA with ``torch.backends.cudnn.deterministic = True`` (measured on an
    H200: without it two seeded fits differ by up to 6e-6 in ``score_samples``). The
    failure message lists what differs; ``benchmarks/gpu_check.sh`` also writes a
    diagnosis to determinism.log.
    """
    X = _data(case)
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        first, second = _fit_and_record(case, X), _fit_and_record(case, X)
    differences = _differences(first, second)
    assert not differences, "two seeded CUDA fits differ:\n" + "\n".join(differences)


# Runs with CUDA hidden: loads each saved case, records what happened, writes report.json.
_LOAD_WITHOUT_CUDA = textwrap.dedent(
    """
    import json, sys, traceback, warnings
    from pathlib import Path
    import joblib, numpy as np, torch
    from tests.test_cuda import CASES, _data, _outputs

    folder = Path(sys.argv[1])
    torch.set_num_threads(1)  # tiny models: threads cost more than they save

    def attempt(step, report, function):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = function()
            except Exception:
                report[step + "_error"] = traceback.format_exc()
                result = None
        report[step + "_warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
        return result

    reports = {"cuda_available": torch.cuda.is_available()}
    for case in CASES:
        report = reports[case] = {}
        X = _data(case)
        model = attempt("load", report, lambda: joblib.load(folder / f"{case}.joblib"))
        if model is None:
            continue
        module = model.net_.module_
        report["tensor_devices"] = sorted(
            {str(t.device) for t in [*module.parameters(), *module.buffers()]}
        )
        outputs = attempt("predict", report, lambda: _outputs(model, X))
        if outputs is not None:
            np.savez(folder / f"{case}-cpu.npz", **outputs)
        report["n_iter_before"] = model.n_iter_
        refit = attempt("train", report, lambda: model.set_params(warm_start=True).fit(X))
        if refit is not None:
            report["n_iter_after"] = refit.n_iter_
            report["finite_after_training"] = bool(np.isfinite(refit.score_samples(X)).all())
    (folder / "report.json").write_text(json.dumps(reports, indent=1))
    """
)


@pytest.fixture(scope="module")
def without_cuda(tmp_path_factory):
    """Every case fitted on the GPU and saved, then used in a process that sees no GPU.

    Returns the GPU's outputs by case, the child's report and the folder of its outputs.
    """
    folder = tmp_path_factory.mktemp("fitted_on_cuda")
    on_gpu = {}
    for case in CASES:
        X = _data(case)
        estimator = _estimator(case, device="cuda", random_state=0).fit(X)
        joblib.dump(estimator, folder / f"{case}.joblib")
        on_gpu[case] = _outputs(estimator, X)
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    completed = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_CUDA, str(folder)],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads((folder / "report.json").read_text())
    assert report["cuda_available"] is False, "CUDA_VISIBLE_DEVICES='' did not hide the GPU"
    return on_gpu, report, folder


def _case_report(without_cuda, case, step):
    """The child's report on ``case``, failing with the end of its traceback if ``step`` did."""
    report = without_cuda[1][case]
    for failed in ("load", step):
        error = report.get(f"{failed}_error")
        assert error is None, f"{failed} without CUDA failed:\n{error[-2500:]}"
    return report


def _assert_close_across_devices(on_cpu, on_gpu, case, name):
    tolerance = CROSS_DEVICE_TOLERANCE.get(case, CROSS_DEVICE_DEFAULT_TOLERANCE)
    scale = max(float(np.max(np.abs(on_gpu))), 1e-12)
    gap = float(np.max(np.abs(on_cpu.astype(np.float64) - on_gpu)))
    assert gap <= tolerance * scale, (
        f"{name}: max |CPU - GPU| = {gap:.3g}, {gap / scale:.2g} of its largest value"
    )


@pytest.mark.parametrize("case", CASES)
def test_cuda_fitted_model_predicts_without_cuda(without_cuda, case):
    """A model fitted on a GPU and saved with joblib works on a machine without CUDA."""
    report = _case_report(without_cuda, case, "predict")
    assert report["tensor_devices"] == ["cpu"]
    on_gpu = without_cuda[0][case]
    with np.load(without_cuda[2] / f"{case}-cpu.npz") as on_cpu:
        for name, expected in on_gpu.items():
            if name == "sample":  # drawn from the CPU's generator: other numbers
                assert on_cpu[name].shape == expected.shape
            elif name == "predict":
                agreement = np.mean(on_cpu[name] == expected)
                assert agreement >= CROSS_DEVICE_MIN_LABEL_AGREEMENT, (name, agreement)
            else:
                _assert_close_across_devices(on_cpu[name], expected, case, name)


@pytest.mark.parametrize("case", CASES)
def test_cuda_fitted_model_loads_without_cuda_with_only_device_warnings(without_cuda, case):
    """Loading warns only that the weights move to the CPU (skorch's DeviceWarning)."""
    report = _case_report(without_cuda, case, "predict")
    unexpected = [w for w in report["load_warnings"] if not w.startswith("DeviceWarning")]
    assert not unexpected + report["predict_warnings"]


@pytest.mark.parametrize("case", CASES)
def test_cuda_fitted_model_trains_further_without_cuda(without_cuda, case):
    """``warm_start=True`` goes on training a GPU-fitted model on the CPU."""
    report = _case_report(without_cuda, case, "train")
    assert report["n_iter_after"] > report["n_iter_before"]
    assert report["finite_after_training"]
    assert not report["train_warnings"]


def _plane_and_noise():
    """400 points near a plane in 8 dimensions, and 400 uniform in their bounding box."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((2, 8))
    X = rng.standard_normal((400, 2)) @ weights + 0.05 * rng.standard_normal((400, 8))
    return X, rng.uniform(X.min(axis=0), X.max(axis=0), size=X.shape)


def _data_versus_noise_auroc(estimator, X, noise):
    scores = np.concatenate([estimator.score_samples(X), estimator.score_samples(noise)])
    is_data = np.concatenate([np.ones(len(X)), np.zeros(len(noise))])
    return roc_auc_score(is_data, scores)


@pytest.mark.parametrize("estimator_class", ESTIMATOR_CLASSES, ids=lambda c: c.__name__)
def test_cuda_and_cpu_fits_are_of_the_same_quality(estimator_class):
    """With one seed, a GPU and a CPU fit both tell data from noise by ``score_samples``.

    Not bit-equal: the devices draw from different random streams and round differently.
    """
    X, noise = _plane_and_noise()
    settings = _own_params(estimator_class, QUALITY_SETTINGS)
    auroc = {}
    for device in ("cpu", "cuda"):
        estimator = estimator_class(**settings, device=device, random_state=0).fit(X)
        auroc[device] = _data_versus_noise_auroc(estimator, X, noise)
    assert min(auroc.values()) > QUALITY_MIN_AUROC, auroc


def test_cuda_one_process_accelerator_trains_as_device_cuda(X):
    """``accelerator=`` on the GPU (one process): the model ``device='cuda'`` trains."""
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator()
    settings = dict(CHEAP_SETTINGS, precision="float32", random_state=0)
    plain = CEBMEncoder(**settings, device="cuda").fit(X)
    accelerated = CEBMEncoder(**settings, accelerator=accelerator).fit(X)
    assert accelerated.device_.type == "cuda"
    assert type(accelerated.net_) is type(plain.net_)
    np.testing.assert_allclose(accelerated.transform(X), plain.transform(X), rtol=1e-5, atol=1e-6)
    assert accelerated.__getstate__()["accelerator"] is None


# ---------------------------------------------------------------- CUDA graphs
# The PCD update replayed as a CUDA graph (PCDNet's cuda_graphs setting) against the same
# update run eagerly. Both run the same kernels on the same random numbers (the graph's
# registered generator draws what the eager update would), so they agree to float32
# rounding; the tolerances allow for kernels that pick other algorithms in a capture.
GRAPH_STEP_TOLERANCE = dict(rtol=1e-4, atol=1e-5)
GRAPH_FIT_TOLERANCE = 1e-3  # of the largest |transform|, after a short fit


class _CUDAGraphs(Callback):
    """Turns on the net's CUDA-graph update for the fit (no estimator parameter yet)."""

    def on_train_begin(self, net, **kwargs):
        net.cuda_graphs = True


def _graphed_encoder(**params):
    settings = {**CHEAP_SETTINGS, "image_shape": (1, 8, 8), "device": "cuda", **params}
    return CEBMEncoder(**settings)


def _steps(net, x, n_steps):
    """Run ``n_steps`` updates on ``x``; their losses, gradients and the chains after."""
    results = []
    for _ in range(n_steps):
        net.module_.zero_grad(set_to_none=True)
        step = net.contrastive_divergence_step(x)
        gradients = [p.grad.detach().clone() for p in net.module_.parameters()]
        results.append((step.loss.detach().clone(), gradients))
    return results, net.replay_buffer_.samples.clone()


def test_cuda_graphed_update_equals_the_eager_update():
    X = load_digits().data[:128]
    fitted = _graphed_encoder(random_state=0).fit(X).net_
    x = torch.as_tensor(X[:32] / 8.0 - 1.0, dtype=torch.float32, device="cuda")
    x = x.reshape(-1, 1, 8, 8)
    # Copies of one net: the same weights, chains and generator seed.
    eager, graphed = copy.deepcopy(fitted), copy.deepcopy(fitted)
    graphed.cuda_graphs, graphed.cuda_graph_warmup = True, 0
    expected, expected_chains = _steps(eager, x, 3)
    actual, actual_chains = _steps(graphed, x, 3)
    assert "_captured_step" in vars(graphed)  # captured once, replayed three times
    for (loss, gradients), (loss_eager, gradients_eager) in zip(actual, expected, strict=True):
        torch.testing.assert_close(loss, loss_eager, **GRAPH_STEP_TOLERANCE)
        for gradient, gradient_eager in zip(gradients, gradients_eager, strict=True):
            torch.testing.assert_close(gradient, gradient_eager, **GRAPH_STEP_TOLERANCE)
    torch.testing.assert_close(actual_chains, expected_chains, **GRAPH_STEP_TOLERANCE)
    # Each replay drew new noise: the three losses differ.
    assert len({float(loss) for loss, _ in actual}) == 3


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_device_generator_persists(device):
    # One generator for the whole fit, whatever the spelling of the device: a graph
    # replays the draws of the generator registered at its capture. (Before, device='cuda'
    # built a new one, seeded from the CPU's, at every call.)
    net = _graphed_encoder(device=device, random_state=0).fit(load_digits().data[:64]).net_
    assert net.device_generator() is net.device_generator()


def test_cuda_eager_update_makes_no_device_sync():
    # CUDA's own guard: any synchronising call (.item(), nonzero, a masked write) raises.
    X = load_digits().data[:128]
    net = _graphed_encoder(random_state=0).fit(X).net_
    x = torch.as_tensor(X[:32] / 8.0 - 1.0, dtype=torch.float32, device="cuda")
    net.module_.zero_grad(set_to_none=True)
    torch.cuda.set_sync_debug_mode("error")
    try:
        net.contrastive_divergence_step(x.reshape(-1, 1, 8, 8))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _graphed_fit(X, seed=0):
    # Batches of 32 of 128 rows: the graph is captured at the 4th update of the first
    # epoch and replayed from then on.
    return _graphed_encoder(max_iter=3, random_state=seed, callbacks=[_CUDAGraphs()]).fit(X)


def test_cuda_graphed_fits_repeat_and_match_eager_fits():
    X = load_digits().data[:128]
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        first, second = _graphed_fit(X), _graphed_fit(X)
        eager = _graphed_encoder(max_iter=3, random_state=0).fit(X)
    assert "_captured_step" in vars(first.net_)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    expected = eager.transform(X)
    gap = np.max(np.abs(first.transform(X) - expected))
    assert gap <= GRAPH_FIT_TOLERANCE * np.max(np.abs(expected)), gap


def test_cuda_graphed_fit_pickles_and_trains_further():
    X = load_digits().data[:128]
    encoder = pickle.loads(pickle.dumps(_graphed_fit(X)))
    assert "_captured_step" not in vars(encoder.net_)
    n_iter = encoder.n_iter_
    encoder.set_params(warm_start=True, max_iter=1).fit(X)  # captures anew
    assert encoder.n_iter_ == n_iter + 1
    assert np.isfinite(encoder.transform(X)).all()
