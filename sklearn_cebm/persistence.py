"""Saving and loading fitted estimators without pickle: JSON and safetensors in one zip file.

``joblib.dump`` and ``pickle`` round trips are exact, but loading a pickle runs whatever
code the file names, so a model from someone else is as safe as a program from them.
:func:`save` writes a zip file that holds two members: ``model.json`` (the format's name
and version, the estimator's class name, its parameters, its fitted attributes and the
net's plain settings and history) and ``tensors.safetensors`` (every array and tensor:
the network's weights, Adam's moments, the replay buffer, the chain start, the input
scaling, ``labels_``...). :func:`load` parses JSON and safetensors only, builds the
estimator from a class of this package named in the file (no other), rebuilds the
network by the estimator's own build path from the saved parameters and loads the saved
state into it. Nothing in the file is executed.

What cannot be rebuilt from plain values (a custom ``encoder=`` module, user
``callbacks``, a subclass of the estimators) is refused at saving: use joblib for those.
"""

import copy
import json
import zipfile

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from skorch.history import History

from ._clustering.clusterer import GMMCEBMClusterer
from ._clustering.gmm_vae import GMMVAEClusterer
from ._core.chain_init import GaussianChainInit, UniformChainInit
from ._core.sgld import ReplayBuffer
from ._core.weight_average import WeightAverage
from ._estimators.network import _device_available
from ._outliers.detector import CEBMOutlierDetector
from ._outliers.typicality import TypicalityTest
from ._representation.bigan import BIGANEncoder
from ._representation.encoder import CEBMEncoder
from ._representation.igebm import IGEBMEncoder
from ._representation.vae import VAEEncoder

__all__ = ["load", "save"]

#: Version of the file format; :func:`load` refuses files of any other.
FORMAT_VERSION = 1
_FORMAT_NAME = "sklearn-cebm"
_METADATA_MEMBER = "model.json"
_TENSORS_MEMBER = "tensors.safetensors"

# The only classes a file can name: the estimators, and the sampler's state objects.
_ESTIMATORS = {
    cls.__name__: cls
    for cls in (
        BIGANEncoder,
        CEBMEncoder,
        CEBMOutlierDetector,
        GMMCEBMClusterer,
        GMMVAEClusterer,
        IGEBMEncoder,
        VAEEncoder,
    )
}
_STATE_OBJECTS = {
    cls.__name__: cls
    for cls in (
        GaussianChainInit,
        ReplayBuffer,
        UniformChainInit,
        WeightAverage,
        # The typicality score's densities (CEBMOutlierDetector.typicality_test_): fitted
        # scikit-learn objects whose attributes are all plain values and arrays.
        TypicalityTest,
        Pipeline,
        StandardScaler,
        GaussianMixture,
    )
}

# Attributes of the skorch net that its build path (the estimator's _build_model and
# _build_net, then skorch's initialize) recreates from the parameters: never saved. Every
# other attribute of the net is saved: the state dicts of these three...
_NET_STATE_DICTS = ("module_", "criterion_", "optimizer_")
_NET_REBUILT = frozenset(
    {
        "module",
        "criterion",
        "optimizer",
        "iterator_train",
        "iterator_valid",
        "dataset",
        "train_split",
        "callbacks",
        "callbacks_",
        "prefixes_",
        "cuda_dependent_attributes_",
        "virtual_params_",
        "init_context_",
        "initialized_",
        "predict_nonlinearity",
        "torch_load_kwargs",
        "device",  # chosen at loading: the saved device where available, else the CPU
        "_modules",
        "_criteria",
        "_optimizers",
        "_params_to_validate",
        "_device_generator",  # derived from random_generator_ on demand
    }
)
# The clusterer's frozen copy of module_, saved as a state dict and loaded into a copy of
# the rebuilt module_.
_NET_DENSITY = "density_module_"
# ...and the rest by value. Of those, what only further training reads.
_TRAINING_ONLY = frozenset(
    {"optimizer_", "replay_buffer_", "weight_average_", "training_weights_", "density_average_"}
)


def _unsavable(what, why):
    return ValueError(
        f"Cannot save {what} in sklearn-cebm's safe format: {why}. Use joblib.dump for this "
        "estimator instead (a joblib file runs code when loaded: load only files you trust)."
    )


