"""What the energy-based estimators add: training by PCD or score matching, and sampling.

:class:`BaseEnergyEstimator` adds to :class:`~sklearn_cebm._base.BaseNeuralEstimator`
the sampler's parameters, the nets that train an energy (:class:`~sklearn_cebm._training.PCDNet`
and :class:`~sklearn_cebm._training.DSMNet`) and :meth:`~BaseEnergyEstimator.sample`;
:class:`BaseCEBM` adds the conjugate bias of a CEBM.
"""

from abc import abstractmethod
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseNeuralEstimator, check_count
from ._core.model import ConjugateEnergyModel
from ._training import DSMNet, PCDNet

__all__ = ["BaseCEBM", "BaseEnergyEstimator"]


class BaseEnergyEstimator(BaseNeuralEstimator):
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
    }

    _continuable_params = BaseNeuralEstimator._continuable_params | {
        "sgld_steps",
        "sgld_step_size",
        "sgld_noise",
        "data_noise",
        "dsm_noise",
        "energy_l2",
    }

    def _training_objective(self):
        """The objective training uses: ``objective``, which a subclass may resolve."""
        return self.objective

    def _net_settings(self):
        # Each net has the settings of its objective; the other objective's are unused.
        settings = dict(
            super()._net_settings(),
            sgld_step_size=self.sgld_step_size,
            sgld_noise=self.sgld_noise,
        )
        if self._training_objective() == "dsm":
            return dict(settings, noise_std=self.dsm_noise)
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
        extra = self._net_params()
        if self._training_objective() == "dsm":
            net = self._dsm_net(
                module, **skorch_params, **sampler, **extra, noise_std=self.dsm_noise, seed=seed
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
        """SGLD samples of ``energy`` (the model's by default), in the caller's units."""
        n_steps = check_count(n_steps, "n_steps", min_val=0)

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
