"""Training a BiGAN on skorch: simultaneous gradient steps of the three players.

Knows torch and skorch, not scikit-learn. :class:`~sklearn_cebm.BIGANEncoder` builds an
:class:`AdversarialNet` around a :class:`~sklearn_cebm._core.bigan.BidirectionalGAN`;
:class:`GameMonitor` watches the game for the collapses adversarial training is known for.
"""

import warnings

import torch
from skorch.callbacks import Callback
from skorch.dataset import unpack_data

from .._core.model import INFERENCE_BATCH_SIZE, map_batches
from .nets import SeededNet

__all__ = ["AdversarialNet", "GameCollapseWarning", "GameMonitor"]

# A discriminator logit beyond this magnitude has run away: its sigmoid is 0 or 1 to
# float32's precision, where a healthy game keeps logits within tens.
LOGIT_MAGNITUDE_LIMIT = 1e6
# An epoch whose discriminator classifies at least this share of the pairs right has won:
# the encoder's and generator's gradients then carry little about the data.
WON_ACCURACY = 0.99
# An epoch whose generated batches spread less than this share of the data's: the
# generator puts its draws on a few points (mode collapse).
COLLAPSED_SPREAD = 0.1


class GameCollapseWarning(UserWarning):
    """Adversarial training collapsed: the discriminator won, or the generator's samples did.

    Issued at most once per training call by the BiGAN's :class:`GameMonitor`; every
    epoch's verdict is in ``history_`` as ``collapse`` (an empty string when the game was
    healthy), beside the ``discriminator_accuracy`` and ``sample_spread`` it rests on.

    Examples
    --------
    >>> import warnings
    >>> from sklearn_cebm import GameCollapseWarning
    >>> issubclass(GameCollapseWarning, UserWarning)
    True
    """


def collapse_verdict(discriminator_accuracy, sample_spread, widest_earlier_spread):
    """What collapsed in an epoch with these means, or ``''`` when nothing did.

    A generator starts near one point (its initial weights map every code close to the
    box's centre): a narrow spread is a collapse once an earlier epoch's was wider than
    :data:`COLLAPSED_SPREAD`, not before (:class:`GameMonitor` reports a generator that
    never spreads at the end of training).
    """
    verdicts = []
    if discriminator_accuracy >= WON_ACCURACY:
        verdicts.append(
            f"the discriminator won (it classified {discriminator_accuracy:.1%} of the pairs "
            "right), so the encoder and the generator learn little more"
        )
    if sample_spread < COLLAPSED_SPREAD <= widest_earlier_spread:
        verdicts.append(
            f"the generator collapsed (its samples spread {sample_spread:.3g} of the data's, "
            f"after {widest_earlier_spread:.3g} in an earlier epoch)"
        )
    return "; ".join(verdicts)


class GameMonitor(Callback):
    """Judge each epoch of the game, record the verdict, and warn once per training call.

    Records ``collapse`` in the epoch's history: :func:`collapse_verdict` of its mean
    ``discriminator_accuracy`` and ``sample_spread``, against the widest spread of the
    net's earlier epochs. At the end of a training call whose generator never spread
    its samples beyond :data:`COLLAPSED_SPREAD` of the data's, the last epoch's verdict
    says so. A collapse issues a :class:`GameCollapseWarning` naming the epoch and what
    to change.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.warned_ = False

    def on_epoch_end(self, net, **kwargs):
        epoch = net.history[-1]
        verdict = collapse_verdict(
            epoch["discriminator_accuracy"], epoch["sample_spread"], _widest_spread(net, -1)
        )
        net.history.record("collapse", verdict)
        self._warn(epoch, verdict)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        epoch = net.history[-1] if len(net.history) else None
        if epoch is None or "collapse" not in epoch:
            return  # no epoch ended (an interrupt in the first)
        widest = _widest_spread(net, None)
        if widest < COLLAPSED_SPREAD:
            never = (
                f"the generator never spread its samples (at most {widest:.3g} of the "
                "data's spread in any epoch)"
            )
            verdict = "; ".join(filter(None, [epoch["collapse"], never]))
            net.history.record("collapse", verdict)
            self._warn(epoch, verdict)

    def _warn(self, epoch, verdict):
        if verdict and not self.warned_:
            self.warned_ = True
            warnings.warn(
                f"Adversarial training collapsed in epoch {epoch['epoch']}: {verdict}. "
                "Lower learning_rate, train longer or on more data; history_ records each "
                "epoch's verdict ('collapse').",
                GameCollapseWarning,
                stacklevel=2,
            )


def _widest_spread(net, end):
    """The widest mean ``sample_spread`` of the net's epochs before ``end`` (0 if none)."""
    spreads = [epoch.get("sample_spread", 0.0) for epoch in net.history[:end]]
    return max(spreads, default=0.0)


