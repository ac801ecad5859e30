"""The training layer's callbacks: the sampler's monitor and rollback, the mixture's seeding."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_cebm._core.biases import GaussianMixtureBias
from sklearn_cebm._core.encoders import MLPEncoder, initialize_layers
from sklearn_cebm._core.model import ConjugateEnergyModel
from sklearn_cebm._training.callbacks import (
    EpochTable,
    MixtureMeansSeeding,
    RunProgressBar,
    SamplerMonitor,
    SamplerWarning,
)

from .test_nets import _TINY_SETTINGS, N_FEATURES, _blobs, _net

_TINY_LR = _TINY_SETTINGS["lr"]


class _HistoryStub:
    """Just what SamplerMonitor reads from a net: its history and ``sgld_steps``."""

    def __init__(self, gaps):
        # None stands for an epoch cut short (an interrupt), which records no gap.
        self.history = [
            {"epoch": i + 1, "energy_gap": gap, "chain_displacement": 0.1}
            if gap is not None
            else {"epoch": i + 1}
            for i, gap in enumerate(gaps)
        ]
        self.sgld_steps = 5


def _gap_warnings(gaps, **monitor_params):
    monitor = SamplerMonitor(**monitor_params)
    monitor.on_train_begin(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for end in range(1, len(gaps) + 1):
            if gaps[end - 1] is not None:  # an interrupted epoch never reaches its end
                monitor.on_epoch_end(_HistoryStub(gaps[:end]))
    return [w for w in caught if issubclass(w.category, SamplerWarning)]


@pytest.mark.parametrize(
    ("gaps", "expected"),
    [
        ([0.5, 11.8, 3.3, 0.2], 0),  # one epoch's excursion, then the chains catch up
        ([0.5, 11.0, -12.0, 0.1], 1),  # two epochs beyond the limit
        ([-15.0, -30.0, -45.0, -60.0], 1),  # a runaway warns once
        ([9.9, 9.9, 9.9], 0),
        # Epochs cut short between two runaway ones (partial_fit under a time budget)
        # do not break the run.
        ([-41.0, None, -60.0], 1),
        ([-41.0, None, None, 2.0], 0),
    ],
)
def test_sampler_monitor_warns_on_a_lasting_gap_only(gaps, expected):
    assert len(_gap_warnings(gaps)) == expected


def test_sampler_monitor_patience_one_warns_on_any_excursion():
    assert len(_gap_warnings([0.5, 11.8, 3.3], patience=1)) == 1


def _mixture_net(seed, n_clusters, callbacks, max_epochs=3):
    encoder = MLPEncoder(N_FEATURES, (32,), 2 * 2)
    initialize_layers(encoder, torch.Generator().manual_seed(seed))
    bias = GaussianMixtureBias(2, n_clusters)
    bias.reset_parameters(torch.Generator().manual_seed(seed + 1))
    module = ConjugateEnergyModel(encoder, bias, (N_FEATURES,))
    return _net(seed, module=module, max_epochs=max_epochs, callbacks=callbacks)


class _FixedSeeds:
    """Seeds 0.1, 0.2, ... that say which call chose them; records the codes it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, codes, n_seeds):
        self.calls.append(codes)
        return 0.1 * np.arange(1, 2 * n_seeds + 1).reshape(n_seeds, 2)


class _EpochEndRecorder(Callback):
    """The means and the data's codes at the end of every epoch, after the seeding."""

    def __init__(self, X):
        self.X = X
        self.means, self.codes = [], []

    def on_epoch_end(self, net, **kwargs):
        module = net.module_
        self.means.append(module.bias.means.detach().clone())
        with torch.no_grad():
            codes = module.bias_method("statistic_means")(torch.as_tensor(self.X))
        self.codes.append(codes.double().numpy())


def test_mixture_means_seeding_places_the_means_on_the_first_epochs_codes_once():
    X = _blobs(21)
    choose, recorder = _FixedSeeds(), _EpochEndRecorder(X)
    net = _mixture_net(21, 3, [("seeding", MixtureMeansSeeding(choose)), ("rec", recorder)])

    net.fit(X, None)
    net.partial_fit(X, None)  # a later training call does not seed again

    assert len(choose.calls) == 1
    np.testing.assert_allclose(choose.calls[0], recorder.codes[0], rtol=1e-6)
    assert choose.calls[0].dtype == np.float64 and choose.calls[0].shape == (len(X), 2)
    expected = torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    torch.testing.assert_close(recorder.means[0], expected)
    assert not torch.allclose(recorder.means[-1], expected)  # and training moves them on
    assert dict(net.callbacks_)["seeding"].training_data_ is None  # pickles without the data


