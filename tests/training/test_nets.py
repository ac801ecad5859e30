"""The PCD training layer: a tiny PCDNet learns, records its diagnostics and fails loudly."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_cebm._core.biases import SphericalGaussianBias
from sklearn_cebm._core.encoders import MLPEncoder, initialize_layers
from sklearn_cebm._core.losses import ContrastiveDivergenceLoss
from sklearn_cebm._core.model import ConjugateEnergyModel
from sklearn_cebm._training.nets import DSMNet, TrainingDivergedError
from sklearn_cebm._training.pcd_net import PCDNet

N_FEATURES = 8

# Short chains with a small step keep the model samples near uniform noise, so a few
# epochs on a few hundred rows already separate data from noise; about 0.5 s per fit.
_TINY_SETTINGS = dict(
    lr=2e-2,
    max_epochs=5,
    batch_size=32,
    energy_l2=0.01,
    sgld_steps=10,
    sgld_step_size=0.01,
    sgld_noise=0.01,
    buffer_size=128,
    buffer_reinit_fraction=0.05,
    data_noise=0.01,
)


def _blobs(seed, n_samples=256):
    """Three tight Gaussian blobs inside [-1, 1]**8, the sampler's box."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-0.6, 0.6, size=(3, N_FEATURES))
    points = centers[rng.integers(0, 3, n_samples)]
    points += 0.08 * rng.standard_normal((n_samples, N_FEATURES))
    return np.clip(points, -1.0, 1.0).astype(np.float32)


def _model(seed):
    encoder = MLPEncoder(N_FEATURES, (32,), 2 * 2)
    initialize_layers(encoder, torch.Generator().manual_seed(seed))
    return ConjugateEnergyModel(encoder, SphericalGaussianBias(2), (N_FEATURES,))


def _seeded_net(net_class, seed, **params):
    """A net assembled as ``BaseEnergyEstimator._build_net`` does, generators seeded."""
    net = net_class(
        optimizer=torch.optim.Adam,
        train_split=None,
        iterator_train__shuffle=True,
        iterator_train__generator=torch.Generator().manual_seed(seed + 1),
        verbose=0,
        device="cpu",
        seed=seed + 2,
        **params,
    )
    return net.initialize()


def _net(seed, module=None, **overrides):
    """A PCDNet with the tiny settings, ``overrides`` on top."""
    settings = {**_TINY_SETTINGS, **overrides}
    return _seeded_net(
        PCDNet,
        seed,
        module=_model(seed) if module is None else module,
        criterion=ContrastiveDivergenceLoss,
        criterion__energy_l2=settings.pop("energy_l2"),
        **settings,
    )


def _uniform_noise(n_samples, seed):
    generator = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(n_samples, N_FEATURES, generator=generator) - 1


def test_training_lowers_data_energy_below_noise_energy():
    X = _blobs(0)
    net = _net(0)
    noise = _uniform_noise(2000, 1)
    with torch.no_grad():
        gap_before = (net.module_(noise).mean() - net.module_(torch.as_tensor(X)).mean()).item()

    net.fit(X, None)

    with torch.no_grad():
        energy_data = net.module_(torch.as_tensor(X))
        energy_noise = net.module_(noise)
    gap_after = (energy_noise.mean() - energy_data.mean()).item()
    # Over seeds 0-7 the trained gap is 4.0-5.0 (noise energies spread with std ~1.5-2),
    # the untrained one |gap| < 0.3; a margin of 2 leaves room for platform round-off.
    assert abs(gap_before) < 0.5
    assert gap_after > 2.0
    assert torch.isfinite(energy_data).all() and torch.isfinite(energy_noise).all()


def test_history_records_energy_diagnostics_per_epoch():
    net = _net(2, max_epochs=3)
    net.fit(_blobs(2), None)

    assert len(net.history) == 3
    for epoch in net.history:
        for key in ("train_loss", "energy_data", "energy_model", "energy_gap"):
            assert np.isfinite(epoch[key]), key
        # The epoch values are batch-size-weighted means of the batch values, so the gap
        # identity survives averaging up to float64 round-off.
        assert epoch["energy_gap"] == pytest.approx(
            epoch["energy_data"] - epoch["energy_model"], abs=1e-9
        )
        assert len(epoch["batches"]) == 8  # 256 rows in batches of 32
        for batch in epoch["batches"]:
            assert batch["energy_gap"] == pytest.approx(
                batch["energy_data"] - batch["energy_model"], abs=1e-9
            )


