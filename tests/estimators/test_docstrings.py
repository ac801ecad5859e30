"""Each estimator's docstring documents exactly its parameters, with the signature's defaults."""

import inspect
import re

import pytest
from numpydoc.docscrape import ClassDoc

from sklearn_cebm import (
    CEBMEncoder,
    CEBMOutlierDetector,
    GMMCEBMClusterer,
    GMMVAEClusterer,
    IGEBMEncoder,
    VAEEncoder,
)
from sklearn_cebm._estimators.docstrings import PARAMETER_DOCS, fill_docstring, parse_entries

ESTIMATORS = [
    CEBMEncoder,
    CEBMOutlierDetector,
    GMMCEBMClusterer,
    GMMVAEClusterer,
    IGEBMEncoder,
    VAEEncoder,
]


def _signature_parameters(estimator):
    parameters = inspect.signature(estimator.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_every_parameter_is_documented_in_signature_order_and_nothing_else(estimator):
    documented = [parameter.name for parameter in ClassDoc(estimator)["Parameters"]]

    assert documented == list(_signature_parameters(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_documented_defaults_are_the_signature_defaults(estimator):
    defaults = _signature_parameters(estimator)
    for parameter in ClassDoc(estimator)["Parameters"]:
        documented = parameter.type.rsplit("default=", 1)[1]
        assert documented == repr(defaults[parameter.name]), parameter.name
        assert parameter.desc, f"{parameter.name} has no description"


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_no_description_swallows_another_entry(estimator):
    # Entries given to fill_docstring at another indentation than the rest read as the
    # previous entry's text: the estimator's own wording is lost, and docutils fails.
    for parameter in ClassDoc(estimator)["Parameters"]:
        for line in parameter.desc:
            assert not re.match(r"\s*\w+ : ", line), (parameter.name, line)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_every_constrained_parameter_is_in_the_signature(estimator):
    assert set(estimator._parameter_constraints) == set(_signature_parameters(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
def test_no_placeholder_is_left_and_common_attributes_are_listed(estimator):
    doc = ClassDoc(estimator)
    attributes = [attribute.name for attribute in doc["Attributes"]]

    assert "{parameters}" not in estimator.__doc__
    assert "{common_attributes}" not in estimator.__doc__
    for name in ("net_", "history_", "n_iter_", "device_", "n_features_in_"):
        assert name in attributes


def test_shared_parameter_docs_are_used_by_some_estimator():
    # A shared entry no estimator has is a stale one.
    used = set().union(*(_signature_parameters(estimator) for estimator in ESTIMATORS))

    assert set(PARAMETER_DOCS) <= used


def test_fill_docstring_names_an_undocumented_parameter():
    class Undocumented:
        """Example.

        Parameters
        ----------
        {parameters}
        """

        def __init__(self, *, not_documented_anywhere=1):
            self.not_documented_anywhere = not_documented_anywhere

    with pytest.raises(KeyError, match="not_documented_anywhere"):
        fill_docstring("other : int\n    Documented, but not the parameter.")(Undocumented)


def test_fill_docstring_takes_the_default_from_the_signature():
    class Documented:
        """Example.

        Parameters
        ----------
        {parameters}
        """

        def __init__(self, *, max_iter=7, learning_rate=0.25):
            self.max_iter = max_iter
            self.learning_rate = learning_rate

    own = """
        learning_rate : float
            A step size,
            on two lines.
    """
    parameters = ClassDoc(fill_docstring(own)(Documented))["Parameters"]

    assert [(p.name, p.type) for p in parameters] == [
        ("max_iter", "int, default=7"),
        ("learning_rate", "float, default=0.25"),
    ]
    assert parameters[0].desc == ["Training epochs."]  # the shared entry
    assert parameters[1].desc == ["A step size,", "on two lines."]


def test_parse_entries_reads_docstring_entries():
    entries = parse_entries(
        """
        alpha : {'a', 'b'}
            First line.
            Second line.
        beta : int
            Only line.
        """
    )

    assert entries == {
        "alpha": ("{'a', 'b'}", "    First line.\n    Second line."),
        "beta": ("int", "    Only line."),
    }