class _FarSeeds(_FixedSeeds):
    """Three codes of the data, spread 100 times further from their average."""

    def __call__(self, codes, n_seeds):
        self.calls.append(codes)
        chosen = codes[[0, len(codes) // 2, -1]]
        return chosen.mean(axis=0) + 100.0 * (chosen - chosen.mean(axis=0))


def test_mixture_means_seeding_pulls_certain_components_halfway_to_uncertain():
    X = _blobs(24)
    choose = _FarSeeds()
    # One epoch: the model after fit is the model just after the seeding.
    net = _mixture_net(24, 3, [("seeding", MixtureMeansSeeding(choose))], max_epochs=1)

    net.fit(X, None)

    seeds = torch.as_tensor(choose.calls[0][[0, len(X) // 2, -1]])
    far = seeds.mean(dim=0) + 100.0 * (seeds - seeds.mean(dim=0))
    bias = net.module_.bias
    with torch.no_grad():
        statistics = net.module_.sufficient_statistics(torch.as_tensor(X))
        certainty = bias.responsibilities(statistics).max(dim=-1).values.mean()
    # Halfway in log-probability between uniform (1/3) and certain (1), on the rows it
    # measured (all 21).
    assert certainty.item() == pytest.approx(3**-0.5, abs=1e-3)
    # The means moved towards their average along the seeding's directions.
    moved = bias.means.detach().double() - far.mean(dim=0)
    placed = far - far.mean(dim=0)
    factor = (moved * placed).sum() / placed.square().sum()
    assert 0 < factor < 1
    torch.testing.assert_close(moved, factor * placed, rtol=1e-4, atol=1e-4)


def test_mixture_means_seeding_with_fewer_rows_than_clusters_seeds_as_many_as_rows():
    X = _blobs(22, n_samples=2)
    choose, before, after = _FixedSeeds(), _EpochEndRecorder(X), _EpochEndRecorder(X)
    callbacks = [("before", before), ("seeding", MixtureMeansSeeding(choose)), ("after", after)]
    net = _mixture_net(22, 3, callbacks, max_epochs=1)

    net.fit(X, None)

    torch.testing.assert_close(after.means[0][:2], torch.tensor([[0.1, 0.2], [0.3, 0.4]]))
    torch.testing.assert_close(after.means[0][2], before.means[0][2], rtol=0, atol=0)


def test_sampler_monitor_passes_over_epochs_that_do_not_sample():
    # A mixture's clustering stage records its consistency loss, not the sampler's values.
    monitor = SamplerMonitor()
    monitor.on_train_begin(None)
    stub = _HistoryStub([-41.0, -60.0])
    stub.history.append({"epoch": 3, "consistency": 0.2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.on_epoch_end(stub)
    assert not caught


def test_mixture_means_seeding_after_a_chosen_epoch():
    X = _blobs(23)
    choose, recorder = _FixedSeeds(), _EpochEndRecorder(X)
    seeding = MixtureMeansSeeding(choose, after_epoch=2)
    net = _mixture_net(23, 3, [("seeding", seeding), ("rec", recorder)])

    net.fit(X, None)

    assert len(choose.calls) == 1
    np.testing.assert_allclose(choose.calls[0], recorder.codes[1], rtol=1e-6)
    expected = torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    assert not torch.allclose(recorder.means[0], expected)
    torch.testing.assert_close(recorder.means[1], expected)


def _verbose_net(**overrides):
    net = _net(seed=0, **overrides)
    net.verbose = 1  # read by the default callbacks at initialize
    return net.initialize()


def _bar_totals(net, X, **partial_fit_params):
    """The total and count of each bar the net's RunProgressBar opens in one call."""
    bar = dict(net.callbacks_)["progress_bar"]
    totals = []
    close = RunProgressBar._close

    def _recording_close(self):
        if getattr(self, "pbar_", None) is not None:
            totals.append((self.pbar_.total, self.pbar_.n))
        close(self)

    bar._close = _recording_close.__get__(bar)
    net.partial_fit(X, **partial_fit_params)
    return totals


def test_run_progress_bar_counts_every_batch_of_every_epoch_in_one_bar():
    # 100 rows in batches of 32: 4 batches per epoch, 2 epochs in one bar.
    net = _verbose_net(max_epochs=2)
    assert _bar_totals(net, _blobs(0, n_samples=100)) == [(8, 8)]
    # A call's own epochs, not max_epochs: a one-epoch partial_fit gets a bar of 4.
    assert _bar_totals(net, _blobs(0, n_samples=100), epochs=1) == [(4, 4)]


def test_run_progress_bar_pickles_without_its_bar():
    bar = RunProgressBar()
    net = _verbose_net(max_epochs=1, callbacks=[("run_bar", bar)])
    bar = dict(net.callbacks_)["run_bar"]
    bar.on_train_begin(net)
    bar.on_epoch_begin(net, dataset_train=net.get_dataset(_blobs(0, n_samples=64)))
    assert bar.pbar_.total == 2
    assert "pbar_" not in pickle.loads(pickle.dumps(bar)).__dict__
    bar.on_train_end(net)


def test_verbose_epoch_table_has_no_colour_codes_off_a_terminal(capsys):
    _verbose_net(max_epochs=2).partial_fit(_blobs(0, n_samples=100))
    captured = capsys.readouterr()
    assert "train_loss" in captured.out and "energy_gap" in captured.out
    assert "\x1b[" not in captured.out
    assert "8/8 [" in captured.err


def test_epoch_table_colours_the_best_values_on_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    row = {"epoch": 1, "train_loss": 0.5, "train_loss_best": True}
    table = EpochTable().initialize().table(row)
    assert "\x1b[" in table
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in EpochTable().initialize().table(row)


def _trained_net_and_rollback():
    """A PCD net after two healthy epochs on the blobs, and its rollback callback."""
    net = _net(0, max_epochs=2)
    net.fit(_blobs(0))
    rollback = dict(net.callbacks_)["sampler_rollback"]
    assert rollback.snapshot_["epoch"] == 2, "the tiny fit kept its gap within the limit"
    return net, rollback


def _runaway_epoch(net, gap):
    """Record an epoch whose every batch had ``gap``, as the scoring callbacks leave one."""
    net.history.new_epoch()
    net.history.record("epoch", len(net.history))
    for _ in range(3):
        net.history.new_batch()
        net.history.record_batch("energy_gap", gap)
    net.history.record("energy_gap", gap)
    net.history.record("chain_displacement", 0.1)


def _wander_off(net):
    """What a runaway does to the state the rollback keeps: weights and chains move."""
    with torch.no_grad():
        for parameter in net.module_.parameters():
            parameter.add_(1.0)
    net.replay_buffer_.samples.add_(0.5)


def test_sampler_rollback_restores_the_last_healthy_epoch_at_half_the_learning_rate():
    net, rollback = _trained_net_and_rollback()
    weights = {name: value.clone() for name, value in net.module_.state_dict().items()}
    chains = net.replay_buffer_.samples.clone()
    optimizer_steps = [state["step"].clone() for state in net.optimizer_.state.values()]
    lr = net.lr
    _wander_off(net)
    _runaway_epoch(net, -50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rollback.on_epoch_end(net)  # one epoch beyond the limit is an excursion
    assert "sampler_rollback" not in net.history[-1]
    _runaway_epoch(net, -60.0)
    with pytest.warns(SamplerWarning, match="went back to the end of epoch 2"):
        rollback.on_epoch_end(net)
    for name, value in net.module_.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0)
    torch.testing.assert_close(net.replay_buffer_.samples, chains, rtol=0, atol=0)
    steps = [state["step"] for state in net.optimizer_.state.values()]
    assert [int(step) for step in steps] == [int(step) for step in optimizer_steps]
    assert net.lr == lr / 2
    assert all(group["lr"] == lr / 2 for group in net.optimizer_.param_groups)
    assert net.history[-1, "sampler_rollback"] == 2
    # The monitor passes over the undone epoch: the rollback has said what happened.
    monitor = SamplerMonitor()
    monitor.on_train_begin(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor.on_epoch_end(net)


def test_sampler_rollback_stops_after_max_rollbacks_and_leaves_the_warning_to_the_monitor():
    net, rollback = _trained_net_and_rollback()
    rollback.max_rollbacks = 1
    monitor = SamplerMonitor()
    monitor.on_train_begin(net)
    caught_messages = []
    for gap in (-50.0, -60.0, -70.0, -80.0):
        _wander_off(net)
        _runaway_epoch(net, gap)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rollback.on_epoch_end(net)
            monitor.on_epoch_end(net)
        caught_messages += [str(w.message) for w in caught if w.category is SamplerWarning]
    assert rollback.rollbacks_ == 1
    assert sum("went back" in message for message in caught_messages) == 1
    # The gaps after the rollback (-70, -80) are a runaway of their own.
    assert sum("no longer follow" in message for message in caught_messages) == 1
    assert net.lr == _TINY_LR / 2


def test_sampler_rollback_keeps_no_copy_in_a_pickle():
    _, rollback = _trained_net_and_rollback()
    restored = pickle.loads(pickle.dumps(rollback))
    assert restored.snapshot_ is None and restored.rollbacks_ == 0
    assert rollback.snapshot_ is not None
