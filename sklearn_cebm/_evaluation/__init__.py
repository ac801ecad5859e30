"""Evaluation measures defined outside ``sklearn_cebm.evaluation``, which re-exports them."""

from .sample_quality import SampleQuality, sample_quality, sample_quality_classifier

__all__ = ["SampleQuality", "sample_quality", "sample_quality_classifier"]