class AdversarialNet(SeededNet):
    """A skorch net whose training step moves the three players of a BiGAN at once.

    Each step draws the encoder's reparameterisation noise and a batch of prior codes from
    the net's own generator (on the CPU, then moved, so the run is reproducible on any
    device), evaluates the module's losses once, and gives the discriminator the gradient
    of its loss and the encoder and generator that of theirs (simultaneous gradient play:
    one forward pass serves both, and one optimiser steps all the weights). ``train_loss``
    is the discriminator's loss, ``-V(D, E, G)``; the generator's loss, the
    discriminator's accuracy and the samples' spread are recorded per batch and averaged
    per epoch in ``history``, where :class:`GameMonitor` judges them.

    Parameters
    ----------
    **kwargs
        Passed to :class:`~sklearn_cebm._training.nets.SeededNet` (``seed``, of the
        generator of the noise) and :class:`skorch.NeuralNet`.
    """

    recorded = ("generator_loss", "discriminator_accuracy", "sample_spread")
    shown = "discriminator_accuracy"

    def __init__(self, module, *args, criterion=torch.nn.Identity, **kwargs):
        super().__init__(module, criterion, *args, **kwargs)

    def _monitoring_callbacks(self):
        return [("game_monitor", GameMonitor())]

    def train_step_single(self, batch, **fit_params):
        """One step's gradients for every player; records the batch's diagnostics."""
        self._set_training(True)
        x, _ = unpack_data(batch)
        x = x.to(self.device, torch.float32)
        module = self.module_
        draws = torch.randn((2, x.shape[0], module.n_latent), generator=self.random_generator_)
        draws = draws.to(self.device)
        losses = module.losses(x, draws[0], draws[1])
        if not bool(torch.isfinite(losses.discriminator) & torch.isfinite(losses.generator)):
            raise self.diverged("non-finite adversarial loss")
        if losses.largest_logit > LOGIT_MAGNITUDE_LIMIT:
            raise self.diverged(
                f"a discriminator logit reached {float(losses.largest_logit):.3g}, beyond "
                f"{LOGIT_MAGNITUDE_LIMIT:g}"
            )
        discriminator, others = module.player_parameters()
        for loss, parameters in (
            (losses.discriminator, discriminator),
            (losses.generator, others),
        ):
            trained = [parameter for parameter in parameters if parameter.requires_grad]
            gradients = torch.autograd.grad(loss, trained, retain_graph=True, allow_unused=True)
            for parameter, gradient in zip(trained, gradients, strict=True):
                parameter.grad = torch.zeros_like(parameter) if gradient is None else gradient
        self.history.record_batch("generator_loss", losses.generator.item())
        self.history.record_batch("discriminator_accuracy", losses.discriminator_accuracy.item())
        self.history.record_batch("sample_spread", losses.sample_spread.item())
        return {"loss": losses.discriminator.detach(), "y_pred": None}

    def sample(self, n_samples, seed):
        """``G(z)`` for ``n_samples`` draws of z from ``N(0, I)``, on the CPU.

        The draws come from a CPU generator seeded with ``seed``, so they are the same on
        any device.
        """
        self.module_.eval()
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn((n_samples, self.module_.n_latent), generator=generator)
        device = torch.device(self.device)
        return map_batches(self.module_.generate, z, INFERENCE_BATCH_SIZE, device)
