"""Tests of the clustering estimators and tools, sklearn_cebm/_clustering/."""
