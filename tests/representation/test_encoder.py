"""Behaviour of CEBMEncoder: its codes, objectives, chain starts, devices and diagnostics.

What every estimator must do (persistence, determinism, bad input, scikit-learn's tools) is
tested over all of them in tests/test_common.py.
"""

import pickle

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, EpochScoring
from skorch.exceptions import DeviceWarning

from sklearn_cebm import CEBMEncoder, SamplerWarning, TrainingDivergedError

from ..conftest import CHEAP_SETTINGS


@pytest.fixture
def fitted(X):
    return CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)


def test_cebmencoder_transform_shapes_and_std(fitted, X):
    mean, std = fitted.transform(X, return_std=True)
    assert mean.shape == std.shape == (len(X), CHEAP_SETTINGS["n_components"])
    assert np.all(std > 0) and np.all(std < 1), "posterior std must shrink from the bias's 1"
    np.testing.assert_array_equal(mean, fitted.transform(X))


def test_cebmencoder_history_has_energy_diagnostics(fitted):
    for epoch in fitted.history_:
        assert epoch["energy_gap"] == pytest.approx(epoch["energy_data"] - epoch["energy_model"])


def test_cebmencoder_score_matching_objective_learns_without_sampling(X):
    settings = {**CHEAP_SETTINGS, "max_iter": 20, "learning_rate": 1e-2}
    encoder = CEBMEncoder(**settings, objective="dsm", random_state=0).fit(X)
    again = CEBMEncoder(**settings, objective="dsm", random_state=0).fit(X)
    noise = np.random.default_rng(1).uniform(X.min(), X.max(), size=(500, X.shape[1]))

    assert encoder.score_samples(X).mean() > encoder.score_samples(noise).mean() + 1.0
    assert "energy_data" in encoder.history_[-1] and "energy_gap" not in encoder.history_[-1]
    assert not hasattr(encoder.net_, "replay_buffer_")
    np.testing.assert_array_equal(encoder.transform(X), again.transform(X))


def test_cebmencoder_gaussian_chain_init_fits_the_scaled_data(X):
    encoder = CEBMEncoder(**CHEAP_SETTINGS, chain_init="gaussian", random_state=0).fit(X)
    start = encoder.net_.chain_init_
    scaled = (X - encoder.input_center_) / encoder.input_scale_

    # The start is fitted once, in the sampler's units, and training's chains came from it.
    np.testing.assert_allclose(start.mean.numpy(), scaled.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(
        (start.scale @ start.scale.T).numpy(), np.cov(scaled.T), rtol=0.01, atol=1e-3
    )
    assert encoder.net_.replay_buffer_.start is start
    samples = encoder.sample(5, n_steps=0)
    assert samples.shape == (5, X.shape[1])
    assert np.all(samples >= X.min(axis=0) - 1e-6) and np.all(samples <= X.max(axis=0) + 1e-6)
    # Without SGLD steps, sample() returns the start's draws: they keep the data's strong
    # correlation of the first two features (0.8 here), which uniform noise lacks.
    data_correlation = np.corrcoef(X[:, 0], X[:, 1])[0, 1]
    drawn = encoder.sample(500, n_steps=0)
    uniform = CEBMEncoder(**CHEAP_SETTINGS, chain_init="uniform", random_state=0)
    uniform = uniform.fit(X).sample(500, n_steps=0)
    assert data_correlation > 0.6
    assert abs(np.corrcoef(drawn[:, 0], drawn[:, 1])[0, 1] - data_correlation) < 0.1
    assert abs(np.corrcoef(uniform[:, 0], uniform[:, 1])[0, 1]) < 0.15


def test_cebmencoder_gaussian_chain_init_is_seeded_and_survives_warm_start(X):
    params = dict(CHEAP_SETTINGS, chain_init="gaussian", random_state=1)
    first = CEBMEncoder(**params, warm_start=True).fit(X)
    second = CEBMEncoder(**params).fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    np.testing.assert_array_equal(first.sample(3, n_steps=5), second.sample(3, n_steps=5))

    start = first.net_.chain_init_
    first.fit(X[:40])  # warm start: the start fitted on the first call's data stays
    assert first.net_.chain_init_ is start


def test_cebmencoder_cnn_on_images():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 255, size=(40, 2 * 8 * 8))
    encoder = CEBMEncoder(**CHEAP_SETTINGS, image_shape=(2, 8, 8), random_state=0).fit(X)
    assert encoder.transform(X).shape == (40, CHEAP_SETTINGS["n_components"])
    assert encoder.net_.module_.encoder.__class__.__name__ == "ConvEncoder"
    # Pixels share one range, so the scaling is the same for every feature.
    assert np.all(encoder.input_scale_ == encoder.input_scale_[0])
    assert encoder.sample(2, n_steps=3).shape == (2, 128)


