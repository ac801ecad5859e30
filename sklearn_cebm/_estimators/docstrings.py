"""Parameter and attribute docs written once, and the class decorator that fills them in.

Each estimator's docstring holds the placeholders ``{parameters}`` and
``{common_attributes}``; :func:`fill_docstring` replaces them with entries in the order of
the estimator's signature, each with the default the signature gives, so a documented
default cannot drift from the code. An estimator passes its own entries for what it adds
or words differently; ``tests/estimators/test_docstrings.py`` checks that every parameter is
documented and every documented parameter exists.
"""

import inspect
import textwrap

__all__ = ["PARAMETER_DOCS", "fill_docstring", "parse_entries"]

# Written as a docstring's entries, without defaults: they come from the signature.
_SHARED_PARAMETERS = """
n_components : int
    Latent dimension K.
encoder : {'auto', 'mlp', 'cnn'} or torch.nn.Module
    'cnn' is the paper's conv net (needs ``image_shape``), 'mlp' a SiLU network with
    ``hidden_layer_sizes``, 'auto' picks 'cnn' when ``image_shape`` is given. A module
    must map a batch shaped ``(n, *input_shape)`` to ``(n, 2 * n_components)``; its
    second half becomes the negative statistic ``t_2(x)``. A module is copied at fit and
    used with its own initial weights.
image_shape : tuple of int
    ``(channels, height, width)`` of each row of X, for the conv net. Images are scaled
    with one range for all pixels; otherwise each feature gets its own.
hidden_layer_sizes : tuple of int
    Hidden widths of the MLP encoder.
max_iter : int
    Training epochs.
batch_size : int
    Data examples (and as many model samples) per update.
learning_rate : float
    Adam's step size. The paper's is 1e-4 (see :func:`~sklearn_cebm.paper_settings`).
objective : {'pcd', 'dsm'}
    The training objective. 'pcd' is the paper's persistent contrastive divergence with
    SGLD and a replay buffer; 'dsm' is denoising score matching (Vincent, 2011), which
    needs no sampling (the ``sgld_steps``, ``buffer_*``, ``chain_init``, ``energy_l2``
    and ``data_noise`` settings are then unused) and is several times cheaper per
    update, but learns the density of the data convolved with ``dsm_noise``.
dsm_noise : float
    Std of the noise of denoising score matching, in the scaled units (the data span
    [-1, 1]); only used with ``objective='dsm'``.
sgld_steps : int
    SGLD steps per update. The paper takes 60; with the persistent chains, 5 steps and
    a larger ``learning_rate`` give better codes for the same training time on a CPU
    (``benchmarks/results/time_to_accuracy``).
sgld_step_size : float
    Multiplier of the energy gradient in each SGLD step, in the scaled units.
sgld_noise : float
    Std of the SGLD noise, in the scaled units.
buffer_size : int
    Persistent chains in the replay buffer.
buffer_reinit_fraction : float
    Share of each batch of chains restarted from their start (``chain_init``).
chain_init : {'uniform', 'gaussian'}
    Where SGLD chains start and restart: uniform noise on the scaled box [-1, 1] (the
    paper's), or a Gaussian with the mean and covariance of the training data (JEM++,
    Yang & Ji 2021), which puts short chains near the data from their first step.
    :meth:`sample` starts its chains there too.
energy_l2 : float
    Weight of the penalty on squared energies.
data_noise : float
    Std of the Gaussian noise added to training data, in the scaled units.
device : {'auto', 'cpu', 'cuda', 'cuda:N'} or torch.device
    Where to train; 'auto' takes CUDA when it is available. Another accelerator ('mps',
    'xpu') works where torch has it available; a device that torch cannot use here (the
    'meta' device included, which holds no data) is rejected at fit.
precision : {'auto', 'float32', 'bfloat16'}
    The precision of the network's convolutions and matrix products in training
    (``torch.autocast``). 'bfloat16' halves their inputs' bits and keeps float32
    accumulation; the statistics' log-normalisers, the energies, the SGLD chains, the
    parameters and the optimiser stay float32, and so does all inference (``transform``,
    ``score_samples``, ``predict``, ``sample``), whose codes need float32's resolution.
    'auto' takes bfloat16 where the device computes it natively (a CPU with AVX512-BF16
    or AMX, a CUDA GPU of compute capability 8.0 or more) and float32 elsewhere, so that
    the same ``random_state`` gives the same model on machines of the same kind only.
    The choice made is ``precision_``. See the training guide for what it buys.
ema_decay : float in [0, 1) or None
    When set, the fitted model's weights are an exponential moving average of the
    weights over the training updates, which each update moves by ``1 - ema_decay``
    towards its new weights; in the first updates by more, so that the average spans
    about the last tenth of them (up to ``1 / (1 - ema_decay)`` updates). Training goes
    on from the weights its updates reached, kept beside the average between calls.
    None uses the last update's weights.
callbacks : list of skorch callbacks
    Extra skorch callbacks (progress bar, checkpoints, LR schedulers). Training has no
    validation split (``train_split=None``), so a callback that monitors a validation
    score, as skorch's ``EarlyStopping`` and ``Checkpoint`` do by default, is rejected at
    fit: give it ``monitor='train_loss'`` (``'train_loss_best'`` for ``Checkpoint``).
verbose : int
    When positive, show one progress bar over the whole training call, on stderr
    (batches done of epochs x batches per epoch, rate, time left, the epoch in progress,
    the latest loss and energy gap; it replaces skorch's bar that restarted every
    epoch), and print skorch's per-epoch table on stdout (loss, energies, energy gap,
    chain movement, seconds). The table colours the best values only when stdout is a
    terminal and ``NO_COLOR`` is unset: a log file gets no ANSI escape codes.
random_state : int, RandomState instance or None
    Seeds the initial weights, the data order, the data noise and the chains.
warm_start : bool
    Continue training the previous fit's network on ``fit``. As for ``partial_fit``,
    the training settings changed by ``set_params`` since (``learning_rate``,
    ``batch_size``, ``max_iter``, ``verbose`` and the sampler's, ``energy_l2``,
    ``dsm_noise``, ``data_noise`` or ``n_elbo_draws``) take effect, while a changed
    parameter that built the network (``n_components``, ``n_clusters``,
    ``hidden_layer_sizes``, ``encoder``, ``image_shape``, ``objective``, ``device``,
    ``callbacks``, ...) raises a ``ValueError``: fit anew with ``warm_start=False``.
"""

