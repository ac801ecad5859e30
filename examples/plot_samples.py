"""
=================
A grid of samples
=================

:meth:`~sklearn_cebm.CEBMEncoder.sample` draws from the model by Langevin dynamics
(SGLD, the paper's Eq. 3): chains start from uniform noise and follow the energy's
gradient down for ``n_steps`` steps, with a little noise at every step. The paper's Fig. 2
shows such samples after 500 steps. Sampling is not what a CEBM is for, but the samples
show what the energy has learned.
"""

# %%
# Train, then sample
# ------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from sklearn_cebm import CEBMEncoder

X, _ = load_digits(return_X_y=True)
X = X[::2]  # half of the digits, for speed
# The paper's sampler settings (60 SGLD steps per update, learning rate 1e-4, chains from
# uniform noise) rather than the defaults (5 steps, 1e-3, chains from a Gaussian fitted to
# the data), which buy codes with speed: trained with 5-step chains, this model's samples
# collapse onto two or three saturated shapes.
encoder = CEBMEncoder(
    image_shape=(1, 8, 8),
    encoder="mlp",
    max_iter=20,
    sgld_steps=60,
    learning_rate=1e-4,
    chain_init="uniform",
    random_state=0,
)
encoder.fit(X)

samples = encoder.sample(36, n_steps=500, random_state=0)
print(f"samples: shape {samples.shape}, pixel range [{samples.min():.1f}, {samples.max():.1f}]")


def show_grid(images, title, ax_grid):
    for image, ax in zip(images, ax_grid.ravel(), strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
        ax.set_axis_off()
    ax_grid[0, 0].figure.suptitle(title)


fig, axes = plt.subplots(6, 6, figsize=(4.5, 4.8))
show_grid(samples, "CEBM samples, 500 SGLD steps", axes)

# %%
# For comparison, training digits:
fig, axes = plt.subplots(6, 6, figsize=(4.5, 4.8))
show_grid(X[:36], "training digits", axes)

# %%
# Chains as they run
# ------------------
# With the same ``random_state`` the chains start from the same noise, so sampling with
# more and more steps follows the same chains further.
steps = (0, 10, 30, 100, 500)
fig, axes = plt.subplots(6, len(steps), figsize=(4.5, 5.6))
for column, n_steps in enumerate(steps):
    chains = encoder.sample(6, n_steps=n_steps, random_state=1)
    for row, image in enumerate(chains):
        axes[row, column].imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
        axes[row, column].set_axis_off()
    axes[0, column].set_title(f"{n_steps} steps", fontsize=9)
fig.tight_layout()

# %%
# How does the model itself rate its samples? ``score_samples`` of the samples, of the
# training digits and of uniform noise:
print(f"mean log p(x) + log Z, training digits: {encoder.score_samples(X).mean():8.2f}")
print(f"mean log p(x) + log Z, samples:         {encoder.score_samples(samples).mean():8.2f}")
print(
    f"mean log p(x) + log Z, uniform noise:   "
    f"{encoder.score_samples(np.random.default_rng(0).uniform(0, 16, X.shape)).mean():8.2f}"
)

# %%
# What this shows
# ---------------
# After 20 epochs on 900 images the samples have the digits' layout and strokes, and some
# pass for 3s, 7s or 0s, but many are hybrids, they are saturated (nearly every pixel at 0
# or 16, where the data have soft greys), and a few shapes recur across the grid. The
# chains leave the noise within 30 to 100 steps and then barely move: with the default
# noise of 7.5e-3 SGLD descends to a minimum of the energy and stays there, which is why
# the samples score *higher* than the training digits. Samples here are a diagnostic of
# what the energy prefers, not draws from a well-mixed model; the paper's Fig. 2 shows
# what a long training on a GPU gives.
