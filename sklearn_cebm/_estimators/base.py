"""What every estimator of this package shares: a network trained on scaled inputs.

:class:`BaseNeuralEstimator` owns the parameters of the network and its training, the
input checks, the affine scaling into the box ``[-1, 1]``, building and training the skorch
net with ``fit`` and ``partial_fit`` (all or nothing: a failed call leaves the estimator
as it was); batched inference comes from
:class:`~sklearn_cebm._estimators.inference.InferenceMixin`. Subclasses supply the torch
module and the net that trains it; those whose module is an energy add its scores
(:class:`~sklearn_cebm._estimators.inference.DensityScoresMixin`), the energy-based ones
their sampler in :mod:`sklearn_cebm._estimators.energy_base`.
"""

import contextlib
import copy
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from .._core.encoders import initialize_layers
from .._training.batching import batch_indexing_loader
from .._training.checkpoint import CHECKPOINT_FORMAT, EpochCheckpoint, dump_atomically
from .._training.nets import TrainingInterrupted, check_callbacks
from .checks import _check_no_bools, _check_sizes, _same_setting
from .inference import InferenceMixin
from .network import _build_encoder, _check_custom_encoder, _resolve_device
from .scaling import (
    check_input_range,
    fit_input_range,
    to_unit_range,
    unit_range_of,
)
from .seeds import int32_seeds

__all__ = ["BaseNeuralEstimator", "copy_sharing_user_callbacks"]


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


class BaseNeuralEstimator(InferenceMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of every estimator of this package; not for direct use.

    Subclasses supply :meth:`_build_module` (the torch model around the built encoder)
    and :meth:`_build_net` (the skorch net that trains it), and their own ``__init__``
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

    def _record_training_score_extremes(self, X):
        """Keep what scoring new inputs needs from the training ``X``; nothing by default.

        Runs after every training call, inside its rollback.
        """

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
