"""Tests of the representation estimators, sklearn_cebm/_representation/."""
