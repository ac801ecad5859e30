"""Tests of the training layer, sklearn_cebm/_training/: one file per module."""
