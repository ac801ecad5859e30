"""Tests of outlier scoring, sklearn_cebm/_outliers/."""
