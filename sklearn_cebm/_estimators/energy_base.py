"""What the energy-based estimators add: training by PCD or score matching, and sampling.

:class:`BaseEnergyEstimator` adds to
:class:`~sklearn_cebm._estimators.base.BaseNeuralEstimator` the sampler's parameters, the
nets that train an energy (:class:`~sklearn_cebm._training.pcd_net.PCDNet` and
:class:`~sklearn_cebm._training.nets.DSMNet`) and :meth:`~BaseEnergyEstimator.sample`;
:class:`BaseCEBM` adds the conjugate bias of a CEBM.
"""

from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._core.ais import annealed_importance_sampling
from .._core.box_densities import UniformBox
from .._core.model import ConjugateEnergyModel
from .._core.precision import compute_dtype_for
from .._core.sgld import frozen_parameters
from .._training.nets import DSMNet
from .._training.pcd_net import PCDNet
from .base import BaseNeuralEstimator
from .checks import check_count
from .inference import DensityScoresMixin
from .scaling import unit_range_log_volume
from .seeds import int32_seeds

__all__ = ["BaseCEBM", "BaseEnergyEstimator"]

# The effort of annealed importance sampling behind score and estimate_log_partition.
# The variance of the log-weights grows with the dimension over the number of temperatures
# (for independent coordinates, in proportion), so 'auto' takes temperatures in proportion
# to the features: on a 64-D Gaussian marginal 500 temperatures erred by 7.6 nats (9
# standard errors), 2,048 by 1.3 (2.6) and a long run by 0.1 (0.5)
# (benchmarks/results/model_selection.md, with its section at 500 temperatures).
AIS_CHAINS = 100
AIS_TEMPERATURES_PER_FEATURE = 32
AIS_MIN_TEMPERATURES = 500


