"""Inference through a fitted estimator's network, and the scores of its energy.

:class:`InferenceMixin` maps the module's functions over inputs in batches, in the scaled
box the model is defined on. :class:`DensityScoresMixin` gives the scores of every
estimator whose module is an energy (the energy-based models, and the VAEs' negative
evidence bound): :meth:`~DensityScoresMixin.score_samples` and
:meth:`~DensityScoresMixin.score_gradient_norm`, with the rule for inputs outside the
training box (:mod:`sklearn_cebm._estimators.out_of_range`).
"""

from functools import partial

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from .._core.model import inference_batch_size, map_batches
from .._core.scores import energy_and_input_gradient_norm, energy_input_gradient_norm
from .checks import _check_finite_outputs, check_count
from .out_of_range import distance_outside_range, project_onto_range, score_outside_range
from .scaling import from_unit_range, to_unit_range
from .seeds import int32_seeds

__all__ = ["DensityScoresMixin", "InferenceMixin"]


class InferenceMixin:
    """Batched inference of :class:`~sklearn_cebm._estimators.base.BaseNeuralEstimator`.

    Reads what the base fits: ``net_`` and the input scaling (``input_center_``,
    ``input_scale_``, ``input_min_``, ``input_max_``).
    """

    def _module(self):
        check_is_fitted(self, "net_")
        return self.net_.module_

    def _inference(self, function, X):
        """Validate ``X``, scale it, and map ``function`` over it in batches.

        Returns the output (or tuple of outputs) as numpy arrays in X's float dtype.
        """
        X = self._validate_input(X, reset=False)
        return self._map_scaled(function, X, X.dtype)

    def _inference_in_range(self, function, X):
        """:meth:`_inference` at the projection of ``X`` onto the training box, and distances.

        Returns ``function``'s output at each row's nearest point of the box the model is
        defined on (the row itself when inside it) and the row's
        :func:`~sklearn_cebm._estimators.out_of_range.distance_outside_range`.
        """
        X = self._validate_input(X, reset=False)
        low, high = self._training_range()
        distance = distance_outside_range(X, low, high, self.input_scale_)
        output = self._map_scaled(function, project_onto_range(X, low, high), X.dtype)
        return output, distance

    def _training_range(self):
        """The box ``[input_min_, input_max_]``; for a model pickled before it was kept,
        the box ``input_center_ +- input_scale_`` (which misses the constant features)."""
        if hasattr(self, "input_min_"):
            return self.input_min_, self.input_max_
        return self.input_center_ - self.input_scale_, self.input_center_ + self.input_scale_

    def _map_scaled(self, function, X, dtype):
        """Scale the validated ``X`` into the box and map ``function`` over it in batches."""
        X_unit = to_unit_range(X, self.input_center_, self.input_scale_)
        return self._map_unit(function, X_unit, dtype)

    def _map_unit(self, function, X_unit, dtype):
        """Map ``function`` over rows already in the box, in batches, in eval mode.

        Returns the output (or tuple of outputs) as numpy arrays of ``dtype``.
        """
        module = self._module()
        # In eval mode only for a call that succeeds, so that a rejected one changes nothing.
        was_training = module.training
        device = next(module.eval().parameters()).device
        try:
            n_rows, n_features = X_unit.shape
            batch_size = inference_batch_size(function, module, n_features, device, n_rows)
            outputs = map_batches(function, X_unit, batch_size, device)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            _check_finite_outputs(outputs, X_unit)
        except BaseException:
            module.train(was_training)
            raise
        outputs = tuple(output.numpy().astype(dtype) for output in outputs)
        return outputs if len(outputs) > 1 else outputs[0]

    def _sample(self, draw, n_samples, random_state):
        """Samples from ``draw(n_samples, seed)`` (in the box), in the caller's units.

        The seed comes from ``random_state``, or the estimator's when it is None. The
        parameters are validated first: the sampler reads them as they are now, and
        ``set_params`` checks nothing.
        """
        check_is_fitted(self, "net_")
        self._validate_params()
        n_samples = check_count(n_samples, "n_samples", min_val=1)
        seed = int32_seeds(self.random_state if random_state is None else random_state)
        samples = draw(n_samples, seed)
        return from_unit_range(samples.numpy(), self.input_center_, self.input_scale_)

    @property
    def history_(self):
        """skorch ``History`` of the training, one entry per epoch."""
        check_is_fitted(self, "net_")
        return self.net_.history


