"""CEBMOutlierDetector: the conjugate EBM's density (or its gradient) as an outlier score."""

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import OutlierMixin
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from .._core.biases import SphericalGaussianBias
from .._estimators.docstrings import fill_docstring
from .._estimators.energy_base import BaseCEBM
from .._estimators.out_of_range import distance_outside_range, score_outside_range
from .._estimators.seeds import int32_seeds
from .typicality import (
    TypicalityTest,
    check_image_shape_has_neighbours,
    input_complexity,
    statistics_matrix,
)

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
# hidden_layer_sizes='auto': two layers of 256 units whatever the number of features. The
# former rule (twice the features, within [64, 256]) gave a 2-D table 64 units, too few for
# the shape of two moons (AUROC 0.819 against 0.872 with 256, seeds 0-2), and 256 stays
# the most for a wide table, as before.
_AUTO_WIDTH = 256
# dsm_noise='auto' on a table: half of Scott's rule (see auto_dsm_noise). Scott's bandwidth
# is right for one Gaussian and too wide for data of several modes or thin shapes (two
# moons); on the tabular benchmark half of it scored better than the whole (0.881 against
# 0.868 on its six weakest tasks, seeds 0 and 1).
_AUTO_NOISE_FRACTION_OF_SCOTT = 0.5
# dsm_noise='auto' for images, and for a table without spread: the former constant.
_FORMER_DSM_NOISE = 0.1
# outlier_score='typicality': the fewest held-out rows, the least a Gaussian mixture fits.
_MIN_REFERENCE_ROWS = 2


def split_reference_rows(n_samples, validation_fraction, random_state):
    """Sorted row indices ``(training, reference)``: a seeded ``validation_fraction`` of
    the rows, at least two (a mixture's least), is the reference, and at least one row is
    left to train on.

    Raises
    ------
    ValueError
        If there are fewer than three rows.
    """
    if n_samples < _MIN_REFERENCE_ROWS + 1:
        raise ValueError(
            "outlier_score='typicality' holds out part of X to fit the score on and needs "
            f"at least {_MIN_REFERENCE_ROWS + 1} samples; got {n_samples} sample"
            f"{'' if n_samples == 1 else 's'}."
        )
    n_reference = round(validation_fraction * n_samples)
    n_reference = min(max(_MIN_REFERENCE_ROWS, n_reference), n_samples - 1)
    order = check_random_state(random_state).permutation(n_samples)
    return np.sort(order[n_reference:]), np.sort(order[:n_reference])


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


