"""Sample quality without a download: a classifier of the real data labels and embeds the samples.

The paper judges its samples by eye (Fig. 2). The usual numbers, the Inception score and
the Fréchet and kernel Inception distances, need Inception weights fitted to ImageNet; here
a classifier fitted to the model's own training data stands in for Inception, as its
labels and its last hidden layer are what they use.
"""

import warnings
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from sklearn.base import clone
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

_ACTIVATIONS = {
    "identity": lambda a: a,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
}


@dataclass(frozen=True)
class SampleQuality:
    """What :func:`sample_quality` measures, each a float.

    Attributes
    ----------
    coverage : float
        Entropy of the histogram of the labels the classifier gives the samples, over that
        of the uniform histogram, ``log n_classes``: 1 when every class is as frequent, 0
        when all samples get one label.
    mean_confidence : float
        Mean over the samples of the classifier's largest class probability.
    kid : float
        Kernel inception distance: the unbiased estimate of the squared maximum mean
        discrepancy between the features of the samples and of the reference images, with
        the kernel ``(x . y / d + 1) ** 3``, averaged over subsets. 0 in expectation for
        samples drawn like the reference; a small negative value is noise.
    kid_std : float
        Its standard deviation over the subsets.
    """

    coverage: float
    mean_confidence: float
    kid: float
    kid_std: float


def _final_mlp(classifier):
    """The MLPClassifier that ends ``classifier`` and the steps before it, or None."""
    if isinstance(classifier, Pipeline):
        final = classifier.steps[-1][1]
        return (final, classifier[:-1]) if isinstance(final, MLPClassifier) else (None, None)
    return (classifier, None) if isinstance(classifier, MLPClassifier) else (None, None)


def last_hidden_layer(classifier, X):
    """Activations of the last hidden layer of a fitted MLPClassifier, or a pipeline ending in one.

    The forward pass of scikit-learn's MLP, from ``coefs_`` and ``intercepts_`` with its
    ``activation``, stopped before the output layer.
    """
    mlp, preprocessing = _final_mlp(classifier)
    if mlp is None:
        raise TypeError(
            "features=None takes the last hidden layer of an MLPClassifier (or a pipeline "
            f"ending in one); {type(classifier).__name__} is neither: pass features."
        )
    activations = np.asarray(X if preprocessing is None else preprocessing.transform(X))
    activation = _ACTIVATIONS[mlp.activation]
    for weights, bias in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1], strict=True):
        activations = activation(activations @ weights + bias)
    return activations


def _default_classifier(random_state):
    # tanh, not relu: a relu network's logits grow without bound away from the data, so
    # it labels uniform noise with 0.99 confidence; tanh's bounded features also keep
    # KID's cubic kernel of order 1.
    mlp = MLPClassifier(
        hidden_layer_sizes=(100,), activation="tanh", max_iter=500, random_state=random_state
    )
    return make_pipeline(StandardScaler(), mlp)


def sample_quality_classifier(X_train, y_train, *, random_state=None):
    """The classifier :func:`sample_quality` fits when given none, fitted once to reuse.

    ``make_pipeline(StandardScaler(), MLPClassifier(activation='tanh'))`` (100 hidden
    units) fitted to the labelled training data: pass it as ``classifier`` to score the
    samples of several models in one classifier's terms, and fit it once (a minute on
    60,000 images) rather than once per model.

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
        The real training data.
    y_train : array-like of shape (n_train,)
        Its class labels.
    random_state : int, RandomState instance or None, default=None
        Seeds the fit. ``sample_quality(..., classifier=None, random_state=rng)`` draws its
        classifier's seed from ``rng`` first, so that a RandomState given to both in turn
        gives the same scores either way.

    Returns
    -------
    sklearn.pipeline.Pipeline
        The fitted classifier.

    Raises
    ------
    ValueError
        If an array holds NaN or infinity, or the two differ in length.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm.evaluation import sample_quality_classifier
    >>> X, y = load_digits(return_X_y=True)
    >>> classifier = sample_quality_classifier(X, y, random_state=0)
    >>> classifier.classes_.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    X_train = check_array(X_train, dtype=np.float64, input_name="X_train")
    y_train = column_or_1d(y_train)
    check_consistent_length(X_train, y_train)
    rng = check_random_state(random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    return clone(_default_classifier(seed)).fit(X_train, y_train)


def _kernel_inception_distance(sample_features, reference_features, n_subsets, subset_size, rng):
    """KID's mean and std over subsets, by torchmetrics with the features given as they are."""
    try:
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as error:
        raise ImportError(
            "sample_quality needs torchmetrics: pip install 'sklearn-cebm[metrics]'."
        ) from error
    with warnings.catch_warnings():
        # The metric keeps every feature it is given; these are a few thousand rows.
        warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save")
        kid = KernelInceptionDistance(
            feature=torch.nn.Identity(), subsets=n_subsets, subset_size=subset_size
        )
    kid.update(torch.as_tensor(reference_features, dtype=torch.float64), real=True)
    kid.update(torch.as_tensor(sample_features, dtype=torch.float64), real=False)
    # The metric draws its subsets from torch's global generator: fork it, so that the
    # subsets follow random_state and the caller's generator is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
        mean, std = kid.compute()
    return float(mean), float(std)