@pytest.mark.parametrize("lr", [1e6, 1e3])
def test_absurd_learning_rate_raises_training_diverged(lr):
    net = _net(3, lr=lr)
    with pytest.raises(TrainingDivergedError, match="Lower learning_rate or sgld_step_size"):
        net.fit(_blobs(3), None)


def test_absurd_sgld_step_size_is_contained_by_the_box():
    # The chains are clamped to [-1, 1] after every step, so a huge SGLD step only drives
    # them to the box's faces: the energies stay finite and training does not diverge.
    net = _net(4, sgld_step_size=1e6, sgld_noise=1e3, max_epochs=2)
    net.fit(_blobs(4), None)

    chains = net.replay_buffer_.samples
    assert chains.min() >= -1.0 and chains.max() <= 1.0
    assert np.isfinite(net.history[:, "energy_model"]).all()


def test_same_seed_gives_identical_weights():
    X = _blobs(5)
    first, second, other = _net(5).fit(X, None), _net(5).fit(X, None), _net(6).fit(X, None)

    first_state, second_state = first.module_.state_dict(), second.module_.state_dict()
    for name, value in first_state.items():
        assert torch.equal(value, second_state[name]), name
    assert torch.equal(first.replay_buffer_.samples, second.replay_buffer_.samples)
    assert not torch.equal(
        first.module_.encoder.layers[1].weight, other.module_.encoder.layers[1].weight
    )


