"""Named sets of estimator parameters: the paper's training recipe."""

__all__ = ["paper_settings"]

# 90k gradient steps at batch size 128 (Sec. 5) are 192 epochs of a 60,000-image set.
_PAPER_EPOCHS_OF_60000_IMAGES = 192

_PAPER_SETTINGS = {
    "n_components": 128,
    "encoder": "auto",
    "max_iter": _PAPER_EPOCHS_OF_60000_IMAGES,
    "batch_size": 128,
    "learning_rate": 1e-4,
    "objective": "pcd",
    "sgld_steps": 60,
    "sgld_step_size": 1.0,
    "sgld_noise": 7.5e-3,
    "buffer_size": 5000,
    "buffer_reinit_fraction": 0.05,
    "chain_init": "uniform",
    "energy_l2": 5e-3,
    "data_noise": 0.03,
}


def paper_settings():
    """The training recipe of Wu et al. (2021), as keyword arguments of the CEBM estimators.

    Section 5 and Appendix C of the paper: 128 latent dimensions, persistent contrastive
    divergence with 60 SGLD steps (gradient multiplier 1, noise std 7.5e-3, in pixel units
    scaled to [-1, 1]) from a replay buffer of 5,000 chains of which 5% restart from
    uniform noise, batches of 128, Adam with learning rate 1e-4, an L2 penalty of 5e-3 on
    the energies, Gaussian noise of std 0.03 on the data, and 90k gradient steps, which
    ``max_iter=192`` gives on a 60,000-image training set. On a two-core CPU one such step
    takes about 1.5 s (``benchmarks/results/throughput.md``), so the whole recipe takes
    days; it is meant for a GPU, or for reproducing the paper. The estimators' own defaults
    are tuned for useful codes within minutes on a CPU instead
    (``benchmarks/results/time_to_accuracy``).

    Returns
    -------
    dict
        A new dict on every call, so changing it changes nothing else. Pass it with
        ``image_shape`` (and, for :class:`~sklearn_cebm.GMMCEBMClusterer`, ``n_clusters``).

    Examples
    --------
    >>> from sklearn_cebm import CEBMEncoder, paper_settings
    >>> settings = paper_settings()
    >>> settings["sgld_steps"], settings["learning_rate"], settings["max_iter"]
    (60, 0.0001, 192)
    >>> encoder = CEBMEncoder(**settings, image_shape=(1, 28, 28))
    >>> encoder.get_params()["buffer_size"]
    5000
    """
    return dict(_PAPER_SETTINGS)