class _Writer:
    """Turns values into JSON, keeping tensors and arrays aside for safetensors."""

    def __init__(self):
        self.tensors = {}
        self._objects = {}

    def _tensor(self, tensor):
        """The entry of ``tensor``: its key in safetensors, and its strides if not C order."""
        key = f"t{len(self.tensors)}"
        # A copy of its own: safetensors refuses tensors that share memory.
        self.tensors[key] = tensor.detach().to("cpu", copy=True).contiguous()
        # safetensors stores C order; a transposed layout is restored, as the order of a
        # matrix product's sums, and so its last bits, follow it (the chain start's scale).
        if not tensor.is_contiguous() and _is_dense(tensor):
            return {"key": key, "stride": list(tensor.stride())}
        return {"key": key}

    def encode(self, value, where):
        """A JSON-able form of ``value``; ``where`` names it in errors."""
        if value is None or type(value) in (bool, int, float, str):
            return value
        if isinstance(value, list) and not isinstance(value, History):
            return [self.encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, tuple):
            items = [self.encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return {"__type__": "tuple", "items": items}
        if isinstance(value, dict):
            items = [
                [self.encode(key, f"{where} key"), self.encode(item, f"{where}[{key!r}]")]
                for key, item in value.items()
            ]
            return {"__type__": "dict", "items": items}
        if isinstance(value, (np.ndarray, np.generic)):
            return self._encode_numpy(value, where)
        return self._encode_torch_or_object(value, where)

    def _encode_numpy(self, value, where):
        if isinstance(value, np.generic):
            return {"__type__": "numpy_scalar", "dtype": value.dtype.str, "value": value.item()}
        if value.dtype.kind in "OUS":
            items = value.tolist()
            if value.dtype.kind == "O" and not all(isinstance(v, str) for v in value.flat):
                raise _unsavable(where, "it is an object array that holds more than strings")
            return {"__type__": "text_array", "dtype": value.dtype.str, "items": items}
        tensor = torch.from_numpy(value.copy(order="K"))
        return {"__type__": "ndarray", **self._tensor(tensor)}

    def _encode_torch_or_object(self, value, where):
        if isinstance(value, torch.Tensor):
            return {"__type__": "tensor", **self._tensor(value)}
        if isinstance(value, torch.device):
            return {"__type__": "device", "value": str(value)}
        if isinstance(value, torch.Generator):
            return {"__type__": "generator", **self._tensor(value.get_state())}
        if isinstance(value, np.random.RandomState):
            state = self.encode(value.get_state(legacy=False), where)
            return {"__type__": "random_state", "state": state}
        if isinstance(value, History):
            return {"__type__": "history", "items": self.encode(list(value), where)}
        if type(value).__name__ in _STATE_OBJECTS and type(value) in _STATE_OBJECTS.values():
            if id(value) in self._objects:  # the chain start the replay buffer shares
                return {"__type__": "ref", "index": self._objects[id(value)]}
            index = self._objects[id(value)] = len(self._objects)
            state = self.encode(dict(vars(value)), where)
            name = type(value).__name__
            return {"__type__": "object", "class": name, "index": index, "state": state}
        raise _unsavable(where, f"it holds a {type(value).__module__}.{type(value).__name__}")


class _Reader:
    """Turns :class:`_Writer`'s JSON back into values, with tensors from safetensors."""

    def __init__(self, tensors):
        self.tensors = tensors
        self._objects = {}

    def decode(self, value):
        """The value ``value`` (JSON) stands for."""
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        kind = value.get("__type__")
        decoders = {
            "tuple": lambda: tuple(self.decode(item) for item in value["items"]),
            "dict": lambda: {self.decode(k): self.decode(v) for k, v in value["items"]},
            "numpy_scalar": lambda: np.dtype(value["dtype"]).type(value["value"]),
            "text_array": lambda: np.array(value["items"], dtype=value["dtype"]),
            "ndarray": lambda: self._tensor(value).numpy(),
            "tensor": lambda: self._tensor(value),
            "device": lambda: torch.device(value["value"]),
            "generator": lambda: torch.Generator().set_state(self.tensors[value["key"]]),
            "random_state": lambda: _random_state(self.decode(value["state"])),
            "history": lambda: History(self.decode(value["items"])),
            "object": lambda: self._decode_object(value),
            "ref": lambda: self._objects[value["index"]],
        }
        if kind not in decoders:
            raise ValueError(f"The model file is corrupt: unknown entry type {kind!r}.")
        return decoders[kind]()

    def _tensor(self, entry):
        tensor = self.tensors[entry["key"]]
        if "stride" not in entry:
            return tensor
        return torch.empty_strided(tensor.shape, entry["stride"], dtype=tensor.dtype).copy_(tensor)

    def _decode_object(self, value):
        cls = _STATE_OBJECTS.get(value["class"])
        if cls is None:
            raise ValueError(f"The model file names an unknown class {value['class']!r}.")
        obj = cls.__new__(cls)
        self._objects[value["index"]] = obj
        obj.__dict__.update(self.decode(value["state"]))
        return obj


def _is_dense(tensor):
    """Whether ``tensor`` fills its memory without gaps in some order of its dimensions."""
    expected = 1
    for dim in sorted(range(tensor.dim()), key=tensor.stride):
        if tensor.size(dim) > 1 and tensor.stride(dim) != expected:
            return False
        expected *= tensor.size(dim)
    return True


def _random_state(state):
    random_state = np.random.RandomState()
    random_state.set_state(state)
    return random_state


def _check_savable(estimator):
    """Refuse what the safe format cannot rebuild from plain values."""
    cls = type(estimator)
    if _ESTIMATORS.get(cls.__name__) is not cls:
        raise _unsavable(
            f"a {cls.__name__}", "only the package's estimators themselves can be rebuilt"
        )
    check_is_fitted(estimator, "net_")
    built = getattr(estimator, "_params_at_build", {})
    for params in (estimator.get_params(deep=False), built):
        if isinstance(params.get("encoder"), torch.nn.Module):
            raise _unsavable(
                f"this {cls.__name__}",
                "its encoder is a custom torch module, whose code the file cannot hold",
            )
        if params.get("callbacks"):
            raise _unsavable(
                f"this {cls.__name__}",
                "it has user callbacks, which cannot be rebuilt from plain values",
            )


def _encode_net(net, writer, inference_only):
    """The net's state: its state dicts, then every attribute its build path does not make."""
    state_dicts, attributes = {}, {}
    for name, value in vars(net).items():
        if name in _NET_REBUILT or (inference_only and name in _TRAINING_ONLY):
            continue
        if name in _NET_STATE_DICTS or (name == _NET_DENSITY and value is not None):
            state_dicts[name] = writer.encode(value.state_dict(), f"net_.{name}")
            continue
        if inference_only and isinstance(value, History):
            # The epochs' rows, without the per-batch records: later training still
            # counts its epochs (the mixtures' stages do).
            value = History([{**row, "batches": []} for row in value])
        attributes[name] = writer.encode(value, f"net_.{name}")
    return {"state_dicts": state_dicts, "attributes": attributes}


def save(estimator, path, *, inference_only=False):
    """Save a fitted estimator to ``path`` in a format whose loading runs no code.

    The file is a zip of ``model.json`` and ``tensors.safetensors`` (see
    :mod:`sklearn_cebm.persistence`). It holds the estimator's parameters and every fitted
    attribute (the input scaling and training range, ``labels_``, the mixture's means,
    stds and weights, ``offset_``...), and of its net the weights, the SGLD chain start,
    the training history, the generators' states, and, unless ``inference_only``, Adam's
    state and the replay buffer's chains: :func:`load` then gives an estimator whose
    outputs, samples and further training are bit-identical to this one's.

    Parameters
    ----------
    estimator : estimator
        A fitted estimator of this package, with ``encoder`` one of 'auto', 'mlp' or
        'cnn' and no ``callbacks``.
    path : str or path-like or file-like object
        Where to write the zip file.
    inference_only : bool, default=False
        Leave out what only further training reads: Adam's moment estimates, the replay
        buffer's persistent chains and the per-batch records of the history (its
        per-epoch rows are kept). Outputs and samples are unchanged; training the loaded
        model further restarts Adam and the chains. A default ``CEBMEncoder`` trained on
        the 1,797 digits takes 2.5 MB in full and 0.57 MB inference-only (joblib: 3.2
        MB): Adam keeps two numbers per weight, and the replay buffer 5,000 chains.

    Raises
    ------
    ValueError
        If the estimator holds what cannot be rebuilt from plain values: a custom encoder
        module, user callbacks, a subclass of the estimators, or an attribute of a type
        the format does not know. The message says to use joblib.
    NotFittedError
        If the estimator is not fitted.

    See Also
    --------
    load : Load an estimator saved by this function.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import CEBMEncoder
    >>> from sklearn_cebm.persistence import load, save
    >>> X, _ = load_digits(return_X_y=True)
    >>> encoder = CEBMEncoder(n_components=4, max_iter=1, random_state=0).fit(X[:100])
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.zip")
    >>> save(encoder, path, inference_only=True)
    >>> bool((load(path).transform(X[:5]) == encoder.transform(X[:5])).all())
    True
    """
    _check_savable(estimator)
    writer = _Writer()
    params = estimator.get_params(deep=False)
    attributes = {
        name: writer.encode(value, name)
        for name, value in vars(estimator).items()
        if name not in params and name != "net_"
    }
    metadata = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "inference_only": bool(inference_only),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "params": writer.encode(params, "params"),
        "attributes": attributes,
        "net": _encode_net(estimator.net_, writer, inference_only),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_METADATA_MEMBER, json.dumps(metadata))
        archive.writestr(_TENSORS_MEMBER, save_tensors(writer.tensors))


