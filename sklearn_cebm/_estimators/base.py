"""What every estimator of this package shares: a network trained on scaled inputs.

:class:`BaseNeuralEstimator` owns the parameters of the network and its training, the
input checks, the affine scaling into the box ``[-1, 1]``, building and training the skorch
net with ``fit`` and ``partial_fit`` (all or nothing: a failed call leaves the estimator
as it was), batched inference and the scores of the module's energy. Subclasses supply
the torch module and the net that trains it; the energy-based ones add their sampler in
:mod:`sklearn_cebm._estimators.energy_base`.
"""

import contextlib
import copy
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils._set_output import _wrap_data_with_container
from sklearn.utils.validation import check_is_fitted, validate_data

from .._core.encoders import ConvEncoder, MLPEncoder, initialize_layers
from .._core.model import inference_batch_size, map_batches
from .._core.scores import energy_input_gradient_norm
from .._training.batching import batch_indexing_loader
from .._training.checkpoint import CHECKPOINT_FORMAT, EpochCheckpoint, dump_atomically
from .._training.nets import TrainingInterrupted, check_callbacks
from .out_of_range import distance_outside_range, project_onto_range, score_outside_range
from .scaling import (
    check_input_range,
    fit_input_range,
    from_unit_range,
    to_unit_range,
    unit_range_of,
)
from .seeds import int32_seeds

__all__ = [
    "BaseNeuralEstimator",
    "CodesTransformerMixin",
    "PosteriorTransformerMixin",
    "check_count",
    "uses_conv_net",
]


def _device_available(device):
    """Whether torch can put tensors on ``device`` here: the CPU, or an accelerator present."""
    if device.type == "cpu":
        return True
    # The meta device holds shapes without data: nothing could be trained or scored on it.
    if device.type == "meta":
        return False
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    if accelerator is None or accelerator.type != device.type:
        return False
    return device.index is None or device.index < torch.accelerator.device_count()


