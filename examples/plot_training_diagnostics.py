"""
================================
Reading the training diagnostics
================================

An EBM's log-likelihood cannot be computed during training, because ``log Z`` is unknown.
What can be watched is the energy of the data and of the model's samples: Nijkamp et al.
(2019a), whom the paper follows (Sec. 7.1), found their difference a good diagnostic of
stability. Every CEBM estimator records them per epoch in ``history_``.
"""

# %%
# Train and read ``history_``
# ---------------------------
# ``history_`` is skorch's :class:`~skorch.history.History`; index it by epoch and key.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from sklearn_cebm import CEBMEncoder, TrainingDivergedError

X, _ = load_digits(return_X_y=True)
X = X[::2]  # half of the digits: 899 images, 8 updates per epoch
encoder = CEBMEncoder(image_shape=(1, 8, 8), encoder="mlp", max_iter=20, random_state=0)
encoder.fit(X)

history = encoder.history_
keys = ("energy_data", "energy_model", "energy_gap", "train_loss")
epochs = np.array(history[:, "epoch"])
values = {key: np.array(history[:, key]) for key in keys}
print(f"{'epoch':>5}" + "".join(f"{key:>14}" for key in keys))
for row in range(0, len(epochs), 4):
    print(f"{epochs[row]:>5}" + "".join(f"{values[key][row]:>14.3f}" for key in keys))
print(f"seconds per epoch, median: {np.median(history[:, 'dur']):.2f}")

# %%
# Plot them
# ---------
# ``energy_data`` is the mean energy of the (slightly noised) training batches,
# ``energy_model`` that of the SGLD samples drawn from the replay buffer in the same
# update, and ``energy_gap`` their difference. The loss is the gap plus the penalty
# ``energy_l2 * (mean E(data)**2 + mean E(model)**2)``.
fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True)
top.plot(epochs, values["energy_data"], label="E(data)")
top.plot(epochs, values["energy_model"], label="E(model samples)")
top.set_ylabel("mean energy")
top.legend()
bottom.plot(epochs, values["energy_gap"], label="gap E(data) - E(model)")
bottom.plot(epochs, values["train_loss"], label="training loss")
bottom.axhline(0, color="gray", lw=0.8)
bottom.set_xlabel("epoch")
bottom.legend()
fig.tight_layout()

# %%
# When training diverges
# ----------------------
# Far too large a learning rate without the energy penalty lets the energies run away.
# Training then stops with :class:`~sklearn_cebm.TrainingDivergedError`, whose message says
# what to lower, and the estimator is left as it was (here: unfitted).
reckless = CEBMEncoder(
    image_shape=(1, 8, 8),
    encoder="mlp",
    max_iter=5,
    learning_rate=0.5,
    energy_l2=0.0,
    random_state=0,
)
try:
    reckless.fit(X)
except TrainingDivergedError as error:
    print(error)
print(f"fitted after the error: {hasattr(reckless, 'net_')}")

# %%
# What this shows
# ---------------
# Both energies start near 51, the untrained network's value (each of the 128 latent
# dimensions adds about 0.4), so at first the training loss is mostly the energy
# penalty. They then fall together as the penalty pulls them towards zero, within about
# five epochs. In epoch 2 the gap reaches about 9, while the data's energy falls faster
# than the five-step chains can follow; from epoch 4 on it stays below 1, and the
# energies hover near zero. Nothing explodes and the gap does not run away: a stable run.
#
# A gap that keeps growing, or energies whose size grows epoch after epoch, come before
# a divergence; lower ``learning_rate`` or ``sgld_step_size`` or raise ``energy_l2``
# then. The gap stays positive throughout: the samples sit at lower energy than the
# data, because SGLD with small noise settles into the energy's minima.
