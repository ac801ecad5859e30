"""Outlier scoring: CEBMOutlierDetector and the typicality of a model's statistics."""