def _read_archive(path):
    """The metadata and tensors of a file written by :func:`save`, its format checked."""
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read(_METADATA_MEMBER))
            tensor_bytes = archive.read(_TENSORS_MEMBER)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path!r} is not a model file written by sklearn_cebm.persistence.save: {error}"
        ) from error
    if not isinstance(metadata, dict) or metadata.get("format") != _FORMAT_NAME:
        raise ValueError(f"{path!r} is not a model file written by sklearn_cebm.persistence.save.")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written in sklearn-cebm's model format version {version!r}; this "
            f"version of sklearn-cebm reads version {FORMAT_VERSION} only. Load it with the "
            "sklearn-cebm version that saved it, or save the model again from the original."
        )
    return metadata, load_tensors(tensor_bytes)


def _loading_device(saved):
    """Where the loaded model goes: where it was trained when torch has that here, else CPU."""
    if saved is not None and _device_available(saved):
        return saved
    return torch.device("cpu")


def _rebuild_net(estimator, net_state, reader, device):
    """The estimator's net built by its own build path, with the saved state loaded into it.

    The network is built from the parameters it was built with (``_params_at_build``),
    which ``set_params`` after fit may have changed since; its random initialisation is
    overwritten by the saved state.
    """
    params = dict(estimator.get_params(deep=False), **getattr(estimator, "_params_at_build", {}))
    builder = type(estimator)(**dict(params, device=str(device)))
    X_unit = np.zeros((1, estimator.n_features_in_), dtype=np.float32)
    module = builder._build_model(X_unit, torch.Generator().manual_seed(0))
    net = builder._build_net(module, builder._skorch_params(device, 0), 0)
    density_state = net_state["state_dicts"].pop(_NET_DENSITY, None)
    for name, state_dict in net_state["state_dicts"].items():
        getattr(net, name).load_state_dict(reader.decode(state_dict))
    if density_state is not None:
        density = copy.deepcopy(net.module_)
        density.load_state_dict(reader.decode(density_state))
        net.set_density_module(density)
    for name, value in net_state["attributes"].items():
        setattr(net, name, reader.decode(value))
    return net