def _resolve_device(device):
    """Turn the ``device`` parameter into a ``torch.device`` that torch has available here.

    Raises
    ------
    ValueError
        If ``device`` names no device, or one that torch cannot use on this machine.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from error
    if not _device_available(resolved):
        accelerator = torch.accelerator.current_accelerator(check_available=True)
        available = "'cpu'" if accelerator is None else f"'cpu' or '{accelerator.type}'"
        raise ValueError(
            f"device={device!r} was requested but torch has no {resolved.type!r} device "
            f"available here; use 'auto' or {available}."
        )
    return resolved


def uses_conv_net(encoder, image_shape):
    """Whether the networks are convolutional: 'cnn', or 'auto' or a module with images.

    A custom encoder module is taken as it is; this then says which decoder a VAE pairs
    with it.
    """
    if isinstance(encoder, str) and encoder in ("cnn", "mlp"):
        return encoder == "cnn"
    return image_shape is not None


def _build_encoder(encoder, image_shape, hidden_layer_sizes, n_features, n_outputs):
    """The encoder module and whether it is one of ours (and so ours to initialise).

    Ours are built on the meta device and materialised uninitialised, so that building
    draws nothing from torch's global generator; ``initialize_layers`` fills them.
    """
    if isinstance(encoder, torch.nn.Module):
        return copy.deepcopy(encoder), False
    use_cnn = uses_conv_net(encoder, image_shape)
    if encoder == "cnn" and image_shape is None:
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


def _check_sizes(name, value, estimator_name):
    """Reject a ``hidden_layer_sizes`` or ``image_shape`` whose elements are not positive ints.

    scikit-learn's constraints see only the container's type; torch would fail on a zero or
    negative size deep inside a layer, and truncate or refuse a float or a bool.
    """
    for size in value:
        if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
            raise InvalidParameterError(
                f"The {name!r} parameter of {estimator_name} must hold positive ints; got "
                f"{value!r}, whose element {size!r} is not one."
            )


def _check_no_bools(params, constraints, estimator_name):
    """Reject a bool given for a number: Python counts it as an int, and 1 or 0 is no intent."""
    for name, value in params.items():
        accepts_bool = {"boolean", "verbose"} & {
            c for c in constraints.get(name, []) if isinstance(c, str)
        }
        if isinstance(value, bool) and not accepts_bool:
            raise InvalidParameterError(
                f"The {name!r} parameter of {estimator_name} must be a number, not a bool; "
                f"got {value!r}."
            )


def _first_layer_expects(encoder):
    """What the first layer of ``encoder`` takes per row, in words, where it says so."""
    for layer in encoder.modules():
        if isinstance(getattr(layer, "in_features", None), int):
            return f"; its first layer, {layer}, expects {layer.in_features} features per row"
        if isinstance(getattr(layer, "in_channels", None), int):
            return f"; its first layer, {layer}, expects {layer.in_channels} channels"
    return ""


def _check_custom_encoder(encoder, row, input_shape):
    """Run a user's ``encoder`` on one scaled row, as training will, and say what is wrong.

    Done once at fit, so that a module built for other inputs fails with the shapes
    involved, not with torch's error from deep inside the first training step. The module
    runs in eval mode (a batch norm cannot train on one row) and its mode is restored. The
    width of its output is checked where every output is (``encode_flat_batch``).
    """
    parameter = next(encoder.parameters(), None)
    batch = torch.as_tensor(row).reshape(1, *input_shape)
    batch = batch if parameter is None else batch.to(parameter.device)
    shape = ", ".join(str(size) for size in ("n", *input_shape))
    was_training = encoder.training
    try:
        with torch.no_grad():
            encoder.eval()(batch)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        raise ValueError(
            f"The encoder module cannot take the batches the estimator feeds it, shaped "
            f"({shape}){_first_layer_expects(encoder)}. torch said: {error}"
        ) from error
    finally:
        encoder.train(was_training)


def check_count(value, name, min_val, method="sample"):
    """Check an int argument of ``method`` (``n_samples``, ``n_steps``); return it as an int.

    Raises
    ------
    TypeError
        If ``value`` is not an int: a bool, 1.5, '3' or None (none is truncated or cast).
    ValueError
        If it is below ``min_val``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(
            f"{method} needs an int {name}; got {value!r} of type {type(value).__name__}."
        )
    if value < min_val:
        raise ValueError(f"{method} needs an integer {name} >= {min_val}; got {value!r}.")
    return int(value)


def _check_finite_outputs(outputs, X_unit):
    """Raise when the float32 networks overflowed on some rows, instead of returning NaN.

    Inputs far outside the training data's range (X * 1e30) are finite in float32 but
    overflow in the layers; a NaN score or code would pass silently into an argmax, a
    threshold or a mean.
    """
    bad_rows = np.zeros(len(X_unit), dtype=bool)
    for output in outputs:
        bad_rows |= ~torch.isfinite(output).reshape(len(X_unit), -1).all(dim=1).numpy()
    if np.any(bad_rows):
        row = int(np.flatnonzero(bad_rows)[0])
        reach = float(np.abs(X_unit[row]).max())
        raise ValueError(
            f"The model's outputs are not finite for {int(bad_rows.sum())} row(s) of X (the "
            f"first: row {row}): its values lie up to {reach:.3g} half-ranges from the "
            "training data's centre, so far outside the training data that the networks' "
            "float32 arithmetic overflows. Such inputs have no meaningful score; drop or "
            "clip them."
        )


def _same_setting(before, now):
    """Whether a parameter still has the value the network was built with."""
    if before is now:
        return True
    if isinstance(before, (list, tuple)) and isinstance(now, (list, tuple)):
        return len(before) == len(now) and all(map(_same_setting, before, now))
    if isinstance(before, torch.nn.Module) or isinstance(now, torch.nn.Module):
        return False
    try:
        return bool(before == now)
    except (TypeError, ValueError):
        return False