def test_cebmencoder_accepts_user_torch_module(X):
    module = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
    before = [p.detach().clone() for p in module.parameters()]
    encoder = CEBMEncoder(**{**CHEAP_SETTINGS, "n_components": 2}, encoder=module).fit(X)
    assert encoder.transform(X).shape == (len(X), 2)
    # The user's module is copied, never trained in place.
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))

    with pytest.raises(ValueError, match=r"shape \(n_samples, 8\)"):
        CEBMEncoder(**CHEAP_SETTINGS, encoder=module).fit(X)


@pytest.mark.parametrize(
    ("module", "image_shape", "message"),
    [
        (
            torch.nn.Sequential(torch.nn.Linear(5, 8)),
            None,
            r"shaped \(n, 3\); its first layer, Linear.* expects 5 features per row",
        ),
        (
            torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten()),
            (1, 3, 1),
            r"shaped \(n, 1, 3, 1\); its first layer, Conv2d.* expects 3 channels",
        ),
    ],
)
def test_cebmencoder_says_which_input_a_user_module_gets_and_expects(
    X, module, image_shape, message
):
    encoder = CEBMEncoder(**CHEAP_SETTINGS, encoder=module, image_shape=image_shape)
    with pytest.raises(ValueError, match=message):
        encoder.fit(X)
    assert not hasattr(encoder, "net_")


def test_cebmencoder_passes_skorch_callbacks(X):
    class CountEpochs(Callback):
        def initialize(self):
            self.epochs = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    counter = CountEpochs()
    encoder = CEBMEncoder(**CHEAP_SETTINGS, callbacks=[counter]).fit(X)
    fitted_counter = dict(encoder.net_.callbacks_)["CountEpochs"]
    assert fitted_counter.epochs == CHEAP_SETTINGS["max_iter"]
    assert not hasattr(counter, "epochs"), "the parameter itself must not be mutated by fit"


@pytest.mark.parametrize("objective", ["pcd", "dsm"])
def test_cebmencoder_verbose_shows_progress_bar_and_epoch_table(X, capsys, objective):
    CEBMEncoder(**CHEAP_SETTINGS, objective=objective, verbose=1).fit(X)
    captured = capsys.readouterr()
    # 150 rows in batches of 32, 2 epochs: one bar counts towards 2 x 5 batches.
    assert "10/10 [" in captured.err and "batch/s" in captured.err
    assert "\x1b[" not in captured.out, "no colour codes in a stream that is no terminal"
    assert "train_loss" in captured.out and "energy_data" in captured.out
    if objective == "pcd":
        assert "energy_gap" in captured.out


def test_cebmencoder_divergence_in_warm_start_leaves_the_fitted_encoder_unchanged(X):
    # A first fit that diverges leaves every estimator unfitted: tests/test_common.py.
    encoder = CEBMEncoder(**CHEAP_SETTINGS, random_state=0).fit(X)
    reference = encoder.transform(X)
    encoder.set_params(learning_rate=1e6, warm_start=True, max_iter=5, energy_l2=0.0)
    encoder.net_.set_params(lr=1e6, criterion__energy_l2=0.0)
    with pytest.raises(TrainingDivergedError):
        encoder.fit(X)
    np.testing.assert_array_equal(encoder.transform(X), reference)
    assert encoder.n_iter_ == CHEAP_SETTINGS["max_iter"]


@pytest.mark.parametrize("callback", [object(), ("name", object()), "EarlyStopping"])
def test_cebmencoder_rejects_a_callback_that_is_not_one(X, callback):
    encoder = CEBMEncoder(**CHEAP_SETTINGS, callbacks=[callback])
    with pytest.raises(TypeError, match="callbacks must hold skorch callbacks"):
        encoder.fit(X)
    assert not hasattr(encoder, "net_")


@pytest.mark.parametrize(
    "callback", [EarlyStopping(), ("checkpoint", Checkpoint(dirname="unused")), EpochScoring("r2")]
)
def test_cebmencoder_rejects_a_callback_that_monitors_a_validation_score(X, callback):
    encoder = CEBMEncoder(**CHEAP_SETTINGS, callbacks=[callback])
    with pytest.raises(ValueError, match=r"without a validation split.*monitor 'train_loss'"):
        encoder.fit(X)
    assert not hasattr(encoder, "net_")


