"""Typicality under a fitted model: an outlier score that likelihood alone is not.

A density model can give outliers a *higher* likelihood than its data (Nalisnick et al.,
2019): a CEBM trained on Fashion-MNIST ranks MNIST digits above Fashion-MNIST (the paper's
Table 1). Density of States Estimation (Morningstar et al., 2021) asks instead whether an
input's statistics under the model -- its log-density, the norm of that density's
gradient, its posterior's location and spread -- look like those of held-out data from
the training distribution: a second, low-dimensional density model fitted on those
statistics scores each input, so that an unusually *high* likelihood is as atypical as an
unusually low one. For images, the input's own complexity (Serra et al., 2020) is one
more statistic, so that an input simpler than the data (a constant or a smooth image,
which a likelihood model favours) is atypical as much as one more complex (noise). A
second test asks whether the input's code lies where the training data's codes lie (a
density of the aggregate posterior). :class:`TypicalityTest` combines
the two; :class:`StatisticsTypicality` offers them for every estimator.
"""

import inspect
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from .._estimators.seeds import int32_seeds

__all__ = [
    "StatisticsTypicality",
    "TypicalityTest",
    "fit_code_density",
    "fit_statistics_density",
    "input_complexity",
    "model_statistics",
    "statistics_matrix",
]

# Most Gaussian-mixture components tried on the statistics: a few modes (one per group of
# classes the model scores alike) of a 3- or 4-dimensional vector.
MAX_COMPONENTS = 5
_ROWS_PER_COMPONENT = 50
# The codes' density: a full covariance per component of codes of up to 128 dimensions
# needs about a thousand rows; 10 components on 20,000 rows fit in about a minute.
_CODE_COMPONENTS = 10
_ROWS_PER_CODE_COMPONENT = 1000
_MAX_CODE_ROWS = 20000
# A norm of zero (an all-zero code) has no logarithm; a floor far below any norm a network
# computes in float32 keeps it finite and last.
_NORM_FLOOR = 1e-30
# input_complexity works through this many images at a time, to bound its temporaries.
_COMPLEXITY_BLOCK_ROWS = 1024


def _returns_posterior_std(estimator):
    """Whether ``estimator.transform`` takes ``return_std`` (a Gaussian posterior)."""
    return "return_std" in inspect.signature(estimator.transform).parameters


def _log_norms(vectors):
    """``log ||v||`` of each row, floored so that a zero vector stays finite and last."""
    norms = np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=1)
    return np.log(np.maximum(norms, _NORM_FLOOR))


def check_image_shape_has_neighbours(image_shape, name="input_complexity"):
    """Refuse an ``image_shape`` whose pixels have no rows and columns to be neighbours in.

    :func:`input_complexity` differences pixels along an image's height and width, so it
    takes ``(height, width)`` or ``(channels, height, width)``; a flat ``(n_features,)``
    or a 4-D shape says nothing of which axes those are.
    """
    if len(image_shape) not in (2, 3):
        raise ValueError(
            f"{name} needs image_shape=(height, width) or (channels, height, width), whose "
            f"neighbouring pixels it compares; got image_shape={tuple(image_shape)}."
        )


def input_complexity(X, image_shape):
    """``log`` of each image's mean absolute difference between neighbouring pixels.

    A measure of the input's own complexity, as the compressed length is for Serra et al.
    (2020): a likelihood model ranks inputs by it as much as by their kind, so that
    simple inputs (constant or smooth images) get a high likelihood whatever they show.
    As a statistic of the typicality test it makes an input too simple as atypical as one
    too complex (noise). It is the mean over the channels and both directions of
    ``|x[h + 1, w] - x[h, w]|`` and ``|x[h, w + 1] - x[h, w]|``, in X's units (the
    typicality densities standardise their columns, so the units do not matter); a
    constant image has none, and its logarithm is floored so that it stays finite and
    last.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Images, each flattened from ``image_shape``.
    image_shape : tuple of int
        ``(channels, height, width)``, or ``(height, width)`` for one channel; its product
        is ``n_features``.

    Returns
    -------
    ndarray of shape (n_samples,)
        float64.

    Raises
    ------
    ValueError
        If ``image_shape`` has neither two nor three dimensions, or does not hold
        ``n_features`` pixels.
    """
    X = np.asarray(X)
    check_image_shape_has_neighbours(image_shape)
    channels, height, width = (1, *image_shape) if len(image_shape) == 2 else image_shape
    if channels * height * width != X.shape[1]:
        raise ValueError(
            f"image_shape={tuple(image_shape)} holds {channels * height * width} pixels; "
            f"X has {X.shape[1]} features."
        )
    complexity = np.empty(len(X))
    for start in range(0, len(X), _COMPLEXITY_BLOCK_ROWS):
        images = X[start : start + _COMPLEXITY_BLOCK_ROWS].reshape(-1, channels, height, width)
        images = images.astype(np.float64, copy=False)
        vertical = np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3)) if height > 1 else 0.0
        horizontal = np.abs(np.diff(images, axis=3)).mean(axis=(1, 2, 3)) if width > 1 else 0.0
        complexity[start : start + len(images)] = vertical + horizontal
    return np.log(np.maximum(complexity, _NORM_FLOOR))


