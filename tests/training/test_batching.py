"""The training loader that indexes the data once per batch: torch DataLoader's batches."""

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader

from sklearn_cebm._training.batching import batch_indexing_loader


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize("with_y", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_and_their_order_are_dataloaders(with_y, shuffle):
    X = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
    y = np.arange(23 * 2, dtype=np.int64).reshape(23, 2) if with_y else None
    dataset = Dataset(X, y)
    ours = batch_indexing_loader(
        dataset, 5, shuffle=shuffle, generator=torch.Generator().manual_seed(3)
    )
    torchs = DataLoader(dataset, 5, shuffle=shuffle, generator=torch.Generator().manual_seed(3))
    # Two passes: the second permutation must follow from the same generator state too.
    for _ in range(2):
        expected = _batches(torchs)
        got = _batches(ours)
        assert [len(x) for x, _ in got] == [5, 5, 5, 5, 3]
        for (x, y_batch), (x_torch, y_torch) in zip(got, expected, strict=True):
            torch.testing.assert_close(x, x_torch, rtol=0, atol=0)
            if with_y:
                torch.testing.assert_close(y_batch, y_torch, rtol=0, atol=0)


def test_shuffle_leaves_torchs_global_generator_alone():
    dataset = Dataset(np.zeros((10, 2), dtype=np.float32))
    state = torch.get_rng_state()
    list(batch_indexing_loader(dataset, 4, shuffle=True, generator=torch.Generator()))
    assert torch.equal(torch.get_rng_state(), state)