def test_cebmencoder_stops_early_on_the_training_loss(X):
    # A threshold no epoch can beat: the second epoch ends the fit.
    stopper = EarlyStopping(monitor="train_loss", patience=1, threshold=1e9, sink=lambda _: None)
    encoder = CEBMEncoder(**{**CHEAP_SETTINGS, "max_iter": 10}, callbacks=[stopper]).fit(X)
    assert encoder.n_iter_ == 2
    assert encoder.transform(X).shape == (len(X), CHEAP_SETTINGS["n_components"])


# Rules scikit-learn's check_param_validation (tests/test_common.py) does not exercise: it
# tries a value of a wrong type and one outside each constraint, not the parameters together,
# free-form strings or an open interval's bound.
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"encoder": "cnn"}, "needs image_shape"),
        ({"image_shape": (3,), "encoder": "cnn"}, r"\(channels, height, width\)"),
        ({"device": "tpu:9"}, "not a device"),
        ({"objective": "dsm", "dsm_noise": 0.0}, "dsm_noise"),
    ],
)
def test_cebmencoder_rejects_bad_parameters(X, params, message):
    with pytest.raises(ValueError, match=message):
        CEBMEncoder(**{**CHEAP_SETTINGS, **params}).fit(X)


def test_cebmencoder_image_too_small_for_cnn():
    with pytest.raises(ValueError, match="too small"):
        CEBMEncoder(**CHEAP_SETTINGS, image_shape=(1, 4, 4)).fit(np.zeros((5, 16)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cebmencoder_cuda_requested_without_cuda(X):
    with pytest.raises(ValueError, match="no 'cuda' device available"):
        CEBMEncoder(**CHEAP_SETTINGS, device="cuda").fit(X)


@pytest.mark.parametrize(
    ("device", "kind"),
    [
        ("meta", "meta"),
        (torch.device("meta"), "meta"),
        pytest.param(
            "mps",
            "mps",
            marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="has MPS"),
        ),
        pytest.param(
            "xpu",
            "xpu",
            marks=pytest.mark.skipif(torch.xpu.is_available(), reason="has an XPU"),
        ),
        (f"cuda:{torch.cuda.device_count()}", "cuda"),
    ],
)
def test_cebmencoder_rejects_a_device_torch_does_not_have_here(X, device, kind):
    encoder = CEBMEncoder(**CHEAP_SETTINGS, device=device)
    with pytest.raises(ValueError, match=f"no '{kind}' device available here"):
        encoder.fit(X)
    assert not hasattr(encoder, "net_")


def test_cebmencoder_auto_device_is_cpu_without_cuda(fitted):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert fitted.device_.type == expected


def _tensors_training_keeps_on_its_device(net):
    """The weights and Adam's moments: what a CUDA fit pickles with the tag 'cuda:0'.

    Adam's step count and the generators live on the CPU; the replay buffer and the chain
    start pickle themselves there. Checked on an H200: a pickled CUDA fit of the encoder
    (either chain start) and of the clusterer tags these storages 'cuda:0' and no others.
    """
    moments = [value for state in net.optimizer_.state.values() for value in state.values()]
    tensors = [*net.module_.state_dict().values(), *moments]
    return [tensor for tensor in tensors if torch.is_tensor(tensor) and tensor.dim() > 0]


def test_cebmencoder_model_saved_on_gpu_loads_on_cpu(fitted, X, monkeypatch):
    # Stands in for a CUDA fit: torch pickles each storage with its device's tag, and a
    # storage tagged 'cuda:0' loads on a machine without CUDA only where skorch maps it to
    # the CPU. Without that, loading raises "Attempting to deserialize object on a CUDA
    # device".
    reference = {"transform": fitted.transform(X), "score_samples": fitted.score_samples(X)}
    on_cuda = {
        t.untyped_storage().data_ptr() for t in _tensors_training_keeps_on_its_device(fitted.net_)
    }
    cpu_tag = torch.serialization.location_tag

    def cuda_tag(storage):
        return "cuda:0" if storage.data_ptr() in on_cuda else cpu_tag(storage)

    fitted.net_.device, fitted.device_ = "cuda", torch.device("cuda")
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", cuda_tag)
        payload = pickle.dumps(fitted)
    assert b"cuda:0" in payload

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning):
        restored = pickle.loads(payload)
    assert torch.device(restored.net_.device).type == "cpu"
    np.testing.assert_array_equal(restored.transform(X), reference["transform"])
    np.testing.assert_array_equal(restored.score_samples(X), reference["score_samples"])
    restored.partial_fit(X)  # and training goes on, on the CPU
    assert restored.n_iter_ == fitted.n_iter_ + 1