class _RequiresGradRecorder(nn.Module):
    """Wraps a model and records, per forward call, the batch size and whether its weights
    require gradients."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = []

    def forward(self, x):
        flags = {parameter.requires_grad for parameter in self.parameters()}
        self.calls.append((x.shape[0], flags))
        return self.model(x)


def test_weights_are_frozen_during_sgld_and_live_in_the_update():
    recorder = _RequiresGradRecorder(_model(7))
    net = _net(7, module=recorder, max_epochs=1, sgld_steps=4, batch_size=32)
    net.fit(_blobs(7, n_samples=64), None)

    # Per update: 4 SGLD calls on the 32 chains, then a call on the data and one on the
    # samples, 6 calls in all, for each of the 2 updates.
    assert [size for size, _ in recorder.calls] == [32] * 12
    flags = [flags for _, flags in recorder.calls]
    for update in range(2):
        sgld_calls, update_calls = flags[6 * update : 6 * update + 4], flags[6 * update + 4 :][:2]
        assert all(f == {False} for f in sgld_calls)
        assert all(f == {True} for f in update_calls)
    assert all(parameter.requires_grad for parameter in recorder.parameters())


def test_update_gradient_is_the_loss_gradient_alone():
    # The weight gradient left by one training step equals the gradient of the
    # contrastive-divergence loss on the data batch and the returned chains: SGLD's input
    # gradients leave nothing in the weights' .grad.
    net = _net(8, data_noise=0.0, sgld_steps=6, sgld_step_size=0.05, sgld_noise=0.05)
    sampled = []
    advance_chains = net.advance_chains

    def recording_advance_chains(*args):
        chains = advance_chains(*args)
        sampled.append(chains.samples)
        return chains

    net.advance_chains = recording_advance_chains
    x_data = torch.as_tensor(_blobs(8, n_samples=16))
    net.module_.zero_grad()
    net.history.new_epoch()  # the step records its diagnostics in the current batch
    net.history.new_batch()

    net.train_step_single((x_data, None))

    parameters = list(net.module_.parameters())
    energy = net.module_(torch.cat([x_data, sampled[0]]))
    loss = net.criterion_(*energy.split(16))
    expected = torch.autograd.grad(loss, parameters)
    for parameter, wanted in zip(parameters, expected, strict=True):
        torch.testing.assert_close(parameter.grad, wanted, rtol=1e-5, atol=1e-7)


def _dsm_net(seed, noise_std=0.1, **overrides):
    """A DSMNet as ``objective='dsm'`` has it, ``overrides`` on top."""
    settings = {**dict(lr=2e-2, max_epochs=5, batch_size=32), **overrides}
    return _seeded_net(
        DSMNet,
        seed,
        module=_model(seed),
        noise_std=noise_std,
        sgld_step_size=1.0,
        sgld_noise=0.01,
        **settings,
    )


def test_score_matching_lowers_data_energy_below_noise_energy():
    X = _blobs(10)
    net = _dsm_net(10)
    noise = _uniform_noise(2000, 11)

    net.fit(X, None)

    with torch.no_grad():
        energy_data = net.module_(torch.as_tensor(X)).mean().item()
        energy_noise = net.module_(noise).mean().item()
    assert energy_noise - energy_data > 2.0
    losses = net.history[:, "train_loss"]
    assert losses[-1] < losses[0]
    assert set(net.history[-1]) >= {"train_loss", "energy_data"}
    assert "energy_gap" not in net.history[-1]


def test_score_matching_same_seed_gives_identical_weights():
    X = _blobs(12, n_samples=64)
    first, second = _dsm_net(12, max_epochs=2), _dsm_net(12, max_epochs=2)
    first.fit(X, None)
    second.fit(X, None)
    for name, value in first.module_.state_dict().items():
        assert torch.equal(value, second.module_.state_dict()[name]), name


def test_score_matching_divergence_raises():
    net = _dsm_net(13, lr=1e6, max_epochs=3)
    with pytest.raises(TrainingDivergedError):
        net.fit(_blobs(13), None)


def test_pickled_net_keeps_no_model_tensors_outside_skorchs_device_mapping():
    # skorch unpickles the attributes it lists in cuda_dependent_attributes_ onto the
    # loading machine's device. The module the net was built with is module_ itself; were
    # it pickled as a plain attribute, a net trained on CUDA would need CUDA to load.
    net = _net(20, max_epochs=1)
    net.fit(_blobs(20), None)

    state = net.__getstate__()
    restored = pickle.loads(pickle.dumps(net))

    assert "module" not in state and "module_" not in state
    assert restored.module is restored.module_


def test_pcd_step_writes_the_advanced_chains_back_to_the_buffer():
    # Persistence: the chains a step advances are stored where they were drawn from (the
    # last of repeated draws wins), so the next draw of a chain continues it; the others
    # are left alone.
    net = _net(30, buffer_size=64)
    net.advance_chains(8, (N_FEATURES,)).samples  # fills the buffer
    buffer = net.replay_buffer_
    drawn = {}
    draw = buffer.draw

    def recording_draw(n_samples, generator):
        drawn["indices"], drawn["initial"] = draw(n_samples, generator)
        return drawn["indices"], drawn["initial"].clone()

    buffer.draw = recording_draw
    before = buffer.samples.clone()

    samples = net.advance_chains(32, (N_FEATURES,)).samples

    last_draw = {int(index): row for row, index in enumerate(drawn["indices"])}
    for index, row in last_draw.items():
        torch.testing.assert_close(buffer.samples[index], samples[row], rtol=0, atol=0)
    untouched = sorted(set(range(len(before))) - set(last_draw))
    torch.testing.assert_close(buffer.samples[untouched], before[untouched], rtol=0, atol=0)
    assert (samples - drawn["initial"]).abs().max() > 0.01  # the chains moved


class _QuadraticEnergy(nn.Module):
    """``E(x) = ||x - center||**2 / 2``, with the center a parameter for the optimiser."""

    def __init__(self, center):
        super().__init__()
        self.center = nn.Parameter(torch.as_tensor(center, dtype=torch.float32))

    def forward(self, x):
        return 0.5 * (x - self.center).pow(2).sum(dim=1)


def test_pcd_chains_descend_the_energy():
    # The model samples a PCD step contrasts follow the energy's gradient: on a quadratic
    # energy they close most of their distance to its minimum within the step's SGLD run
    # (a factor 0.9**20 = 0.12 without noise), where chains that only diffuse do not.
    center = np.full(N_FEATURES, 0.5, dtype=np.float32)
    settings = dict(sgld_steps=20, sgld_step_size=0.1, sgld_noise=0.01, buffer_size=256)
    net = _net(31, module=_QuadraticEnergy(center), **settings)
    center_tensor = torch.as_tensor(center)

    samples = net.advance_chains(256, (N_FEATURES,)).samples

    # The chains start uniform on the box (chain_init='uniform'): as far from the center
    # on average as fresh uniform draws.
    uniform = 2 * torch.rand(4096, N_FEATURES, generator=torch.Generator().manual_seed(0)) - 1
    start_distance = (uniform - center_tensor).norm(dim=1).mean().item()
    distance = (samples - center_tensor).norm(dim=1).mean().item()
    assert distance < 0.25 * start_distance, (distance, start_distance)
