"""The network an estimator builds, and the device it trains on.

The encoder, built from the ``encoder``, ``image_shape`` and ``hidden_layer_sizes``
parameters or checked when it is the user's own module, and the ``device`` parameter
resolved to one that torch has here.
"""

import copy

import torch

from .._core.encoders import ConvEncoder, MLPEncoder

__all__ = ["uses_conv_net"]


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
