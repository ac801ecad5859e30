"""
============================================
Novelty detection on a table of measurements
============================================

Someone with an outlier problem on a table of numbers tries scikit-learn's
:class:`~sklearn.ensemble.IsolationForest`, novelty-mode
:class:`~sklearn.neighbors.LocalOutlierFactor` and a
:class:`~sklearn.mixture.GaussianMixture` first. This example puts a
:class:`~sklearn_cebm.CEBMOutlierDetector` at its defaults beside them on the breast cancer
data: 30 measurements of cell nuclei, trained on half of the benign tumours and tested on
the other half against the malignant ones, with the AUROC of ``score_samples``.
``benchmarks/tabular_outliers.py`` does the same over 23 tasks.
"""

# %%
# Train on benign tumours only
# ----------------------------
# The classic detectors get standardised features, as a user would give them; the CEBM
# scales each feature into its own box itself. At its defaults it sizes itself to the
# table: 178 rows make two batches, so ``max_iter='auto'`` trains 500 epochs (1,000
# updates); ``objective='auto'`` trains by denoising score matching, with noise whose
# std ``dsm_noise='auto'`` chooses as a kernel density estimate's bandwidth (half of
# Scott's rule for 178 rows of 30 features, printed below); ``hidden_layer_sizes='auto'``
# gives two layers of 256 units.
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import IsolationForest
from sklearn.metrics import RocCurveDisplay
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cebm import CEBMOutlierDetector
from sklearn_cebm.evaluation import ood_auroc

torch.set_num_threads(1)
X, y = load_breast_cancer(return_X_y=True)
benign, malignant = X[y == 1], X[y == 0]
X_train, X_test = train_test_split(benign, test_size=0.5, random_state=0)

detectors = {
    "IsolationForest": make_pipeline(StandardScaler(), IsolationForest(random_state=0)),
    "LOF (novelty)": make_pipeline(StandardScaler(), LocalOutlierFactor(novelty=True)),
    "GaussianMixture(2)": make_pipeline(
        StandardScaler(), GaussianMixture(2, covariance_type="full", random_state=0)
    ),
    "CEBMOutlierDetector": CEBMOutlierDetector(random_state=0),
}
for name, detector in detectors.items():
    started = time.perf_counter()
    detector.fit(X_train)
    seconds = time.perf_counter() - started
    auroc = ood_auroc(detector, X_test, malignant)
    print(f"{name:>20}: AUROC {auroc:.3f}, fit {seconds:.2f} s")

cebm = detectors["CEBMOutlierDetector"]
print(f"CEBMOutlierDetector trained {cebm.n_iter_} epochs, noise std {cebm.dsm_noise_:.3f}")

# %%
# ROC curves
# ----------
# Benign test tumours are the positive class, ranked by each detector's
# ``score_samples`` (higher is more normal).
fig, ax = plt.subplots(figsize=(5, 4.5))
y_true = np.r_[np.ones(len(X_test)), np.zeros(len(malignant))]
for name, detector in detectors.items():
    scores = np.r_[detector.score_samples(X_test), detector.score_samples(malignant)]
    RocCurveDisplay.from_predictions(y_true, scores, name=name, ax=ax)
ax.set_title("Benign (normal) against malignant")
plt.tight_layout()
plt.show()

# %%
# What the numbers say
# --------------------
# On this table the four detectors rank the tumours about equally well (AUROC 0.94 to 0.96
# over three seeds of the split in ``benchmarks/results/tabular_outliers.md``);
# IsolationForest fits in a twentieth of a second, the CEBM in about three. Over the
# benchmark's 23 tasks the CEBM's mean AUROC is level with that of the best classic
# detector chosen per task after the fact (0.954), and never more than 0.04 below it (on
# the smallest tables, 24 to 35 rows of wine). A density model earns its cost where the
# data have shapes the classic detectors miss, such as the hole of a ring, or many
# correlated features, such as the digits' pixels, where it led or tied on every class.