def load(path):
    """Load an estimator saved by :func:`save`, running no code from the file.

    The file is read as JSON and safetensors only; the estimator's class must be one of
    this package's, and its network is rebuilt by the estimator's own build path from the
    saved parameters before the saved weights and state are loaded into it. The model
    goes on the device it was trained on when torch has that device here, and on the CPU
    otherwise (``device_`` says which): a model trained on CUDA loads on a machine
    without a GPU. Its ``device`` parameter is kept as saved.

    Parameters
    ----------
    path : str or path-like or file-like object
        A file written by :func:`save`.

    Returns
    -------
    estimator : estimator
        The fitted estimator: its ``transform``, ``score_samples``, ``predict``,
        ``predict_proba`` and ``sample`` give bit-identical results to the saved one's.

    Raises
    ------
    ValueError
        If the file is not one written by :func:`save`, was written in another version
        of the format (``FORMAT_VERSION``), or names a class that is not an estimator of
        this package.

    See Also
    --------
    save : Save a fitted estimator.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_cebm import GMMCEBMClusterer
    >>> from sklearn_cebm.persistence import load, save
    >>> X, _ = load_digits(return_X_y=True)
    >>> clusterer = GMMCEBMClusterer(n_clusters=3, n_components=4, max_iter=1,
    ...                              clustering_updates=100, random_state=0).fit(X[:100])
    >>> path = os.path.join(tempfile.mkdtemp(), "clusterer.zip")
    >>> save(clusterer, path)
    >>> loaded = load(path)
    >>> bool((loaded.predict_proba(X) == clusterer.predict_proba(X)).all())
    True
    """
    metadata, tensors = _read_archive(path)
    cls = _ESTIMATORS.get(metadata.get("estimator"))
    if cls is None:
        raise ValueError(
            f"{path!r} holds a {metadata.get('estimator')!r}, which is not an estimator of "
            f"sklearn-cebm ({', '.join(sorted(_ESTIMATORS))})."
        )
    reader = _Reader(tensors)
    estimator = cls(**reader.decode(metadata["params"]))
    estimator._validate_params()
    attributes = {name: reader.decode(value) for name, value in metadata["attributes"].items()}
    device = _loading_device(attributes.get("device_"))
    estimator.__dict__.update(attributes, device_=device)
    estimator.net_ = _rebuild_net(estimator, metadata["net"], reader, device)
    return estimator
