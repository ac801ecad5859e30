"""CEBMOutlierDetector: the conjugate EBM's density (or its gradient) as an outlier score."""

import math
from numbers import Integral, Real

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

# max_iter='auto': the former default of 30 epochs, or more where a small table would get
# few updates from them; on the tabular benchmark (benchmarks/tabular_outliers.py) 1,000
# updates scored as well as 1,500 and better than 250 (a 2-D ring was then learnt by some
# seeds only).
_AUTO_MIN_EPOCHS = 30
_AUTO_MIN_UPDATES = 1000
# hidden_layer_sizes='auto' on a table: two layers of twice the features, within these.
_AUTO_MIN_WIDTH, _AUTO_MAX_WIDTH = 64, 256


def auto_max_iter(n_samples, batch_size):
    """Epochs of ``max_iter='auto'``: at least 30, and enough for 1,000 updates.

    Parameters
    ----------
    n_samples : int
        Training rows.
    batch_size : int
        Rows per update.

    Returns
    -------
    int
        ``max(30, ceil(1000 / ceil(n_samples / batch_size)))``.
    """
    updates_per_epoch = math.ceil(n_samples / batch_size)
    return max(_AUTO_MIN_EPOCHS, math.ceil(_AUTO_MIN_UPDATES / updates_per_epoch))


def auto_hidden_layer_sizes(n_features, image_shape):
    """Hidden widths of ``hidden_layer_sizes='auto'``.

    Two layers of ``2 * n_features`` clipped to [64, 256] for a table; (256, 256), the
    former default, for images (used only with ``encoder='mlp'``).
    """
    if image_shape is not None:
        return (_AUTO_MAX_WIDTH, _AUTO_MAX_WIDTH)
    width = min(_AUTO_MAX_WIDTH, max(_AUTO_MIN_WIDTH, 2 * n_features))
    return (width, width)


@fill_docstring(
    """
    contamination : 'auto' or float
        Expected share of outliers in the training data, in ``(0, 0.5]``: ``offset_`` is
        that percentile of the training scores. The scores are known only up to the
        constant ``log Z``, so no fixed threshold means anything; 'auto' takes the 1st
        percentile of the training scores, a 1% false-alarm rate on data like them.
    objective : {'auto', 'pcd', 'dsm'}
        The training objective, as for :class:`CEBMEncoder`. 'auto' takes 'dsm' for a
        table (no ``image_shape``) and the paper's 'pcd' for images. On the tabular
        benchmark (``benchmarks/results/tabular_outliers.md``) score matching's densities
        ranked outliers far better than the contrastive ones (mean AUROC 0.94 against
        0.87 over 23 tasks; a 2-D ring whose hole PCD filled: 0.98 against 0.02).
    max_iter : 'auto' or int
        Training epochs. 'auto' trains ``max(30, ceil(1000 / ceil(n_samples /
        batch_size)))`` epochs: 30 where an epoch has 34 batches or more (more than 4,224
        rows at the default ``batch_size``), more on smaller data, so that training
        makes at least 1,000 updates: 1,000 epochs on 100 rows, 250 on 500.
    hidden_layer_sizes : 'auto' or tuple of int
        Hidden widths of the MLP encoder. 'auto' sizes it to the table: two layers of
        ``2 * n_features`` units, at least 64 and at most 256; (256, 256) for images
        with ``encoder='mlp'``.
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
        "objective": [StrOptions({"auto", "pcd", "dsm"})],
        "max_iter": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [StrOptions({"auto"}), tuple, list],
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
        hidden_layer_sizes="auto",
        max_iter="auto",
        batch_size=128,
        learning_rate=1e-3,
        objective="auto",
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
        precision="float32",
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
        self.precision = precision
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    # Both are read after training, when offset_ is set anew.
    _continuable_params = BaseCEBM._continuable_params | {"contamination", "outlier_score"}

    def _build_bias(self):
        return SphericalGaussianBias(self.n_components)

    def _training_objective(self):
        if self.objective == "auto":
            return "pcd" if self.image_shape is not None else "dsm"
        return self.objective

    def _encoder_hidden_layer_sizes(self, n_features):
        if isinstance(self.hidden_layer_sizes, str):
            return auto_hidden_layer_sizes(n_features, self.image_shape)
        return self.hidden_layer_sizes

    def _full_fit_epochs(self, n_samples):
        if self.max_iter == "auto":
            return auto_max_iter(n_samples, self.batch_size)
        return self.max_iter

    def _skorch_params(self, device, loader_seed):
        params = super()._skorch_params(device, loader_seed)
        if self.max_iter == "auto":
            # Unread: every training call passes its own epochs (_full_fit_epochs), but
            # skorch keeps a number here.
            params["max_epochs"] = _AUTO_MIN_EPOCHS
        return params

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
