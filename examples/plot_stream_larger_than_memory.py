"""
======================================
Training on data larger than memory
======================================

``partial_fit`` trains one epoch over the rows it is given; called over the chunks of a
data set, pass after pass, it trains one model as ``fit`` does over all of it: the
network, the optimiser, the replay buffer's chains and the random generators carry over
from call to call. Only one chunk need be in memory at a time. Here the chunks come from
a ``numpy.memmap`` (an array on disk, read as it is sliced) and from a dask array over it;
then a dask array's codes and scores are computed block by block with ``map_blocks``.

The digits stand in for a file larger than memory. The dask cells need the ``scaling``
extra: ``pip install "sklearn-cebm[scaling]"``.
"""

# %%
# An array on disk: the digits' pixels as float32 in a file, opened as a ``numpy.memmap``.
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from sklearn_cebm import CEBMEncoder

X, y = load_digits(return_X_y=True)
folder = tempfile.TemporaryDirectory()
path = Path(folder.name) / "digits.float32"
np.asarray(X, dtype=np.float32).tofile(path)
on_disk = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)

# %%
# The stream: 10 passes over chunks of 300 rows. The first call builds the model and fixes
# the box ``[-1, 1]`` is mapped from; a first chunk need not span the range of the whole
# stream, so ``input_range`` gives it: the pixels' range, 0 to 16, here known in advance
# (for data whose range is not, one pass of ``min`` and ``max`` over the chunks finds it).
settings = dict(image_shape=(1, 8, 8), encoder="mlp", hidden_layer_sizes=(64,), random_state=0)
streamed = CEBMEncoder(**settings)
for _ in range(10):
    for start in range(0, len(on_disk), 300):
        streamed.partial_fit(on_disk[start : start + 300], input_range=(0, 16))
print(f"{streamed.n_iter_} calls; box {streamed.input_min_[0]} to {streamed.input_max_[0]}")

# %%
# Against ``fit`` on the whole array in memory, for as many epochs: the codes of both serve
# a logistic regression about as well. (The stream's chunks come in a fixed order and are
# shuffled within, not across: a small difference, and the only one.)
fitted = CEBMEncoder(**settings, max_iter=10).fit(X)
for name, encoder in (("fit in memory", fitted), ("memmap stream", streamed)):
    codes = encoder.transform(X)
    accuracy = cross_val_score(LogisticRegression(max_iter=1000), codes, y, cv=3).mean()
    print(f"{name}: accuracy of a logistic regression on the codes {accuracy:.3f}")

# %%
# A dask array: the same stream over its blocks, each computed (read) when its turn comes.
import dask.array as da  # noqa: E402 (the cell that first needs it)

lazy = da.from_array(on_disk, chunks=(300, -1))
from_dask = CEBMEncoder(**settings)
for _ in range(10):
    for block in lazy.blocks:
        from_dask.partial_fit(block, input_range=(0, 16))
print(
    "same model as the memmap stream:", np.allclose(from_dask.transform(X), streamed.transform(X))
)

# %%
# Inference over a dask array: ``map_blocks`` applies ``transform`` and ``score_samples``
# block by block, each block with all of its row's features (``chunks=(rows, -1)``). Every
# row's output depends on that row only, so the blocks give what one call would. Dask's
# default scheduler runs the blocks on this machine's threads; with a ``distributed``
# ``Client`` active (a ``LocalCluster``, or a cluster's scheduler) the same lines run there.
codes = lazy.map_blocks(
    streamed.transform, dtype=np.float32, chunks=(lazy.chunks[0], (streamed.n_components,))
)
scores = lazy.map_blocks(streamed.score_samples, dtype=np.float32, drop_axis=1)
codes, scores = da.compute(codes, scores)
print("codes", codes.shape, "scores", scores.shape)
print("as one call:", np.allclose(codes, streamed.transform(on_disk), rtol=1e-5, atol=1e-6))
folder.cleanup()
