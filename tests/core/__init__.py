"""Tests of the pure-torch core, sklearn_cebm/_core/: one file per module."""
