"""CEBMOutlierDetector: the conjugate EBM's density (or its gradient) as an outlier score."""

from numbers import Real

import numpy as np
from sklearn.base import OutlierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._core.biases import SphericalGaussianBias
from ._docstrings import fill_docstring
from ._energy_base import BaseCEBM

__all__ = ["CEBMOutlierDetector"]

# The scores are unnormalised (log Z is unknown), so unlike IsolationForest's -0.5 no
# threshold is meaningful on its own; 'auto' takes a low percentile of the training scores,
# a 1% false-alarm rate on data like the training data.
_AUTO_CONTAMINATION = 0.01


@fill_docstring(
    """
    contamination : 'auto' or float
        Expected share of outliers in the training data, in ``(0, 0.5]``: ``offset_`` is
        that percentile of the training scores. The scores are known only up to the
        constant ``log Z``, so no fixed threshold means anything; 'auto' takes the 1st
        percentile of the training scores, a 1% false-alarm rate on data like them.
    outlier_score : {'log_density', 'gradient_norm'}
        What :meth:`score_samples` returns: the unnormalised log-density ``-E(x)``, or
        ``-||d log p(x) / dx||`` in the units of X (see :meth:`score_gradient_norm`).
        (Not named ``score``, which would hide the :meth:`score` method.)
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
        As for :class:`CEBMEncoder`.
    chain_init : {'uniform', 'gaussian'}
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021). Uniform by default: the chains then visit noise-like images, and
        on Fashion-MNIST the log-density told constant images from data better (AUROC 0.92
        against 0.89 after 20 minutes) than with the Gaussian start :class:`CEBMEncoder`
        uses.
    warm_start : bool
        Continue training the previous fit's network on ``fit``; ``offset_`` is recomputed
        on the new X, with the current ``contamination`` and ``outlier_score``. Changed
        training settings take effect and changed structural parameters are refused, as
        for :class:`CEBMEncoder`.
    """
)
class CEBMOutlierDetector(OutlierMixin, BaseCEBM):
    """Unsupervised outlier detection with a conjugate energy-based model.

    Trains a CEBM with a spherical Gaussian bias (as :class:`CEBMEncoder`) on the data and
    scores samples by the model's density: ``log p(x)`` up to the constant ``log Z``, or
    the negative norm ``-||d log p(x) / dx||`` of its input gradient (Grathwohl et al.,
    2019), the two scores of the paper's Table 1. Higher scores are more normal. Samples
    whose score falls below ``offset_`` are outliers, as in scikit-learn's
    :class:`~sklearn.ensemble.IsolationForest` and novelty-mode
    :class:`~sklearn.neighbors.LocalOutlierFactor`.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    offset_ : float
        Threshold on :meth:`score_samples`: ``decision_function = score_samples - offset_``.
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is the torch model.
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss``, ``energy_data``, ``energy_model``, ``energy_gap`` and
        ``chain_displacement``; with ``objective='dsm'``, ``train_loss`` and
        ``energy_data`` only.
    {common_attributes}

    See Also
    --------
    CEBMEncoder : The same model as a transformer.
    sklearn.ensemble.IsolationForest : Outlier detection by random partitions.
    sklearn.neighbors.LocalOutlierFactor : Outlier detection by local density.
    sklearn_cebm.evaluation.ood_auroc : AUROC of either score against outlier data.

    Notes
    -----
    The score is chosen at fit: changing ``outlier_score`` afterwards leaves ``offset_`` on the
    other score's scale, so refit.

    The model is defined on the box the training data span (``input_min_``,
    ``input_max_``), where its sampler is confined; it has no density outside, where its
    network only extrapolates. An input outside the box scores at least one below every
    training score (for ``'gradient_norm'``, its norm at least one above every training
    norm), the farther out the lower (see :meth:`sklearn_cebm.CEBMEncoder.score_samples`),
    so it falls below ``offset_`` and :meth:`predict` flags it. Without ``image_shape`` each
    feature has its own range, and any deviation on a feature constant in training is out
    of range.

    References
    ----------
    H. Wu, B. Esmaeili, M. Wick, J.-B. Tristan, J.-W. van de Meent. Conjugate Energy-Based
    Models. ICML 2021.

    W. Grathwohl, K.-C. Wang, J.-H. Jacobsen, D. Duvenaud, M. Norouzi, K. Swersky. Your
    Classifier is Secretly an Energy Based Model and You Should Treat It Like One. ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cebm import CEBMOutlierDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> detector = CEBMOutlierDetector(
    ...     contamination=0.1, n_components=2, hidden_layer_sizes=(16,), max_iter=2,
    ...     sgld_steps=5, random_state=0,
    ... )
    >>> labels = detector.fit_predict(X)
    >>> sorted(set(labels.tolist()))
    [-1, 1]
    >>> int(np.sum(labels == -1))
    20
    """

    _parameter_constraints: dict = {
        **BaseCEBM._parameter_constraints,
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "outlier_score": [StrOptions({"log_density", "gradient_norm"})],
    }

    def __init__(
        self,
        *,
        contamination="auto",
        outlier_score="log_density",
        n_components=128,
        encoder="auto",
        image_shape=None,
        hidden_layer_sizes=(256, 256),
        max_iter=30,
        batch_size=128,
        learning_rate=1e-3,
        objective="pcd",
        dsm_noise=0.1,
        sgld_steps=5,
        sgld_step_size=1.0,
        sgld_noise=7.5e-3,
        buffer_size=5000,
        buffer_reinit_fraction=0.05,
        chain_init="uniform",
        energy_l2=5e-3,
        data_noise=0.03,
        device="auto",
        callbacks=None,
        verbose=0,
        random_state=None,
        warm_start=False,
    ):
        self.contamination = contamination
        self.outlier_score = outlier_score
        self.n_components = n_components
        self.encoder = encoder
        self.image_shape = image_shape
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.objective = objective
        self.dsm_noise = dsm_noise
        self.sgld_steps = sgld_steps
        self.sgld_step_size = sgld_step_size
        self.sgld_noise = sgld_noise
        self.buffer_size = buffer_size
        self.buffer_reinit_fraction = buffer_reinit_fraction
        self.chain_init = chain_init
        self.energy_l2 = energy_l2
        self.data_noise = data_noise
        self.device = device
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    # Both are read after training, when offset_ is set anew.
    _continuable_params = BaseCEBM._continuable_params | {"contamination", "outlier_score"}

    def _build_bias(self):
        return SphericalGaussianBias(self.n_components)

    def _on_fit_end(self, X):
        contamination = _AUTO_CONTAMINATION if self.contamination == "auto" else self.contamination
        self.offset_ = float(np.percentile(self.score_samples(X), 100.0 * contamination))

    def score_samples(self, X):
        """Normality score of each sample: higher is more typical of the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score; higher is more normal.

        Returns
        -------
        ndarray of shape (n_samples,)
            With ``outlier_score='log_density'`` the unnormalised log-density ``-E(x)``;
            with ``outlier_score='gradient_norm'`` the negative :meth:`score_gradient_norm`. In X's
            float dtype. Inputs outside the training data's box score below every training
            input (see Notes).
        """
        if self.outlier_score == "gradient_norm":
            return -self.score_gradient_norm(X)
        return super().score_samples(X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to compare with the threshold ``offset_``.

        Returns
        -------
        ndarray of shape (n_samples,)
            Negative for outliers.
        """
        check_is_fitted(self, "offset_")
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Whether each sample is an inlier (+1) or an outlier (-1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to label as inliers or outliers.

        Returns
        -------
        ndarray of shape (n_samples,)
            -1 where :meth:`decision_function` is negative, +1 elsewhere.
        """
        return np.where(self.decision_function(X) < 0, -1, 1)