class DensityScoresMixin:
    """The scores of an estimator whose module is an energy ``E(x)``: ``-E`` and its gradient.

    For estimators of :class:`~sklearn_cebm._estimators.base.BaseNeuralEstimator` with a
    density (or a bound on one); it keeps, after each training, the extremes of the
    training data's scores that the rule for out-of-range inputs needs.
    """

    def _density_module(self):
        """The module whose energy is the model's ``E(x)``: what :meth:`score_samples`,
        the gradient norms, ``score`` and ``sample`` use; the trained module itself unless
        a subclass keeps its density apart."""
        return self._module()

    def _record_training_score_extremes(self, X):
        """Keep the lowest score and the largest gradient norm of the training ``X``.

        Out-of-range inputs are put beyond them (:meth:`score_samples`,
        :meth:`score_gradient_norm`). Taken at the projections onto the box, which for a
        first fit's X are the rows themselves; a ``partial_fit`` X outside the box of the
        first call lowers them instead of escaping them.
        """
        # One pass: the gradient's forward pass gives the energies too.
        (energies, norms), _ = self._inference_in_range(
            self._gradient_norm_function(with_energies=True), X
        )
        self.lowest_training_score_ = float(np.min(-energies))
        self.highest_training_gradient_norm_ = float(np.max(norms))

    def score_samples(self, X):
        """Unnormalised log-density ``log p(x) + log Z = -E(x)`` of each sample.

        The negative of the model's energy: higher means more typical of the training data,
        as for scikit-learn's outlier detectors. The constant ``log Z`` is the same for
        every ``x``, so scores rank samples but are not normalised log-likelihoods: cheap
        (one forward pass), and the right score for ranking the samples of one model.
        To compare models, use ``score``, the mean normalised log-likelihood (for the
        energy-based models, ``score_samples(X) - log_partition_`` after
        ``estimate_log_partition``; for the VAEs, the evidence bound in X's units).

        The model is defined on the box ``[input_min_, input_max_]`` the training data
        span, where its sampler is confined; outside it has no density, and an input
        there scores ``min(s(pi(x)), lowest_training_score_) - (1 + d(x))``: below every
        training score, the farther out the lower (see Notes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score, in the units of the training data.

        Returns
        -------
        ndarray of shape (n_samples,)
            The scores, in X's float dtype; finite.

        Notes
        -----
        Outside the box its network only extrapolates, and may score an image of all
        1000s far above the digits it was trained on. The log-density there is ``-inf``;
        the score stays finite, so that it can be averaged and ranked, and keeps that
        order: ``pi(x)`` is the nearest point of the box, ``s(pi(x))`` the model's score
        there, ``d(x)`` the distance to the box in units of ``input_scale_`` (a feature
        constant in training has a one-point range: any deviation is out of range). By
        construction every such score lies at least one below the lowest score of the
        training data, ``lowest_training_score_``, whatever the network does there.
        """
        energies, distance = self._inference_in_range(self._density_module(), X)
        return score_outside_range(-energies, distance, self.lowest_training_score_)

    def _gradient_norm_function(self, with_energies=False):
        """The batch function of the input-gradient norms in X's units; of the energies and
        the norms with ``with_energies``."""
        module = self._density_module()  # first: it raises NotFittedError before a fit
        function = energy_and_input_gradient_norm if with_energies else energy_input_gradient_norm
        input_scale = torch.as_tensor(self.input_scale_, dtype=torch.float32)
        return partial(function, module, input_scale=input_scale)

    def score_gradient_norm(self, X):
        """Norm ``||d log p(x) / dx||`` of the input gradient of the log-density, per sample.

        The out-of-distribution score of Grathwohl et al. (2019) reported in the paper's
        Table 1: smaller means more typical. The gradient is in the units of X, not the
        sampler's box the model works in (the chain rule divides by ``input_scale_``): it is
        the gradient of the density the estimator defines over X, whose log differs from the
        model's only by a constant. For images, scaled with one range for all pixels, the two
        differ by a constant factor and rank samples alike.

        Outside the box ``[input_min_, input_max_]``, where the model has no density, the
        norm is ``max(g(pi(x)), highest_training_gradient_norm_) + 1 + d(x)``: above every
        training norm, by the rule of :meth:`score_samples`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples at which to take the gradient.

        Returns
        -------
        ndarray of shape (n_samples,)
            Non-negative norms, in X's float dtype; finite.
        """
        norms, distance = self._inference_in_range(self._gradient_norm_function(), X)
        return -score_outside_range(-norms, distance, -self.highest_training_gradient_norm_)