def statistics_matrix(log_density, gradient_norm, codes, posterior_std=None, complexity=None):
    """Columns of the statistics that :class:`StatisticsTypicality` scores.

    Parameters
    ----------
    log_density : ndarray of shape (n_samples,)
        ``-E(x)`` (the ELBO for a VAE).
    gradient_norm : ndarray of shape (n_samples,)
        ``||d log p(x) / dx||``.
    codes : ndarray of shape (n_samples, n_components)
        The posterior mean of z (``transform``'s features where there is no posterior).
    posterior_std : ndarray of shape (n_samples, n_components), default=None
        The posterior standard deviations, where there is a Gaussian posterior.
    complexity : ndarray of shape (n_samples,), default=None
        :func:`input_complexity` of the inputs, for images.

    Returns
    -------
    ndarray of shape (n_samples, 3 to 5)
        ``log p``, ``log ||grad||``, ``log ||codes||``, then the mean ``log std`` with
        ``posterior_std`` and the complexity with ``complexity``; float64.
    """
    columns = [
        np.asarray(log_density, dtype=np.float64),
        np.log(np.maximum(np.asarray(gradient_norm, dtype=np.float64), _NORM_FLOOR)),
        _log_norms(codes),
    ]
    if posterior_std is not None:
        log_std = np.log(np.maximum(np.asarray(posterior_std, dtype=np.float64), _NORM_FLOOR))
        columns.append(log_std.mean(axis=1))
    if complexity is not None:
        columns.append(np.asarray(complexity, dtype=np.float64))
    return np.column_stack(columns)


def model_statistics(estimator, X):
    """The statistics of each row of ``X`` under a fitted model, one column each.

    Columns, in order (:func:`statistics_matrix`):

    1. ``score_samples(X)``: the unnormalised log-density ``-E(x)`` (the ELBO for a VAE);
    2. ``log ||d log p(x) / dx||``, from ``score_gradient_norm`` (Grathwohl et al., 2019);
    3. with a Gaussian posterior (``transform(X, return_std=True)``): the log norm of its
       mean, and 4. the mean log standard deviation, how certain the encoder is; without
       one (:class:`~sklearn_cebm.IGEBMEncoder`): the log norm of ``transform(X)``;
    5. for an estimator of images (its ``image_shape`` set): :func:`input_complexity`.

    Parameters
    ----------
    estimator : fitted estimator
        With ``score_samples`` (the log-density), ``score_gradient_norm`` and
        ``transform``: every estimator of this package but the outlier detector.
    X : array-like of shape (n_samples, n_features)
        Samples, in the units of the estimator's training data.

    Returns
    -------
    statistics : ndarray of shape (n_samples, 3 to 5)
        float64.
    codes : ndarray of shape (n_samples, n_components)
        The posterior means (the features), float64: what :func:`fit_code_density` models.
    """
    if _returns_posterior_std(estimator):
        codes, posterior_std = estimator.transform(X, return_std=True)
    else:
        codes, posterior_std = estimator.transform(X), None
    image_shape = getattr(estimator, "image_shape", None)
    complexity = None if image_shape is None else input_complexity(X, image_shape)
    statistics = statistics_matrix(
        estimator.score_samples(X),
        estimator.score_gradient_norm(X),
        codes,
        posterior_std,
        complexity,
    )
    return statistics, np.asarray(codes, dtype=np.float64)