def test_cebmencoder_training_separates_data_from_noise():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 4)) @ np.diag([1.0, 0.5, 0.2, 0.1])
    encoder = CEBMEncoder(
        n_components=4,
        hidden_layer_sizes=(32, 32),
        max_iter=15,
        batch_size=50,
        # Langevin's own noise level, sqrt(2 * step size): with the image-scale defaults
        # (noise 7.5e-3) chains on 4-D data fall straight into the minima and the energy
        # learns no density.
        sgld_steps=20,
        sgld_step_size=0.01,
        sgld_noise=np.sqrt(0.02),
        buffer_size=500,
        learning_rate=3e-3,
        random_state=0,
    ).fit(X)
    noise = rng.uniform(X.min(axis=0), X.max(axis=0), size=X.shape)
    gap = encoder.score_samples(X).mean() - encoder.score_samples(noise).mean()
    # Uniform noise in the data's bounding box is mostly far from the data's thin
    # ellipsoid; an untrained model scores the two about the same.
    assert gap > 1.0


def test_cebmencoder_rolls_back_when_the_energy_gap_runs_away():
    X = np.random.default_rng(0).standard_normal((300, 4))
    # Without SGLD the model samples stay uniform noise, so nothing checks the energy's
    # descent on the data: the gap grows past -10 in epoch 9 and reaches -29 in epoch 10.
    settings = {
        **CHEAP_SETTINGS,
        "hidden_layer_sizes": (32,),
        "max_iter": 10,
        "batch_size": 50,
        "sgld_steps": 0,
        "chain_init": "uniform",
        "learning_rate": 1e-2,
    }
    encoder = CEBMEncoder(**settings, energy_l2=0.0, random_state=0)
    with pytest.warns(SamplerWarning, match="energy gap") as caught:
        encoder.fit(X)
    messages = [str(w.message) for w in caught if "energy gap" in str(w.message)]
    # Epoch 7 was the last whose batches all stayed within the limit.
    assert len(messages) == 1 and "went back to the end of epoch 7" in messages[0]
    assert abs(encoder.history_[-1, "energy_gap"]) > 10
    assert encoder.history_[-1, "sampler_rollback"] == 7
    assert encoder.net_.lr == pytest.approx(5e-3)
    # The moving average went back too: it holds the updates of epochs 1 to 7 only.
    assert encoder.net_.weight_average_.n_updates == 7 * 6
    # The weights are epoch 7's: the model scores the data as it did before the runaway.
    assert np.all(np.isfinite(encoder.score_samples(X)))


def _parameters(module):
    return [parameter.detach() for parameter in module.parameters()]


def _all_equal(left, right):
    return all(torch.equal(a, b) for a, b in zip(left, right, strict=True))


def test_cebmencoder_weight_average_never_feeds_back_into_training(X):
    settings = {**CHEAP_SETTINGS, "max_iter": 2}
    averaged = CEBMEncoder(**settings, ema_decay=0.9, random_state=0).fit(X)
    plain = CEBMEncoder(**settings, ema_decay=None, random_state=0).fit(X)
    assert plain.net_.weight_average_ is None and plain.net_.training_weights_ is None
    for _ in range(2):  # after fit, and after a continued training
        # Training's own weights went the same way as without the average...
        assert _all_equal(averaged.net_.training_weights_, _parameters(plain.net_.module_))
        # ...and the fitted model holds their average, which differs from them.
        module = _parameters(averaged.net_.module_)
        assert _all_equal(module, averaged.net_.weight_average_.weights)
        assert not _all_equal(module, averaged.net_.training_weights_)
        assert not np.allclose(averaged.transform(X), plain.transform(X))
        averaged.partial_fit(X)
        plain.partial_fit(X)
    n_updates = averaged.net_.weight_average_.n_updates
    assert n_updates == sum(len(epoch["batches"]) for epoch in averaged.history_)
    # Switched off, the next call goes on from training's weights and keeps its own.
    averaged.set_params(ema_decay=None).partial_fit(X)
    plain.partial_fit(X)
    assert averaged.net_.weight_average_ is None and averaged.net_.training_weights_ is None
    assert _all_equal(_parameters(averaged.net_.module_), _parameters(plain.net_.module_))


def test_cebmencoder_warns_when_chains_do_not_move(X):
    settings = {**CHEAP_SETTINGS, "sgld_step_size": 0.0, "sgld_noise": 0.0}
    with pytest.warns(SamplerWarning, match="stuck"):
        encoder = CEBMEncoder(**settings, random_state=0).fit(X)
    assert encoder.history_[-1, "chain_displacement"] == 0.0


def test_cebmencoder_records_chain_displacement(fitted):
    displacement = fitted.history_[:, "chain_displacement"]
    assert len(displacement) == fitted.n_iter_
    assert all(d > 1e-3 for d in displacement)
