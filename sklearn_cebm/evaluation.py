"""Evaluation protocols of the CEBM paper that work on any features."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length

__all__ = ["few_label_accuracy"]


def _labelled_subset(y, labels_per_class, rng):
    classes = np.unique(y)
    if labels_per_class is None:
        return np.arange(len(y))
    chosen = []
    for label in classes:
        members = np.flatnonzero(y == label)
        if len(members) < labels_per_class:
            raise ValueError(
                f"Class {label!r} has {len(members)} training examples, fewer than "
                f"labels_per_class={labels_per_class}."
            )
        chosen.append(rng.choice(members, labels_per_class, replace=False))
    return np.concatenate(chosen)


def few_label_accuracy(
    train_features,
    y_train,
    test_features,
    y_test,
    *,
    labels_per_class=(1, 10, 100, None),
    n_draws=10,
    standardize=False,
    random_state=None,
):
    """Test accuracy of logistic regression trained on a few labelled examples per class.

    The protocol of the paper's Table 2: for each budget, draw that many labelled training
    examples per class, fit a logistic regression on their features, and score it on the
    whole test set; repeat ``n_draws`` times. ``None`` stands for the full training set
    (fitted once, as there is nothing to draw).

    Parameters
    ----------
    train_features, test_features : array-like of shape (n_samples, n_features)
        Features (codes, pixels, ...) of the training and test sets.
    y_train, y_test : array-like of shape (n_samples,)
    labels_per_class : tuple of int or None, default=(1, 10, 100, None)
    n_draws : int, default=10
    standardize : bool, default=False
        Standardise the features (fitted on the labelled subset) before the regression; the
        paper's protocol is without.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    dict
        ``{budget: (mean_accuracy, std_accuracy)}`` with the budgets as given.
    """
    check_consistent_length(train_features, y_train)
    check_consistent_length(test_features, y_test)
    train_features, test_features = np.asarray(train_features), np.asarray(test_features)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    rng = check_random_state(random_state)
    results = {}
    for budget in labels_per_class:
        accuracies = []
        for _ in range(1 if budget is None else n_draws):
            subset = _labelled_subset(y_train, budget, rng)
            classifier = LogisticRegression(max_iter=5000)
            if standardize:
                classifier = make_pipeline(StandardScaler(), classifier)
            classifier.fit(train_features[subset], y_train[subset])
            accuracies.append(classifier.score(test_features, y_test))
        results[budget] = (float(np.mean(accuracies)), float(np.std(accuracies)))
    return results
