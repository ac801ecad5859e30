"""The transformer side of the estimators: codes of ``n_components`` columns."""

from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._set_output import _wrap_data_with_container

__all__ = ["CodesTransformerMixin", "PosteriorTransformerMixin"]


class CodesTransformerMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """A transformer whose output has ``n_components`` columns in X's float dtype."""

    @property
    def _n_features_out(self):
        # The fitted network's width: set_params may have changed n_components since.
        return getattr(self, "_params_at_build", {}).get("n_components", self.n_components)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _like_codes(self, std, X):
        """``std`` in the container ``set_output`` gives the codes of X.

        scikit-learn's ``set_output`` wraps only the first element of a tuple that
        ``transform`` returns; the stds, column for column the codes', get the same
        container, index and column names.
        """
        return _wrap_data_with_container("transform", std, X, self)


class PosteriorTransformerMixin(CodesTransformerMixin):
    """A transformer to the mean (and std) of the Gaussian posterior its module computes.

    The module's ``posterior_mean_std(x)`` gives them: the exact conjugate posterior of a
    CEBM (Eq. 23), or the encoder's ``q(z | x)`` of a VAE.
    """

    def transform(self, X, return_std=False):
        """Posterior mean of z for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to encode.
        return_std : bool, default=False
            Also return the posterior standard deviations.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means, in X's float dtype.
        Z_std : ndarray of shape (n_samples, n_components)
            Posterior stds; only when ``return_std`` is True. Under ``set_output``, in
            the same container as ``Z``.
        """
        mean, std = self._inference(self._module().posterior_mean_std, X)
        return (mean, self._like_codes(std, X)) if return_std else mean