def _check_inputs(samples, X_train, y_train, X_reference, subset_size, n_subsets):
    X_train = check_array(X_train, dtype=np.float64, input_name="X_train")
    y_train = column_or_1d(y_train)
    check_consistent_length(X_train, y_train)
    samples = check_array(samples, dtype=np.float64, input_name="samples")
    X_reference = (
        X_train
        if X_reference is None
        else check_array(X_reference, dtype=np.float64, input_name="X_reference")
    )
    for name, array in (("samples", samples), ("X_reference", X_reference)):
        if array.shape[1] != X_train.shape[1]:
            raise ValueError(
                f"{name} has {array.shape[1]} features but X_train has {X_train.shape[1]}."
            )
    for name, value in (("subset_size", subset_size), ("n_subsets", n_subsets)):
        if not isinstance(value, Integral) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2; got {value!r}.")
    for name, array in (("samples", samples), ("X_reference", X_reference)):
        if len(array) < subset_size:
            raise ValueError(
                f"{name} has {len(array)} rows, fewer than subset_size={subset_size}; "
                "pass more, or a smaller subset_size."
            )
    return samples, X_train, y_train, X_reference


def sample_quality(
    samples,
    X_train,
    y_train,
    *,
    X_reference=None,
    classifier=None,
    features=None,
    n_subsets=50,
    subset_size=200,
    random_state=None,
):
    """Score generated samples with a classifier of the real data: coverage, confidence, KID.

    A classifier fitted to the labelled training data labels the samples and embeds them in
    its last hidden layer, standing in for the Inception network of the Inception score and
    the kernel inception distance (KID, Bińkowski et al., 2018), whose ImageNet weights
    cannot be had here and know nothing of the data anyway:

    - ``coverage``, the entropy of the histogram of predicted labels over ``log
      n_classes``: low when the samples show few of the classes (mode collapse);
    - ``mean_confidence``, the mean largest class probability: low for samples that look
      like no class (noise, blends);
    - ``kid``, the squared maximum mean discrepancy between the features of the samples and
      of ``X_reference``, with the kernel ``k(a, b) = (a . b / d + 1) ** 3`` on the ``d``
      features, estimated without bias on ``n_subsets`` random subsets of ``subset_size``
      of each, by torchmetrics' ``KernelInceptionDistance``; 0 in expectation for samples
      drawn like the reference, so a few hundred samples suffice.

    Parameters
    ----------
    samples : array-like of shape (n_samples, n_features)
        Generated samples, in the units of ``X_train`` (e.g. ``estimator.sample(500)``).
    X_train : array-like of shape (n_train, n_features)
        The real training data; the classifier is fitted to it when ``classifier`` is None.
    y_train : array-like of shape (n_train,)
        Its class labels.
    X_reference : array-like of shape (n_reference, n_features), default=None
        The real images the samples are compared with by KID; ``None`` for ``X_train``, the
        distribution the generative model was fitted to. Held-out images give a fairer
        reference where there are enough: the classifier's features of its own training
        images are a little tighter than those of new ones.
    classifier : fitted classifier, default=None
        With ``predict_proba`` and ``classes_``; ``None`` fits
        ``make_pipeline(StandardScaler(), MLPClassifier(activation='tanh'))`` (100 hidden
        units) to ``X_train, y_train``. A relu network is confident far from the data, on
        noise too, which defeats ``mean_confidence``.
    features : callable, default=None
        Maps ``X`` to the features of KID, an array of shape ``(n, d)``; ``None`` for the
        last hidden layer of ``classifier``, which must then be an ``MLPClassifier`` or a
        pipeline ending in one.
    n_subsets : int, default=50
        Subsets over which KID is averaged.
    subset_size : int, default=200
        Rows of the samples and of the reference in each subset; both need at least as many.
    random_state : int, RandomState instance or None, default=None
        Seeds the default classifier's fit and the subsets.

    Returns
    -------
    SampleQuality (a frozen dataclass)
        ``coverage``, ``mean_confidence``, ``kid`` and ``kid_std``, as floats.

    Raises
    ------
    ValueError
        If an array holds NaN or infinity, the feature counts differ, or the samples or the
        reference have fewer rows than ``subset_size``.
    ImportError
        If torchmetrics is not installed (the ``metrics`` extra).

    References
    ----------
    M. Bińkowski, D. J. Sutherland, M. Arbel, A. Gretton. Demystifying MMD GANs. ICLR 2018.

    Examples
    --------
    Held-out digits are samples as good as they come; one digit repeated is not:

    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn_cebm.evaluation import sample_quality
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0)
    >>> real = sample_quality(X_test, X_train, y_train, random_state=0)
    >>> round(real.coverage, 2), round(real.mean_confidence, 2), bool(abs(real.kid) < 0.01)
    (1.0, 0.96, True)
    >>> ones = sample_quality(X_test[y_test == 1], X_train, y_train, subset_size=50,
    ...                       random_state=0)
    >>> round(ones.coverage, 2), round(ones.mean_confidence, 2), round(ones.kid, 1)
    (0.05, 0.96, 0.8)
    """
    samples, X_train, y_train, X_reference = _check_inputs(
        samples, X_train, y_train, X_reference, subset_size, n_subsets
    )
    rng = check_random_state(random_state)
    if classifier is None:
        classifier = sample_quality_classifier(X_train, y_train, random_state=rng)
    features = features or (lambda X: last_hidden_layer(classifier, X))
    probabilities = classifier.predict_proba(samples)
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    frequencies = counts[counts > 0] / len(samples)
    coverage = float(-np.sum(frequencies * np.log(frequencies)) / np.log(len(classifier.classes_)))
    kid, kid_std = _kernel_inception_distance(
        features(samples), features(X_reference), n_subsets, subset_size, rng
    )
    return SampleQuality(
        coverage=coverage,
        mean_confidence=float(np.mean(np.max(probabilities, axis=1))),
        kid=kid,
        kid_std=kid_std,
    )