# Fitted attributes every estimator has, after those it lists itself.
COMMON_ATTRIBUTES = """
n_iter_ : int
    Epochs trained in total.
input_center_, input_scale_ : ndarray of shape (`n_features_in_`,)
    The learned map ``(X - center) / scale`` into the sampler's box ``[-1, 1]``.
input_min_, input_max_ : ndarray of shape (`n_features_in_`,)
    The box the training data span (one range for all pixels with ``image_shape``), on
    which the model is defined.
lowest_training_score_ : float
    Lowest :meth:`score_samples` of the latest training X; out-of-range inputs score
    at least one below it.
highest_training_gradient_norm_ : float
    Largest :meth:`score_gradient_norm` of the latest training X; out-of-range inputs
    get at least one more.
device_ : torch.device
    Device the model was trained on.
n_features_in_ : int
    Number of features seen during fit.
feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Defined when X has string feature names.
"""

# Indentation of a section's entries inside a class docstring.
_INDENT = "    "


def parse_entries(text):
    """``{name: (type, description)}`` from numpydoc entries ``name : type`` + indented text.

    Parameters
    ----------
    text : str
        Entries as in a docstring's Parameters section, at any common indentation.

    Returns
    -------
    dict
    """
    entries, name = {}, None
    for line in textwrap.dedent(text).strip().splitlines():
        if line and not line[0].isspace():
            name, kind = (part.strip() for part in line.split(" : ", 1))
            entries[name] = (kind, [])
        else:
            entries[name][1].append(line)
    return {name: (kind, "\n".join(lines)) for name, (kind, lines) in entries.items()}


PARAMETER_DOCS = parse_entries(_SHARED_PARAMETERS)


def _entry(name, kind, description, default):
    body = textwrap.indent(textwrap.dedent(description).strip(), _INDENT)
    return f"{name} : {kind}, default={default!r}\n{body}"


def parameters_section(signature, docs):
    """The entries of a Parameters section: one per parameter of ``signature``, in order.

    Raises
    ------
    KeyError
        Naming a parameter that ``docs`` does not document.
    """
    entries = []
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        if name not in docs:
            raise KeyError(f"parameter {name!r} has no documentation")
        kind, description = docs[name]
        entries.append(_entry(name, kind, description, parameter.default))
    return "\n".join(entries)


# The common attributes only an estimator with a density has: its scores' extremes.
_SCORE_ATTRIBUTES = ("lowest_training_score_", "highest_training_gradient_norm_")


def _attributes_section(with_scores):
    """The common attributes' entries, with or without those of the scores.

    Their descriptions keep the indentation :func:`parse_entries` leaves them.
    """
    entries = parse_entries(COMMON_ATTRIBUTES)
    return "\n".join(
        f"{name} : {kind}\n{description}"
        for name, (kind, description) in entries.items()
        if with_scores or name not in _SCORE_ATTRIBUTES
    )


def fill_docstring(parameter_docs="", *, scores=True):
    """Class decorator: fill ``{parameters}`` and ``{common_attributes}`` in the docstring.

    Parameters
    ----------
    parameter_docs : str, default=""
        Docstring entries ``name : type`` with their indented descriptions, for the
        parameters the class adds or words differently from :data:`PARAMETER_DOCS`.
    scores : bool, default=True
        Whether the class has the density's scores, and so their fitted attributes
        (``lowest_training_score_``, ``highest_training_gradient_norm_``).

    Returns
    -------
    callable
        The decorator; it returns the class itself, with its ``__doc__`` filled in.
    """

    def decorate(cls):
        docs = {**PARAMETER_DOCS, **parse_entries(parameter_docs)}
        section = parameters_section(inspect.signature(cls.__init__), docs)
        attributes = _attributes_section(scores)
        doc = cls.__doc__.replace("{parameters}", textwrap.indent(section, _INDENT).lstrip())
        doc = doc.replace("{common_attributes}", textwrap.indent(attributes, _INDENT).lstrip())
        cls.__doc__ = doc
        return cls

    return decorate