def copy_sharing_user_callbacks(obj, estimator):
    """``copy.deepcopy(obj)``, except that the copy shares the user's callbacks.

    The callbacks given to ``estimator`` (and the copies its net was built with) may hold
    what cannot be copied, such as an open stream, and a copy of the net goes on
    training with the same callbacks, which then see all of the training.

    Parameters
    ----------
    obj : object
        What to copy: the estimator or its net.
    estimator : BaseNeuralEstimator
        The estimator whose ``callbacks`` are shared.
    """
    given = list(estimator.callbacks or [])
    net = estimator.__dict__.get("net_")
    if net is not None:
        # The net's copies of the user's callbacks: all but the estimator's own.
        own = {name for name, _ in estimator._training_callbacks()}
        given += [
            item for item in net.callbacks or [] if not (isinstance(item, tuple) and item[0] in own)
        ]
    shared = [item[1] if isinstance(item, tuple) else item for item in given]
    return copy.deepcopy(obj, {id(callback): callback for callback in shared})


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


class BaseNeuralEstimator(BaseEstimator, metaclass=ABCMeta):
    """Base class of every estimator of this package; not for direct use.

    Subclasses supply :meth:`_build_module` (the torch model around the built encoder)
    and :meth:`_build_net` (the skorch net that trains it), and their own ``__init__``
    listing every parameter, as scikit-learn's ``get_params`` requires. The module maps a
    flat batch to an energy ``(n,)``, the negative log-density up to a constant (or a
    bound on it), which :meth:`score_samples` negates.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "encoder": [StrOptions({"auto", "mlp", "cnn"}), torch.nn.Module],
        "image_shape": [tuple, list, None],
        "hidden_layer_sizes": [tuple, list],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "device": [str, torch.device],
        "callbacks": [list, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
    }

    # Parameters that may change between the calls of one training (a warm-started fit,
    # partial_fit): those the net reads are applied to it (_net_settings), the others are
    # read outside the net. Any other parameter built the network (its sizes, encoder,
    # device, callbacks...), and a continued training with it changed is refused.
    _continuable_params = frozenset(
        {
            "max_iter",
            "warm_start",
            "verbose",
            "random_state",
            "learning_rate",
            "batch_size",
        }
    )

    # ----------------------------------------------------------------- hooks
    def _net_settings(self):
        """Parameters the net reads in training, by its attribute names; applied before a
        continued training, so that ``set_params`` between calls takes effect."""
        return {"lr": self.learning_rate, "batch_size": self.batch_size, "verbose": self.verbose}

    def _encoder_hidden_layer_sizes(self, n_features):
        """Hidden widths of the MLP encoder for rows of ``n_features``: ``hidden_layer_sizes``."""
        return self.hidden_layer_sizes

    def _encoder_width(self):
        """Width of the encoder's output."""
        return 2 * self.n_components

    @abstractmethod
    def _build_module(self, encoder, input_shape, generator):
        """The torch model around the built ``encoder``, initialised from ``generator``."""

    @abstractmethod
    def _build_net(self, module, skorch_params, seed):
        """The initialised skorch net training ``module``, from the shared skorch settings."""

    def _training_device(self):
        """The device the module is built and trained on: ``device``, resolved."""
        return _resolve_device(self.device)

    def _training_callbacks(self):
        """Callbacks of the subclass's own, run after the user's; none by default."""
        return []

    def _training_targets(self, X_unit):
        """What the net's ``partial_fit`` gets as ``y`` beside the scaled ``X_unit``; None."""
        return None

    def _full_fit_epochs(self, n_samples):
        """Epochs of a call to :meth:`fit` on ``n_samples`` samples: ``max_iter``."""
        return self.max_iter

    def _on_fit_end(self, X):
        """Set what the subclass derives from the trained model and the training X.

        Runs inside the fit's rollback, so a failure here leaves the estimator as it was;
        nothing by default.
        """

    # ----------------------------------------------------------------- input checks
    def _validate_params(self):
        """scikit-learn's checks of ``_parameter_constraints``, then of what they cannot say.

        No bool where a number is expected, and positive ints in ``hidden_layer_sizes``
        and ``image_shape``.
        """
        super()._validate_params()
        params, name = self.get_params(deep=False), type(self).__name__
        _check_no_bools(params, self._parameter_constraints, name)
        for sizes in ("hidden_layer_sizes", "image_shape"):
            # A string passed the constraints only where a subclass allows one ('auto').
            if params.get(sizes) is not None and not isinstance(params[sizes], str):
                _check_sizes(sizes, params[sizes], name)

    def _validate_input(self, X, reset):
        if isinstance(X, torch.Tensor):
            # numpy cannot view a tensor that requires grad or lives on an accelerator.
            X = X.detach().cpu().numpy()
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
    def _encoder_choice(self):
        """``encoder`` as the networks are built from it: 'auto' is resolved by
        :func:`uses_conv_net` unless an estimator says otherwise."""
        return self.encoder

    def _build_model(self, X_unit, generator):
        """The module for data like ``X_unit`` (scaled), its encoder initialised or checked."""
        n_features = X_unit.shape[1]
        encoder, ours = _build_encoder(
            self._encoder_choice(),
            self.image_shape,
            self._encoder_hidden_layer_sizes(n_features),
            n_features,
            self._encoder_width(),
        )
        input_shape = tuple(self.image_shape) if self.image_shape is not None else (n_features,)
        if ours:
            initialize_layers(encoder, generator)
        else:
            _check_custom_encoder(encoder, X_unit[:1], input_shape)
        return self._build_module(encoder, input_shape, generator)

    def _skorch_params(self, device, loader_seed):
        """The skorch settings every net shares: Adam, the epochs, the seeded data order."""
        check_callbacks(self.callbacks)
        return dict(
            optimizer=torch.optim.Adam,
            lr=self.learning_rate,
            max_epochs=self.max_iter,
            batch_size=self.batch_size,
            train_split=None,
            iterator_train=batch_indexing_loader,
            iterator_train__shuffle=True,
            iterator_train__generator=torch.Generator().manual_seed(loader_seed),
            callbacks=self._net_callbacks(),
            verbose=self.verbose,
            device=str(device),
        )

    def _net_callbacks(self):
        """Copies of the user's callbacks, then the subclass's, then the checkpoints.

        A checkpoint comes last so that it writes the model as the epoch's other
        callbacks (a mixture's placement of its means) left it.
        """
        given = copy.deepcopy(self.callbacks or [])

        def is_checkpoint(item):
            return isinstance(item[1] if isinstance(item, tuple) else item, EpochCheckpoint)

        others = [item for item in given if not is_checkpoint(item)]
        checkpoints = [item for item in given if is_checkpoint(item)]
        return [*others, *self._training_callbacks(), *checkpoints]

    # ----------------------------------------------------------------- training
    @contextlib.contextmanager
    def _rollback_on_error(self):
        """Restore every attribute if the block raises.

        Yields a function to call before ``net_`` is changed in place (trained further):
        it keeps a copy of the net, which the rollback puts back.
        """
        saved_state = dict(self.__dict__)
        saved_nets = []

        def keep_net():
            saved_nets.append(copy_sharing_user_callbacks(self.net_, self))

        try:
            yield keep_net
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved_state)
            if saved_nets:
                self.net_ = saved_nets[0]
            raise

    def _fit_new(self, X, epochs, input_range=None):
        """Build everything from scratch and train.

        The box is ``input_range`` where given, else X's range. The attributes are set
        before training, so that a checkpoint written at an epoch's end holds them;
        :meth:`_fit`'s rollback removes them on failure.
        """
        device = self._training_device()
        seeds = int32_seeds(self.random_state, size=3)
        if input_range is None:
            low, high = fit_input_range(X, per_feature=self.image_shape is None)
        else:
            low, high = check_input_range(input_range, X)
        center, scale = unit_range_of(low, high)
        init_generator = torch.Generator().manual_seed(int(seeds[0]))
        X_unit = to_unit_range(X, center, scale)
        module = self._build_model(X_unit, init_generator)
        net = self._build_net(module, self._skorch_params(device, int(seeds[1])), int(seeds[2]))
        self.net_ = net
        self.input_center_, self.input_scale_ = center, scale
        self.input_min_, self.input_max_ = low, high
        self.device_ = device
        self._record_built_params()
        self._train(X_unit, epochs)

    def _train(self, X_unit, epochs):
        """Train ``net_`` for ``epochs`` epochs, its checkpoints writing this estimator."""
        net = self.net_
        end = len(net.history) + epochs
        checkpoints = [cb for _, cb in net.callbacks_ if isinstance(cb, EpochCheckpoint)]

        def write(path):
            self._write_checkpoint(path, epochs_left=end - len(net.history))

        for checkpoint in checkpoints:
            checkpoint.write_ = write
        try:
            net.partial_fit(X_unit, self._training_targets(X_unit), epochs=epochs)
        finally:
            for checkpoint in checkpoints:
                checkpoint.write_ = None

    # What a fit keeps only while it runs, and a checkpoint leaves out.
    _transient_attributes = frozenset(
        {"_shared_neighbours", "_training_neighbours", "_partial_fit_input_range"}
    )

    def _write_checkpoint(self, path, epochs_left):
        """Dump this estimator, as training has left it, and the epochs its call has left."""
        snapshot = object.__new__(type(self))
        snapshot.__dict__.update(
            (name, value)
            for name, value in self.__dict__.items()
            if name not in self._transient_attributes
        )
        snapshot.n_iter_ = len(self.net_.history)
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "estimator": snapshot,
            "epochs_left": epochs_left,
        }
        dump_atomically(checkpoint, path)

    def _record_built_params(self):
        """Remember the parameters as the network is built, for a continued training."""
        self._params_at_build = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in self.get_params(deep=False).items()
        }

    def _check_built_params_unchanged(self):
        """Refuse to continue training after a parameter that built the network changed.

        Raises
        ------
        ValueError
            If such a parameter has changed: continuing would silently keep the old one.
        """
        built = getattr(self, "_params_at_build", {})  # none in pickles of earlier versions
        changed = [
            f"{name}={value!r} (built with {built[name]!r})"
            for name, value in self.get_params(deep=False).items()
            if name in built
            and name not in self._continuable_params
            and not _same_setting(built[name], value)
        ]
        if changed:
            raise ValueError(
                f"Cannot continue training (warm_start=True or partial_fit) after "
                f"{', '.join(changed)} was set: the network was built with the old value. "
                "Fit a new one with warm_start=False, or set the old value back."
            )

    def _apply_net_settings(self):
        """Give the net the current values of the parameters it reads in training."""
        settings = self._net_settings()
        self.net_.set_params(lr=settings.pop("lr"))
        for name, value in settings.items():
            setattr(self.net_, name, value)

    def _training_interrupted(self):
        """Whether the latest training call stopped at an interrupt (Ctrl-C)."""
        return bool(getattr(self.net_, "interrupted_", False))

    def _warn_interrupted(self):
        """Say that training stopped at an interrupt and what the model now holds."""
        last = self.net_.history[-1] if len(self.net_.history) else {}
        where = (
            f"in epoch {last['epoch']} after {last['train_batch_count']} batches"
            if last.get("interrupted")
            else "at an epoch's end"
        )
        warnings.warn(
            f"Training was interrupted (KeyboardInterrupt) {where}; {type(self).__name__} "
            f"keeps the model trained so far (n_iter_={self.n_iter_}). Turn "
            "TrainingInterrupted into an error to have an interrupt abort the call instead.",
            TrainingInterrupted,
            stacklevel=4,
        )

    def _check_same_input_range(self, input_range, X):
        """Refuse an ``input_range`` other than the box the model was built on."""
        low, high = check_input_range(input_range, X)
        if not (np.array_equal(low, self.input_min_) and np.array_equal(high, self.input_max_)):
            raise ValueError(
                "input_range differs from the box the model was built on (input_min_, "
                "input_max_): the first call to partial_fit fixes it. Pass the same range, "
                "or none."
            )

    def _fit(self, X, reset, epochs=None):
        """Train for ``epochs`` epochs (a full fit's if None), from scratch when ``reset``.

        All or nothing: a failure leaves the estimator as it was.
        """
        # Passed as an attribute, not an argument: subclasses extend this signature.
        input_range = self.__dict__.get("_partial_fit_input_range")
        with self._rollback_on_error() as keep_net:
            X_valid = self._validate_input(X, reset=reset)
            if epochs is None:
                epochs = self._full_fit_epochs(X_valid.shape[0])
            if reset:
                self._fit_new(X_valid, epochs, input_range)
            else:
                if input_range is not None:
                    self._check_same_input_range(input_range, X_valid)
                X_unit = to_unit_range(X_valid, self.input_center_, self.input_scale_)
                self._check_built_params_unchanged()
                keep_net()
                self._apply_net_settings()
                self._train(X_unit, epochs)
            self.n_iter_ = len(self.net_.history)
            if self._training_interrupted():
                self._warn_interrupted()
            self._record_training_score_extremes(X)
            # A normaliser estimated for the model before this training no longer holds.
            for name in ("log_partition_", "log_partition_std_"):
                self.__dict__.pop(name, None)
            # X as the caller gave it, so that its feature names reach the hook's calls.
            self._on_fit_end(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train on X for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; dense, finite.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        TrainingDivergedError
            If the energies, the objective or the weights become non-finite or explode;
            the estimator is left as it was.
        """
        reset = not (self.warm_start and hasattr(self, "net_"))
        return self._fit(X, reset=reset)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, *, input_range=None):
        """Train for one epoch over X, building the model on the first call.

        Calls over the chunks of a data set train one model, as ``fit`` does over all of
        it: the network, the optimiser's state, the replay buffer's chains and the random
        generators carry over from call to call (see the user guide's "Scaling up").

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data for one epoch; dense, finite.
        y : Ignored
            Not used, present for API consistency by convention.
        input_range : (low, high) or None, default=None
            The range of all the data the stream will bring, as floats (one range for
            every feature, as for images: ``(0, 255)``) or arrays of one value per
            feature. The first call builds the model on this box, which later calls keep
            (as ``classes`` in scikit-learn's ``SGDClassifier.partial_fit``); None takes
            the first call's X's range, which a first chunk may not span. Later calls
            may repeat it or omit it.

        Returns
        -------
        self : object
            The estimator, trained one more epoch.

        Raises
        ------
        ValueError
            If a parameter that built the network (``n_components``, ``encoder``, ...)
            was changed by ``set_params`` since the first call; changed training settings
            (``learning_rate``, ...) take effect instead (see ``warm_start``). If X lies
            outside ``input_range``, or a later call's ``input_range`` differs from the
            first's.
        """
        first_pass = not hasattr(self, "net_")
        self._partial_fit_input_range = input_range
        try:
            return self._fit(X, reset=first_pass, epochs=1)
        finally:
            self.__dict__.pop("_partial_fit_input_range", None)

    # ----------------------------------------------------------------- inference
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

    def _record_training_score_extremes(self, X):
        """Keep the lowest score and the largest gradient norm of the training ``X``.

        Out-of-range inputs are put beyond them (:meth:`score_samples`,
        :meth:`score_gradient_norm`). Taken at the projections onto the box, which for a
        first fit's X are the rows themselves; a ``partial_fit`` X outside the box of the
        first call lowers them instead of escaping them.
        """
        energies, _ = self._inference_in_range(self._module(), X)
        norms, _ = self._inference_in_range(self._gradient_norm_function(), X)
        self.lowest_training_score_ = float(np.min(-energies))
        self.highest_training_gradient_norm_ = float(np.max(norms))

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
        energies, distance = self._inference_in_range(self._module(), X)
        return score_outside_range(-energies, distance, self.lowest_training_score_)

    def _gradient_norm_function(self):
        """The batch function of the input-gradient norms in X's units."""
        module = self._module()
        input_scale = torch.as_tensor(self.input_scale_, dtype=torch.float32)

        def gradient_norm(batch):
            return energy_input_gradient_norm(module, batch, input_scale)

        return gradient_norm

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

    @property
    def history_(self):
        """skorch ``History`` of the training, one entry per epoch."""
        check_is_fitted(self, "net_")
        return self.net_.history

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
