"""Tests of what the estimators share, sklearn_cebm/_estimators/."""
