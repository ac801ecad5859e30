"""What every CEBM estimator shares: parameters, input checks, building and training the net."""

import copy
from abc import ABCMeta
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._core.encoders import ConvEncoder, MLPEncoder, initialize_layers
from ._core.losses import ContrastiveDivergenceLoss, DenoisingScoreMatchingLoss
from ._core.model import ConjugateEnergyModel, map_batches
from ._core.scores import energy_input_gradient_norm
from ._core.sgld import sample_from_noise
from ._scaling import fit_unit_range, from_unit_range, to_unit_range
from ._training import DSMNet, PCDNet

# Rows per forward pass at inference: large enough to keep the kernels busy, small enough
# that a conv net's activations for 28x28 images stay well under a gigabyte.
_INFERENCE_BATCH_SIZE = 1024


def _resolve_device(device):
    """Turn the ``device`` parameter into a ``torch.device``, checking CUDA is there."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here.")
    return resolved


def _build_encoder(encoder, image_shape, hidden_layer_sizes, n_features, n_outputs):
    """The encoder module and whether it is one of ours (and so ours to initialise).

    Ours are built on the meta device and materialised uninitialised, so that building
    draws nothing from torch's global generator; ``initialize_layers`` fills them.
    """
    if isinstance(encoder, torch.nn.Module):
        return copy.deepcopy(encoder), False
    use_cnn = encoder == "cnn" or (encoder == "auto" and image_shape is not None)
    if use_cnn and image_shape is None:
        raise ValueError("encoder='cnn' needs image_shape=(channels, height, width).")
    if use_cnn and len(image_shape) != 3:
        raise ValueError(
            "The convolutional encoder needs image_shape=(channels, height, width); "
            f"got {tuple(image_shape)}."
        )
    with torch.device("meta"):
        if use_cnn:
            module = ConvEncoder(tuple(image_shape), n_outputs)
        else:
            module = MLPEncoder(n_features, tuple(hidden_layer_sizes), n_outputs)
    return module.to_empty(device="cpu"), True


class BaseCEBM(BaseEstimator, metaclass=ABCMeta):
    """Base class of the CEBM estimators; not for direct use.

    Subclasses supply the bias (:meth:`_build_bias`), or another torch model through the
    :meth:`_encoder_width` and :meth:`_build_energy_model` hooks, and their own ``__init__``
    listing every parameter, as scikit-learn's ``get_params`` requires.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "encoder": [StrOptions({"auto", "mlp", "cnn"}), torch.nn.Module],
        "image_shape": [tuple, list, None],
        "hidden_layer_sizes": [tuple, list],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
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
        "device": [str, torch.device],
        "callbacks": [list, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
    }

    def _build_bias(self):
        """The bias module over ``n_components`` latent dimensions.

        Every CEBM subclass supplies one; a model that overrides
        :meth:`_build_energy_model` without a bias need not.
        """
        raise NotImplementedError(f"{type(self).__name__} has no bias.")

    # ----------------------------------------------------------------- input checks
    def _validate_input(self, X, reset):
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=reset)
        if self.image_shape is not None:
            n_pixels = int(np.prod(self.image_shape))
            if n_pixels != X.shape[1]:
                raise ValueError(
                    f"image_shape={tuple(self.image_shape)} holds {n_pixels} values but X has "
                    f"{X.shape[1]} features."
                )
        return X

    # ----------------------------------------------------------------- building
    def _build_model(self, n_features, generator):
        encoder, ours = _build_encoder(
            self.encoder,
            self.image_shape,
            self.hidden_layer_sizes,
            n_features,
            self._encoder_width(),
        )
        if ours:
            initialize_layers(encoder, generator)
        input_shape = tuple(self.image_shape) if self.image_shape is not None else (n_features,)
        return self._build_energy_model(encoder, input_shape, generator)

    def _encoder_width(self):
        """Width of the encoder's output; a hook for models other than the CEBM."""
        return 2 * self.n_components

    def _build_energy_model(self, encoder, input_shape, generator):
        """The torch model around the built ``encoder``; a hook for models other than the CEBM.

        The CEBM's is a :class:`ConjugateEnergyModel` with the subclass's bias.
        """
        bias = self._build_bias()
        bias.reset_parameters(generator)
        return ConjugateEnergyModel(encoder, bias, input_shape)

    def _skorch_params(self, device, seeds):
        """The skorch settings every net shares: Adam, the epochs, the seeded data order."""
        loader_generator = torch.Generator().manual_seed(int(seeds[1]))
        return dict(
            optimizer=torch.optim.Adam,
            lr=self.learning_rate,
            max_epochs=self.max_iter,
            batch_size=self.batch_size,
            train_split=None,
            iterator_train__shuffle=True,
            iterator_train__generator=loader_generator,
            callbacks=copy.deepcopy(self.callbacks),
            verbose=self.verbose,
            device=str(device),
        )

    def _build_net(self, model, device, seeds):
        if self.objective == "dsm":
            net = DSMNet(
                module=model,
                criterion=DenoisingScoreMatchingLoss,
                criterion__noise_std=self.dsm_noise,
                **self._skorch_params(device, seeds),
                seed=int(seeds[2]),
            )
            return net.initialize()
        net = PCDNet(
            module=model,
            criterion=ContrastiveDivergenceLoss,
            criterion__energy_l2=self.energy_l2,
            **self._skorch_params(device, seeds),
            sgld_steps=self.sgld_steps,
            sgld_step_size=self.sgld_step_size,
            sgld_noise=self.sgld_noise,
            buffer_size=self.buffer_size,
            buffer_reinit_fraction=self.buffer_reinit_fraction,
            chain_init=self.chain_init,
            data_noise=self.data_noise,
            seed=int(seeds[2]),
        )
        return net.initialize()

    # ----------------------------------------------------------------- training
    def _fit_new(self, X, epochs):
        """Build everything from scratch and train; attributes are set only on success."""
        device = _resolve_device(self.device)
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=3)
        offset, scale = fit_unit_range(X, per_feature=self.image_shape is None)
        init_generator = torch.Generator().manual_seed(int(seeds[0]))
        model = self._build_model(X.shape[1], init_generator)
        net = self._build_net(model, device, seeds)
        net.partial_fit(to_unit_range(X, offset, scale), epochs=epochs)
        self.net_ = net
        self.input_offset_, self.input_scale_ = offset, scale
        self.device_ = device
        self.n_iter_ = len(net.history)
        return self

    def _fit_more(self, X, epochs):
        """Train the existing net further; on failure every attribute is restored."""
        saved_state = dict(self.__dict__)
        saved_net = copy.deepcopy(self.net_)
        try:
            self.net_.partial_fit(
                to_unit_range(X, self.input_offset_, self.input_scale_), epochs=epochs
            )
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved_state)
            self.net_ = saved_net
            raise
        self.n_iter_ = len(self.net_.history)
        return self

    def _fit(self, X, reset, epochs):
        saved_state = dict(self.__dict__)
        try:
            X = self._validate_input(X, reset=reset)
            if reset:
                return self._fit_new(X, epochs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved_state)
            raise
        return self._fit_more(X, epochs)

    # ----------------------------------------------------------------- inference
    def _module(self):
        check_is_fitted(self, "net_")
        module = self.net_.module_
        module.eval()
        return module

    def _inference(self, function, X):
        """Validate ``X``, scale it, and map ``function`` over it in batches.

        Returns the output (or tuple of outputs) as numpy arrays in X's float dtype.
        """
        X = self._validate_input(X, reset=False)
        module = self._module()
        device = next(module.parameters()).device
        X_unit = to_unit_range(X, self.input_offset_, self.input_scale_)
        outputs = map_batches(function, X_unit, _INFERENCE_BATCH_SIZE, device)
        if isinstance(outputs, tuple):
            return tuple(output.numpy().astype(X.dtype) for output in outputs)
        return outputs.numpy().astype(X.dtype)

    def score_samples(self, X):
        """Unnormalised log-density ``log p(x) + log Z = -E(x)`` of each sample.

        Higher means more typical of the training data, as for scikit-learn's outlier
        detectors. The constant ``log Z`` is the same for every ``x``, so scores rank
        samples but are not normalised log-likelihoods.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return -self._inference(self._module(), X)

    def score_gradient_norm(self, X):
        """Norm ``||d log p(x) / dx||`` of the input gradient of the log-density, per sample.

        The out-of-distribution score of Grathwohl et al. (2019) reported in the paper's
        Table 1: smaller means more typical. The gradient is in the units of X, not the
        sampler's box the model works in (the chain rule divides by ``input_scale_``): it is
        the gradient of the density the estimator defines over X, whose log differs from the
        model's only by a constant. For images, scaled with one range for all pixels, the two
        differ by a constant factor and rank samples alike.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Non-negative norms, in X's float dtype.
        """
        module = self._module()
        input_scale = torch.as_tensor(self.input_scale_, dtype=torch.float32)

        def gradient_norm(batch):
            return energy_input_gradient_norm(module, batch, input_scale)

        return self._inference(gradient_norm, X)

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X)))

    def _draw_samples(self, n_samples, n_steps, random_state, energy_module=None):
        """SGLD samples in the caller's units; ``energy_module`` defaults to E(x)."""
        if int(n_samples) < 1 or int(n_steps) < 0:
            raise ValueError(
                f"sample needs n_samples >= 1 and n_steps >= 0; got {n_samples} and {n_steps}."
            )
        module = self._module()
        device = next(module.parameters()).device
        seed_source = self.random_state if random_state is None else random_state
        seed = check_random_state(seed_source).randint(np.iinfo(np.int32).max)
        generator = torch.Generator(device).manual_seed(int(seed))
        samples = sample_from_noise(
            module if energy_module is None else energy_module,
            int(n_samples),
            (self.n_features_in_,),
            n_steps=int(n_steps),
            step_size=self.sgld_step_size,
            noise_std=self.sgld_noise,
            generator=generator,
            # Chains start where training's did; score-matching nets have no start.
            start=getattr(self.net_, "chain_start_", None),
        )
        return from_unit_range(samples.cpu().numpy(), self.input_offset_, self.input_scale_)

    def sample(self, n_samples=1, *, n_steps=500, random_state=None):
        """Draw samples from the model by SGLD from fresh chains (the paper's Fig. 2).

        The chains start where training's restart: uniform noise, or with
        ``chain_init='gaussian'`` the Gaussian fitted to the training data.

        Parameters
        ----------
        n_samples : int, default=1
        n_steps : int, default=500
            SGLD steps, with the estimator's ``sgld_step_size`` and ``sgld_noise``.
        random_state : int, RandomState instance or None, default=None
            Seeds the chains' noise; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        ndarray of shape (n_samples, `n_features_in_`)
            Samples in the units of the training data, inside its range.
        """
        return self._draw_samples(n_samples, n_steps, random_state)

    @property
    def history_(self):
        """skorch ``History`` of the training: per epoch ``train_loss``, ``energy_data``,
        ``energy_model``, ``energy_gap``, ``chain_displacement`` and ``dur`` (seconds)."""
        check_is_fitted(self, "net_")
        return self.net_.history

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