class BaseEnergyEstimator(DensityScoresMixin, BaseNeuralEstimator):
    """Base class of the estimators whose module is an energy ``E(x)``; not for direct use.

    Subclasses supply :meth:`_build_module`.
    """

    _parameter_constraints: dict = {
        **BaseNeuralEstimator._parameter_constraints,
        "objective": [StrOptions({"pcd", "dsm"})],
        "dsm_noise": [Interval(Real, 0, None, closed="neither")],
        "sgld_steps": [Interval(Integral, 0, None, closed="left")],
        "sgld_step_size": [Interval(Real, 0, None, closed="left")],
        "sgld_noise": [Interval(Real, 0, None, closed="left")],
        "buffer_size": [Interval(Integral, 1, None, closed="left")],
        "buffer_reinit_fraction": [Interval(Real, 0, 1, closed="both")],
        "chain_init": [StrOptions({"uniform", "gaussian"})],
        "energy_l2": [Interval(Real, 0, None, closed="left")],
        "data_noise": [Interval(Real, 0, None, closed="left")],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
        "ema_decay": [Interval(Real, 0, 1, closed="left"), None],
    }

    _continuable_params = BaseNeuralEstimator._continuable_params | {
        "sgld_steps",
        "sgld_step_size",
        "sgld_noise",
        "data_noise",
        "dsm_noise",
        "energy_l2",
        "ema_decay",
    }

    def _build_model(self, X_unit, generator):
        module = super()._build_model(X_unit, generator)
        module.compute_dtype = compute_dtype_for(self.precision, self._training_device())
        return module

    @property
    def precision_(self):
        """The precision the network computes in: 'float32' or 'bfloat16'."""
        return "bfloat16" if self._module().compute_dtype is torch.bfloat16 else "float32"

    def _training_objective(self):
        """The objective training uses: ``objective``, which a subclass may resolve."""
        return self.objective

    def _dsm_noise_std(self):
        """The noise std score matching trains with: ``dsm_noise``, which a subclass may
        resolve."""
        return self.dsm_noise

    def _net_settings(self):
        # Each net has the settings of its objective; the other objective's are unused.
        settings = dict(
            super()._net_settings(),
            sgld_step_size=self.sgld_step_size,
            sgld_noise=self.sgld_noise,
            ema_decay=self.ema_decay,
        )
        if self._training_objective() == "dsm":
            return dict(settings, noise_std=self._dsm_noise_std())
        return dict(settings, sgld_steps=self.sgld_steps, data_noise=self.data_noise)

    def _apply_net_settings(self):
        super()._apply_net_settings()
        if self._training_objective() == "pcd":
            # The criterion holds its weight; set on the net too, so that a re-initialised
            # criterion keeps it.
            self.net_.criterion_.energy_l2 = self.energy_l2
            self.net_.criterion__energy_l2 = self.energy_l2

    # The nets that train by each objective; a subclass may put extended nets here and
    # pass their extra settings through _net_params.
    _pcd_net, _dsm_net = PCDNet, DSMNet

    def _net_params(self):
        """Settings of the net beyond the shared and the objective's; none by default."""
        return {}

    def _build_net(self, module, skorch_params, seed):
        sampler = dict(sgld_step_size=self.sgld_step_size, sgld_noise=self.sgld_noise)
        extra = dict(self._net_params(), ema_decay=self.ema_decay)
        if self._training_objective() == "dsm":
            net = self._dsm_net(
                module,
                **skorch_params,
                **sampler,
                **extra,
                noise_std=self._dsm_noise_std(),
                seed=seed,
            )
            return net.initialize()
        net = self._pcd_net(
            module,
            **skorch_params,
            **sampler,
            criterion__energy_l2=self.energy_l2,
            sgld_steps=self.sgld_steps,
            buffer_size=self.buffer_size,
            buffer_reinit_fraction=self.buffer_reinit_fraction,
            chain_init=self.chain_init,
            data_noise=self.data_noise,
            seed=seed,
            **extra,
        )
        return net.initialize()

    def _draw(self, n_samples, n_steps, random_state, energy=None):
        """SGLD samples of ``energy`` (the model's density by default), in the caller's units."""
        n_steps = check_count(n_steps, "n_steps", min_val=0)
        if energy is None:
            energy = self._density_module()

        def draw(n, seed):
            # The estimator's settings now, which set_params may have changed since fit.
            sgld = dict(step_size=self.sgld_step_size, noise_std=self.sgld_noise)
            return self.net_.sample(n, n_steps, seed, (self.n_features_in_,), energy, **sgld)

        return self._sample(draw, n_samples, random_state)

    def sample(self, n_samples=1, *, n_steps=500, random_state=None):
        """Draw samples from the model by SGLD from fresh chains (the paper's Fig. 2).

        The chains start where training's restart (``chain_init``); after training by
        score matching, from uniform noise.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        n_steps : int, default=500
            SGLD steps, with the estimator's ``sgld_step_size`` and ``sgld_noise``.
        random_state : int, RandomState instance or None, default=None
            Seeds the chains' noise; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        ndarray of shape (n_samples, `n_features_in_`)
            Samples in the units of the training data, inside its range.
        """
        return self._draw(n_samples, n_steps, random_state)

    def _estimate_log_partition(self, n_chains, n_temperatures, random_state):
        """AIS from the uniform density on the box: ``(log Z, its standard error)`` in X's units.

        The model is left in eval mode, as after any inference; its weights are frozen
        while the chains run and only the chains' noise is drawn.
        """
        method = "estimate_log_partition"
        n_chains = check_count(n_chains, "n_chains", 2, method)
        if isinstance(n_temperatures, str) and n_temperatures == "auto":
            n_temperatures = max(
                AIS_MIN_TEMPERATURES, AIS_TEMPERATURES_PER_FEATURE * self.n_features_in_
            )
        n_temperatures = check_count(n_temperatures, "n_temperatures", 1, method)
        module = self._density_module().eval()
        device = next(module.parameters()).device
        seed = int32_seeds(self.random_state if random_state is None else random_state)
        with frozen_parameters(module):
            estimate = annealed_importance_sampling(
                module,
                UniformBox(self.n_features_in_),
                n_chains=n_chains,
                n_temperatures=n_temperatures,
                generator=torch.Generator(device).manual_seed(seed),
            )
        # Z over X is Z over the box times the volume of the map from box to X.
        log_partition = estimate.log_partition + unit_range_log_volume(self.input_scale_)
        return log_partition, estimate.standard_error

    def estimate_log_partition(
        self, *, n_chains=AIS_CHAINS, n_temperatures="auto", random_state=None
    ):
        """Estimate the log-normaliser ``log Z`` of the model by annealed importance sampling.

        Sets ``log_partition_`` and ``log_partition_std_``, which :meth:`score` then uses
        instead of estimating ``log Z`` at every call; ``score_samples(X) - log_partition_``
        is the normalised log-density of X's rows in X's units. Fitting again removes them.

        ``Z`` is the integral of ``exp(score_samples(x))`` over the box
        ``input_center_ +- input_scale_`` the model is defined on, in X's units. Chains
        start from the uniform density on the box (whose normaliser is its volume) and
        anneal along the geometric path to the model, with one Metropolis-adjusted
        Langevin (MALA) step per temperature, which leaves each intermediate density
        exactly invariant (``sklearn_cebm._core.ais``). The mean importance weight is
        unbiased for ``Z``; its log, the estimate, is in expectation at or below
        ``log Z``, the more so with too few temperatures, and then the standard error
        understates the error too (see Notes).

        Parameters
        ----------
        n_chains : int, default=100
            Annealing chains; the standard error falls as their square root.
        n_temperatures : int or 'auto', default='auto'
            Intermediate densities, one MALA step each; the cost grows in proportion.
            'auto' takes 32 per feature, at least 500. A pilot run with a quarter of the
            chains first adapts the step sizes.
        random_state : int, RandomState instance or None, default=None
            Seeds the chains; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        self : object
            The estimator, with ``log_partition_`` and ``log_partition_std_``.

        Notes
        -----
        **Cost**: ``1.25 * n_chains * n_temperatures`` evaluations of the energy and its
        input gradient, in batches of ``n_chains``. On one core of this project's AMD
        EPYC machine, with one torch thread: about 8 s at the defaults (2,048
        temperatures) for the MLP of widths (256, 256) on the digits' 64 features, and
        under 1 s for a small MLP on a few features; a fit of the former takes about
        5 s (``benchmarks/results/model_selection.md``).

        **Accuracy**: checked against closed forms and numerical integration in
        ``benchmarks/results/model_selection.md``. When the estimate still rises with more
        temperatures, or ``log_partition_std_`` is large, the weights are dominated by
        few chains: raise ``n_temperatures`` until the estimate settles. The start is the
        uniform density rather than a Gaussian fitted to the data: the models trained by
        short-run PCD spread their mass far from the data, which a Gaussian start misses
        (in a trial on the digits it underestimated ``log Z`` by over 20 nats).
        """
        log_partition, standard_error = self._estimate_log_partition(
            n_chains, n_temperatures, random_state
        )
        self.log_partition_, self.log_partition_std_ = log_partition, standard_error
        return self

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` under the model, per sample, in X's units.

        ``mean(score_samples(X)) - log Z``, with ``log Z`` from ``log_partition_`` when
        :meth:`estimate_log_partition` has set it, else estimated anew at that method's
        defaults, seeded by ``random_state``, at every call (nothing is stored). Unlike
        the unnormalised :meth:`score_samples` it compares models: fits with other
        parameters, the other estimators of this package (a VAE's ``score`` is a lower
        bound on the same quantity) and scikit-learn's density models on the same X, so
        that ``GridSearchCV`` without labels picks the model under which held-out data
        are most likely.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, in the units of the training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        float
            The mean log-likelihood, up to the error of ``log Z``; as AIS errs low on
            ``log Z`` in expectation, it errs high.

        Notes
        -----
        **Cost**: that of :meth:`estimate_log_partition` when ``log_partition_`` is not
        set (about 8 s for the MLP of widths (256, 256) on the digits' 64 features, on
        one core of this project's AMD EPYC machine; under 1 s for a small MLP on a few
        features), plus one forward pass over X. Call :meth:`estimate_log_partition`
        once to score several sets at the cost of one.

        The model has a density only on the box the training data span. A row outside it
        (a pixel brighter than any in training) has log-density ``-inf``; it is counted at
        its nearest point of the box instead, so that one such held-out row does not make
        every candidate's mean ``-inf`` and the comparison void.
        """
        energies, _ = self._inference_in_range(self._density_module(), X)
        if hasattr(self, "log_partition_"):
            log_partition = self.log_partition_
        else:
            log_partition, _ = self._estimate_log_partition(AIS_CHAINS, "auto", None)
        return float(np.mean(-energies.astype(np.float64)) - log_partition)


class BaseCEBM(BaseEnergyEstimator):
    """Base class of the conjugate EBMs: an encoder of statistics and a bias; not for use.

    Subclasses supply :meth:`_build_bias`.
    """

    @abstractmethod
    def _build_bias(self):
        """The bias module over ``n_components`` latent dimensions."""

    def _build_module(self, encoder, input_shape, generator):
        bias = self._build_bias()
        bias.reset_parameters(generator)
        return ConjugateEnergyModel(encoder, bias, input_shape)