def auto_dsm_noise(X_unit, image_shape):
    """Std of score matching's noise of ``dsm_noise='auto'``, in the scaled units.

    Score matching at noise std ``sigma`` learns the data's density smoothed by a Gaussian
    of that std, as a kernel density estimate with bandwidth ``sigma`` would (with the
    network's own smoothness on top). Its width is therefore chosen as a bandwidth is,
    by Scott's rule ``n ** (-1 / (d + 4))`` times the data's spread: wide where few
    rows in many dimensions say little about the density's shape, narrower as rows
    accrue. Half of Scott's bandwidth is taken, which is fitted to a single Gaussian and
    blurs data of several modes. The spread is the root mean variance of the scaled
    features, so that a feature whose range one extreme row widened (a heavy tail) gets
    less noise than the box's width would give it.

    Parameters
    ----------
    X_unit : ndarray of shape (n_samples, n_features)
        The training data in the scaled units (each feature's range on [-1, 1]).
    image_shape : tuple of int or None
        Images keep the former constant 0.1 (images train by PCD by default).

    Returns
    -------
    float
        ``0.5 * n_samples ** (-1 / (n_features + 4)) * sqrt(mean(var(X_unit, axis=0)))``
        for a table; 0.1 for images, or for a table without spread (one row, or
        constant features only).
    """
    if image_shape is not None:
        return _FORMER_DSM_NOISE
    n_samples, n_features = X_unit.shape
    spread = float(np.sqrt(np.mean(np.var(X_unit, axis=0, dtype=np.float64))))
    if spread == 0.0:
        return _FORMER_DSM_NOISE
    scott = n_samples ** (-1.0 / (n_features + 4))
    return _AUTO_NOISE_FRACTION_OF_SCOTT * scott * spread


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
    dsm_noise : 'auto' or float
        Std of the noise of denoising score matching, in the scaled units (each
        feature's range on [-1, 1]); only used with ``objective='dsm'``. The model
        learns the data's density smoothed by this noise, as a kernel density estimate
        with this bandwidth. 'auto' chooses it as a bandwidth on the first training
        call's table: half of Scott's rule, ``0.5 * n_samples ** (-1 / (n_features +
        4))`` times the square root of the scaled features' mean variance (see
        ``dsm_noise_``): wider on a few rows in many dimensions (about 0.2 on 90 rows of
        the 64 digits pixels), narrower on many rows in few (0.09 on 500 rows of two
        moons) or where extreme rows widened the ranges (0.06 on six lognormal
        features); 0.1 for images, as before.
    max_iter : 'auto' or int
        Training epochs. 'auto' trains ``max(30, ceil(1000 / ceil(n_samples /
        batch_size)))`` epochs: 30 where an epoch has 34 batches or more (more than 4,224
        rows at the default ``batch_size``), more on smaller data, so that training
        makes at least 1,000 updates: 1,000 epochs on 100 rows, 250 on 500.
    hidden_layer_sizes : 'auto' or tuple of int
        Hidden widths of the MLP encoder. 'auto' gives two layers of 256 units, for a
        table of any width and for images with ``encoder='mlp'``. A narrower encoder
        for a table of few features, as 'auto' gave before (twice the features, at
        least 64), missed the shapes of low-dimensional data: 64 units ranked two 2-D
        moons against uniform noise at an AUROC of 0.82, 256 units at 0.87.
    outlier_score : {'auto', 'typicality', 'log_density', 'gradient_norm'}
        What :meth:`score_samples` returns. 'typicality': the lower of two standardised
        log-densities, that of the sample's statistics under the model (log-density, log
        gradient norm, posterior mean norm and mean log standard deviation) in a Gaussian
        mixture fitted on those of the ``validation_fraction`` of X held out from
        training (Density of States Estimation, Morningstar et al., 2021), and that of
        its posterior mean in a Gaussian mixture of the training rows' (see
        :class:`~sklearn_cebm.StatisticsTypicality`); for images, the input's
        complexity is one more statistic, which needs ``image_shape=(height, width)`` or
        ``(channels, height, width)``. 'log_density': the unnormalised
        log-density ``-E(x)``. 'gradient_norm': ``-||d log p(x) / dx||`` in the units of
        X (see :meth:`score_gradient_norm`). 'auto' takes 'typicality' for images (with
        ``image_shape``), where the log-density ranks simpler images above the data
        (Fashion-MNIST against digits), and 'log_density' for a table, whose few rows
        are better spent on training. (Not named ``score``, which would hide the
        :meth:`score` method.)
    validation_fraction : float
        Share of X, in ``(0, 1)``, held out from training to fit the 'typicality' score
        on; drawn by ``random_state``, at least two rows. Unused by the other scores,
        which train on all of X.
    encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
        As for :class:`CEBMEncoder`.
    chain_init : {'uniform', 'gaussian'}
        Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
        paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
        Yang & Ji 2021), as :class:`CEBMEncoder` has by default. Trained 20 minutes on all
        60,000 Fashion-MNIST images (one thread, ``benchmarks/results/ood.md``), the
        uniform start's energy gap ran away twice (training went back from epoch 7 and
        10 to epoch 4) and the Gaussian start's never did, and the Gaussian start's
        typicality ranked digits and flipped images better (AUROC 0.997 and 0.885 against
        0.980 and 0.857) with constant images and noise as well told (1.000 and 0.999
        against 1.000 and 1.000). Only images train by PCD; a table trains by score
        matching, which draws no chains.
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
    scores samples by what the model says of them: for images by default their
    typicality (``outlier_score='typicality'``: the statistics of the sample and its code
    against those of data held out from training, :class:`StatisticsTypicality`), or by
    the model's density, ``log p(x)`` up to the constant ``log Z``, or the negative norm
    ``-||d log p(x) / dx||`` of its input gradient (Grathwohl et al., 2019), the two
    scores of the paper's Table 1. Likelihood ranks simpler images above the data it was
    trained on (a Fashion-MNIST model prefers digits; Nalisnick et al., 2019), where the
    typicality does not. Higher scores are more normal. Samples
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
    dsm_noise_ : float
        What ``dsm_noise='auto'`` resolved to on the first training call's data (used
        by training only with ``dsm_noise='auto'`` and ``objective='dsm'``).
    typicality_test_ : TypicalityTest
        Only with the 'typicality' score: the densities of the statistics (fitted on the
        held-out rows) and of the codes (on the training rows), standardised on the
        held-out rows.
    lowest_reference_typicality_ : float
        Only with the 'typicality' score: the lowest typicality of the held-out rows,
        below which out-of-range inputs are put.
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
    StatisticsTypicality : The 'typicality' score for any estimator of this package.
    sklearn_cebm.evaluation.ood_auroc : AUROC of a score against outlier data.

    Notes
    -----
    The score is chosen at fit: changing ``outlier_score`` afterwards leaves ``offset_`` on the
    other score's scale, so refit.

    With the 'typicality' score the network trains on ``1 - validation_fraction`` of X
    (the rest, drawn by ``random_state``, is held out to fit the score on), ``offset_``
    is the ``contamination`` percentile of the scores of all of X, and an input outside
    the training box scores at least one below every held-out score. Each ``fit`` or
    ``partial_fit`` call holds out its own share of its X and refits the score. On tables
    the 'auto' score is the log-density: their few rows are better spent on training (on
    ``benchmarks/tabular_outliers.py``, seed 0, the typicality's mean AUROC was 0.928
    against 0.956 at the current defaults, 0.909 against 0.942 at the previous ones).

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

    W. R. Morningstar, C. Ham, A. G. Gallagher, B. Lakshminarayanan, A. A. Alemi,
    J. V. Dillon. Density of States Estimation for Out-of-Distribution Detection.
    AISTATS 2021.

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
        "dsm_noise": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "outlier_score": [StrOptions({"auto", "typicality", "log_density", "gradient_norm"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        *,
        contamination="auto",
        outlier_score="auto",
        validation_fraction=0.1,
        n_components=128,
        encoder="auto",
        image_shape=None,
        hidden_layer_sizes="auto",
        max_iter="auto",
        batch_size=128,
        learning_rate=1e-3,
        objective="auto",
        dsm_noise="auto",
        sgld_steps=5,
        sgld_step_size=1.0,
        sgld_noise=7.5e-3,
        buffer_size=5000,
        buffer_reinit_fraction=0.05,
        chain_init="gaussian",
        energy_l2=5e-3,
        data_noise=0.03,
        device="auto",
        precision="auto",
        ema_decay=None,
        callbacks=None,
        verbose=0,
        random_state=None,
        warm_start=False,
    ):
        self.contamination = contamination
        self.outlier_score = outlier_score
        self.validation_fraction = validation_fraction
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
        self.ema_decay = ema_decay
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state
        self.warm_start = warm_start

    # Read after training (or, the fraction, before each call), when offset_ is set anew.
    _continuable_params = BaseCEBM._continuable_params | {
        "contamination",
        "outlier_score",
        "validation_fraction",
    }
    # The rows held out of the training call in progress.
    _transient_attributes = BaseCEBM._transient_attributes | {"_reference_rows"}

    def _outlier_score(self):
        """``outlier_score``, with 'auto' resolved by the kind of data."""
        if self.outlier_score == "auto":
            return "typicality" if self.image_shape is not None else "log_density"
        return self.outlier_score

    def _build_bias(self):
        return SphericalGaussianBias(self.n_components)

    def _training_objective(self):
        if self.objective == "auto":
            return "pcd" if self.image_shape is not None else "dsm"
        return self.objective

    def _build_model(self, X_unit, generator):
        # The only build step that sees the data: 'auto' is resolved on the first
        # training call's rows, which set the scaling too, and later calls keep it.
        self.dsm_noise_ = auto_dsm_noise(X_unit, self.image_shape)
        return super()._build_model(X_unit, generator)

    def _dsm_noise_std(self):
        return self.dsm_noise_ if self.dsm_noise == "auto" else self.dsm_noise

    def _encoder_hidden_layer_sizes(self, n_features):
        if isinstance(self.hidden_layer_sizes, str):
            return (_AUTO_WIDTH, _AUTO_WIDTH)
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

    def _fit(self, X, reset, epochs=None):
        """Hold out the reference rows of the 'typicality' score, then train on the rest."""
        reference = None
        if self._outlier_score() == "typicality":
            if self.image_shape is not None:
                # Before training, not after it, where the score first needs the shape.
                check_image_shape_has_neighbours(
                    self.image_shape, name="CEBMOutlierDetector's outlier_score='typicality'"
                )
            # Checked whole first, so that bad input fails as anywhere else, and without
            # setting n_features_in_ outside the fit's rollback.
            X_checked = check_array(
                X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X,
                dtype=[np.float64, np.float32],
                estimator=self,
            )
            training, reference = split_reference_rows(
                len(X_checked), self.validation_fraction, self.random_state
            )
            # A DataFrame stays one, so that its feature names reach every call.
            rows = _safe_indexing if hasattr(X, "iloc") else lambda _, index: X_checked[index]
            X, reference = rows(X, training), rows(X, reference)
        self._reference_rows = reference
        try:
            return super()._fit(X, reset, epochs)
        finally:
            del self._reference_rows

    def _on_fit_end(self, X):
        contamination = _AUTO_CONTAMINATION if self.contamination == "auto" else self.contamination
        if self._outlier_score() == "typicality":
            reference = self._reference_rows
            seed = int32_seeds(self.random_state)
            statistics, codes = self._model_statistics(reference)
            training_codes, _ = self._inference(self._module().posterior_mean_std, X)
            self.typicality_test_ = TypicalityTest(statistics, codes, training_codes, seed)
            typicality = self.typicality_test_.score(statistics, codes)
            self.lowest_reference_typicality_ = float(np.min(typicality))
            # The threshold is on all of the caller's X, as contamination is its share.
            scores = np.concatenate([self.score_samples(X), self.score_samples(reference)])
        else:
            scores = self.score_samples(X)
        self.offset_ = float(np.percentile(scores, 100.0 * contamination))

    def _model_statistics(self, X):
        """:func:`~sklearn_cebm._outliers.typicality.statistics_matrix` of X and its codes."""
        codes, posterior_std = self._inference(self._module().posterior_mean_std, X)
        log_density = super().score_samples(X)
        complexity = None
        if self.image_shape is not None:
            complexity = input_complexity(self._validate_input(X, reset=False), self.image_shape)
        statistics = statistics_matrix(
            log_density, self.score_gradient_norm(X), codes, posterior_std, complexity
        )
        return statistics, codes.astype(np.float64)

    def _typicality(self, X):
        """The 'typicality' score; outside the training box below every reference score."""
        check_is_fitted(self, "typicality_test_")
        scores = self.typicality_test_.score(*self._model_statistics(X))
        X_checked = self._validate_input(X, reset=False)
        low, high = self._training_range()
        distance = distance_outside_range(X_checked, low, high, self.input_scale_)
        scores = score_outside_range(scores, distance, self.lowest_reference_typicality_)
        return scores.astype(X_checked.dtype)

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
        score = self._outlier_score()
        if score == "typicality":
            return self._typicality(X)
        if score == "gradient_norm":
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