def fit_statistics_density(statistics, max_components, random_state):
    """The density that scores statistics: a full-covariance GaussianMixture behind a
    StandardScaler, of the number of components, 1 to ``max_components``, of lowest BIC.

    Parameters
    ----------
    statistics : ndarray of shape (n_samples, n_statistics)
        :func:`model_statistics` of in-distribution data the model did not train on.
    max_components : int
        Most components tried; no more than one per 50 rows.
    random_state : int
        Seeds every mixture's initialisation.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted; its ``score_samples`` is the log-density of the standardised statistics.
    """
    best, best_bic = None, np.inf
    # BIC is a large-sample rule: on a few dozen rows it still picks mixtures whose
    # covariances fit single rows, so each component needs _ROWS_PER_COMPONENT rows.
    most = min(max_components, max(1, len(statistics) // _ROWS_PER_COMPONENT))
    for n_components in range(1, most + 1):
        mixture = GaussianMixture(
            n_components=n_components, covariance_type="full", random_state=random_state
        )
        density = make_pipeline(StandardScaler(), mixture).fit(statistics)
        bic = mixture.bic(density[0].transform(statistics))
        if bic < best_bic:
            best, best_bic = density, bic
    return best


def fit_code_density(codes, random_state):
    """An estimate of the aggregate posterior: the density of the codes of training data.

    A full-covariance GaussianMixture of up to 10 components (one per 1,000 rows, at least
    one) behind a StandardScaler, fitted on at most 20,000 of the rows (drawn by
    ``random_state``). An input whose posterior mean the data's codes seldom reach is
    atypical even where its likelihood is high: on Fashion-MNIST this density alone told
    the digits and flipped images from the data best of all statistics (AUROC 0.99 and
    0.91 against 0.90 and 0.66 for the log-density; benchmarks/results/ood.md).

    Parameters
    ----------
    codes : ndarray of shape (n_samples, n_components)
        Posterior means (or features) of the model's training data.
    random_state : int
        Seeds the subsample and the mixture.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted; its ``score_samples`` is the log-density of the standardised codes.
    """
    rng = np.random.default_rng(random_state)
    if len(codes) > _MAX_CODE_ROWS:
        codes = codes[np.sort(rng.choice(len(codes), _MAX_CODE_ROWS, replace=False))]
    n_components = min(_CODE_COMPONENTS, max(1, len(codes) // _ROWS_PER_CODE_COMPONENT))
    mixture = GaussianMixture(
        n_components=n_components, covariance_type="full", random_state=random_state
    )
    return make_pipeline(StandardScaler(), mixture).fit(codes)


def _robust_standardisation(scores):
    """Median and interquartile range of reference scores (the range 1 if it is 0)."""
    low, median, high = np.percentile(scores, [25, 50, 75])
    return float(median), float(high - low) if high > low else 1.0


class TypicalityTest:
    """Two tests of typicality, calibrated on held-out data, and the less typical verdict.

    The statistics' density (:func:`fit_statistics_density`) and the codes' density
    (:func:`fit_code_density`) are each standardised by their median and interquartile
    range on held-out in-distribution data, and the score is the lower of the two: an
    input is as atypical as its most atypical test (a union of two tests, as a minimum of
    p-values). Each catches what the other misses: the statistics, inputs of an unusual
    likelihood or certainty (noise, constant images); the codes, inputs the encoder maps
    where no data go (other datasets of a likely kind, images upside down).

    Parameters
    ----------
    statistics, codes : ndarray
        :func:`model_statistics` of held-out in-distribution rows.
    training_codes : ndarray of shape (n_training, n_components)
        Codes of the rows the model trained on, for the codes' density.
    random_state : int
        Seeds both densities.
    """

    def __init__(self, statistics, codes, training_codes, random_state):
        self.statistics_density = fit_statistics_density(statistics, MAX_COMPONENTS, random_state)
        self.code_density = fit_code_density(training_codes, random_state)
        self.statistics_location, self.statistics_scale = _robust_standardisation(
            self.statistics_density.score_samples(statistics)
        )
        self.code_location, self.code_scale = _robust_standardisation(
            self.code_density.score_samples(codes)
        )

    def score(self, statistics, codes):
        """The typicality of each row: the lower of its two standardised log-densities."""
        fitted_on = self.statistics_density[0].n_features_in_
        if statistics.shape[1] != fitted_on:
            # A test fitted before images had the complexity statistic (sklearn-cebm 0.x
            # files) cannot score the statistics computed now.
            raise ValueError(
                f"This typicality test was fitted on {fitted_on} statistics per input and "
                f"got {statistics.shape[1]}: it was fitted by another version of "
                "sklearn-cebm. Fit the estimator again."
            )
        by_statistics = self.statistics_density.score_samples(statistics)
        by_codes = self.code_density.score_samples(codes)
        return np.minimum(
            (by_statistics - self.statistics_location) / self.statistics_scale,
            (by_codes - self.code_location) / self.code_scale,
        )


class StatisticsTypicality(BaseEstimator):
    """How typical each input is under a fitted model, by its statistics and its code.

    The default outlier score of :class:`~sklearn_cebm.CEBMOutlierDetector`
    (``outlier_score='typicality'``), for any estimator of this package. Two tests,
    calibrated on held-out in-distribution data (see :class:`TypicalityTest`):

    - Density of States Estimation (Morningstar et al., 2021): a Gaussian mixture (BIC-chosen,
      up to ``max_components``) on the vector of :func:`model_statistics` -- log-density,
      log gradient norm, log norm of the posterior mean, mean log posterior standard
      deviation and, for images, the input's complexity (:func:`input_complexity`) -- of
      held-out data. An input of unusually *high* likelihood is then as
      atypical as one of unusually low likelihood (Nalisnick et al., 2019).
    - The aggregate posterior: a Gaussian mixture on the posterior means of the training
      data (:func:`fit_code_density`).

    :meth:`score_samples` is the lower of the two log-densities, each in units of its
    interquartile range on the held-out data from its median there: higher is more typical.
    The estimator itself is not refitted.

    Parameters
    ----------
    estimator : fitted estimator
        Any estimator of this package but :class:`~sklearn_cebm.CEBMOutlierDetector`
        (which has this score built in), fitted on the in-distribution data.
    max_components : int, default=5
        Most mixture components tried on the statistics.
    random_state : int, RandomState instance or None, default=None
        Seeds the mixtures and the split of X when ``X_train`` is not given.

    Attributes
    ----------
    test_ : TypicalityTest
        The two fitted densities and their standardisations.
    n_features_in_ : int
        Features of X (the estimator's).

    See Also
    --------
    sklearn_cebm.CEBMOutlierDetector : Uses this score with ``outlier_score='typicality'``.
    sklearn_cebm.evaluation.ood_auroc : AUROC of any ``score_samples``, this one included.

    Notes
    -----
    Fit it on data the estimator was *not* trained on: the statistics of training data
    are those of a model that has seen them (a higher log-density, a smaller gradient), and
    test data from the same distribution would look atypical beside them.

    References
    ----------
    W. R. Morningstar, C. Ham, A. G. Gallagher, B. Lakshminarayanan, A. A. Alemi,
    J. V. Dillon. Density of States Estimation for Out-of-Distribution Detection.
    AISTATS 2021.

    E. Nalisnick, A. Matsukawa, Y. W. Teh, D. Gorur, B. Lakshminarayanan. Do Deep
    Generative Models Know What They Don't Know? ICLR 2019.

    J. Serra, D. Alvarez, V. Gomez, O. Slizovskaia, J. F. Nunez, J. Luque. Input
    Complexity and Out-of-distribution Detection with Likelihood-based Generative
    Models. ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cebm import CEBMEncoder, StatisticsTypicality
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> encoder = CEBMEncoder(n_components=2, hidden_layer_sizes=(16,), max_iter=2,
    ...                       sgld_steps=5, random_state=0).fit(X[:200])
    >>> typicality = StatisticsTypicality(encoder, random_state=0)
    >>> typicality.fit(X[200:], X_train=X[:200]).score_samples(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["score_samples", "score_gradient_norm", "transform"])],
        "max_components": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator, *, max_components=MAX_COMPONENTS, random_state=None):
        self.estimator = estimator
        self.max_components = max_components
        self.random_state = random_state

    def fit(self, X, y=None, X_train=None):
        """Fit the two densities and calibrate them on ``X``, held-out data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In-distribution samples the estimator was not trained on.
        y : Ignored
            Not used, present for API consistency by convention.
        X_train : array-like of shape (n_train, n_features), default=None
            The estimator's training data, for the density of its codes; None fits that
            density on a seeded half of X and calibrates both on the other half.

        Returns
        -------
        self : object
            The fitted score.
        """
        self._validate_params()
        check_is_fitted(self.estimator)
        seed = int32_seeds(self.random_state)
        statistics, codes = model_statistics(self.estimator, X)
        if X_train is None:
            order = np.random.default_rng(seed).permutation(len(codes))
            training_codes, held_out = codes[order[: len(order) // 2]], order[len(order) // 2 :]
            statistics, codes = statistics[held_out], codes[held_out]
        else:
            # transform: the posterior mean (the features), without the statistics' cost.
            training_codes = np.asarray(self.estimator.transform(X_train), dtype=np.float64)
        self.test_ = TypicalityTest(statistics, codes, training_codes, seed)
        self.n_features_in_ = self.estimator.n_features_in_
        return self

    def score_samples(self, X):
        """Typicality of each row: the lower of its two standardised log-densities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.

        Returns
        -------
        ndarray of shape (n_samples,)
            Higher is more typical; float64.
        """
        check_is_fitted(self, "test_")
        return self.test_.score(*model_statistics(self.estimator, X))
