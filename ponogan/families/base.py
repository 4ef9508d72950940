"""What every family trainer shares: building nets and optimizers, preparing them, small helpers.

The family's spec (``ponogan.families.spec.Family``) says what a run of it is; its trainer, a
subclass of ``FamilyTrainer``, does the training. A trainer owns its networks (``nets``), optimizers
and schedulers, and knows one update rule: ``step(batch) -> {loss name: float}``. The loop
(``ponogan.training.loop``) owns everything else: data order, accumulation context, checkpoints,
logging, evaluation.

Every generator and discriminator is initialised as its family's original code does it when it is
built (``model.init_type`` / ``init_type_d`` / ``init_gain``, see ``ponogan.models.init``); a resumed
run then loads its saved weights over them. With ``gan_mode: wgangp`` each family adds
``loss.gp`` x the WGAN-GP gradient penalty (``penalty``) to its discriminator update.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from accelerate import Accelerator
from torch import nn

from ponogan.families import get_family
from ponogan.families.spec import Family
from ponogan.models import create_discriminator, create_generator
from ponogan.models.init import init_weights
from ponogan.training.config import TrainConfig
from ponogan.training.losses import GANLoss, gradient_penalty
from ponogan.training.schedules import make_scheduler

Batch = dict[str, Any]


def set_requires_grad(nets: nn.Module | Iterable[nn.Module], flag: bool) -> None:
    """Freeze / unfreeze whole networks (discriminators during the generator update)."""
    for net in [nets] if isinstance(nets, nn.Module) else nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def f32(x: Any) -> Any:
    """Cast a tensor (or a list of them, multi-scale scores) to float32: losses run in fp32 under bf16."""
    if isinstance(x, torch.Tensor):
        return x.float()
    return [f32(t) for t in x]


class FamilyTrainer(ABC):
    """Base class: subclasses implement build, step, translate.

    ``nets`` maps names (``G``, ``D``, ...) to modules (accelerate-prepared after ``prepare()``),
    ``optimizers`` / ``schedulers`` map names to their objects. ``family`` is the run's spec; its
    ``roles`` name the nets ``model.safetensors`` holds (see ``generators()``). ``gan_scale_reduction``
    combines a multi-scale D's per-scale GAN losses (``GANLoss``).
    """

    gan_scale_reduction: ClassVar[str] = "mean"

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator):
        self.cfg = cfg
        self.family: Family = get_family(cfg.family)
        self.accelerator = accelerator
        self.loss_cfg = cfg.loss
        self.gan_loss = GANLoss(cfg.loss.gan_mode, scale_reduction=self.gan_scale_reduction)
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        self.build()

    # ---- building
    @property
    def input_nc(self) -> int:
        return self.cfg.data.options.input_nc

    @property
    def output_nc(self) -> int:
        return self.cfg.data.options.output_nc

    @property
    def init_types(self) -> tuple[str, str]:
        """``(generator init, discriminator init)`` of the config (``TrainConfig`` fills in the family's)."""
        return (self.cfg.model.init_type, self.cfg.model.init_type_d)

    def make_generator(self, in_channels: int, out_channels: int | None) -> nn.Module:
        """A freshly built generator, initialised with ``init_types[0]`` and ``model.init_gain``."""
        model = self.cfg.model
        kwargs = {**model.generator_kwargs, "in_channels": in_channels, "shortcut": model.shortcut}
        if out_channels is not None:
            kwargs["out_channels"] = out_channels
        return init_weights(create_generator(model.generator, **kwargs), self.init_types[0], model.init_gain)

    def make_discriminator(self, in_channels: int) -> nn.Module:
        """A freshly built discriminator, initialised with ``init_types[1]`` and ``model.init_gain``."""
        kwargs = {**self.cfg.model.discriminator_kwargs, "in_channels": in_channels}
        net = create_discriminator(self.cfg.model.discriminator, **kwargs)
        return init_weights(net, self.init_types[1], self.cfg.model.init_gain)

    def add_optimizer(self, name: str, params: Iterable[nn.Parameter], lr: float) -> None:
        o = self.cfg.optim
        opt = torch.optim.Adam(list(params), lr=lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
        self.optimizers[name] = opt
        self.schedulers[name] = make_scheduler(opt, o, self.cfg.train.max_steps)

    @abstractmethod
    def build(self) -> None:
        """Create ``nets`` and their optimizers (``add_optimizer``)."""

    def prepare(self) -> None:
        """Hand nets and optimizers to accelerate (device placement, DDP, mixed-precision forward)."""
        names, opt_names = list(self.nets), list(self.optimizers)
        # a tuple: every family has at least two nets and two optimizers
        prepared = self.accelerator.prepare(*self.nets.values(), *self.optimizers.values())
        self.nets = dict(zip(names, prepared[: len(names)], strict=True))
        self.optimizers = dict(zip(opt_names, prepared[len(names) :], strict=True))

    # ---- training
    @abstractmethod
    def step(self, batch: Batch) -> dict[str, float]:
        """One update of every network on ``batch`` (``A``, ``B``: ``(N, C, H, W)``); weighted losses."""

    @property
    def uses_gradient_penalty(self) -> bool:
        return self.loss_cfg.gan_mode == "wgangp"

    def penalty(self, critic: Any, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``loss.gp`` x WGAN-GP penalty of ``critic`` (an image ``(N, C, H, W)`` -> score map(s)) at
        interpolates of ``real`` and ``fake`` (``fake`` detached). Inputs and scores are cast to
        float32 (``f32``), so the interpolates, gradient norm and penalty are float32 under bf16
        autocast too (the critic's own forward/backward run under the run's autocast like every D call).
        """
        return self.loss_cfg.gp * gradient_penalty(lambda x: f32(critic(x)), f32(real), f32(fake))

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backward (scaled/accumulated by accelerate), optimizer step, zero the gradients."""
        self.accelerator.backward(loss)
        self.optimizers[name].step()
        self.optimizers[name].zero_grad(set_to_none=True)

    def unwrap(self, name: str) -> nn.Module:
        return self.accelerator.unwrap_model(self.nets[name])

    # ---- inference, checkpoints
    def generators(self) -> dict[str, nn.Module]:
        """``{role: unwrapped generator}`` for ``model.safetensors``."""
        return {name: self.unwrap(name) for name in self.family.roles}

    @abstractmethod
    def translate(self, real_a: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """A -> B ``(N, C, H, W)`` for evaluation and samples (called under no_grad with the nets in eval
        mode); ``index`` ``(N,)`` are the dataset indices (MUNIT draws a fixed style per index)."""

    def sample_columns(self, items: Batch, paired: bool) -> list[tuple[str, torch.Tensor]]:
        """The labelled columns of a sample grid (``ponogan.training.samples.labelled_grid``) for
        ``items`` (``A``, ``B`` if the data has it, ``index``), called like ``translate``: ``input |
        output``, and ``target`` (B) when ``paired`` (the test split pairs each A with its ground truth).
        Two-way families override it to show both directions and their reconstructions."""
        columns = [("input", items["A"]), ("output", self.translate(items["A"], items["index"]))]
        if paired and "B" in items:
            columns.append(("target", items["B"]))
        return columns

    def extra_state(self) -> dict[str, Any]:
        """Per-process state beyond nets/optimizers (image pools), saved in ``rank_<i>.pt``."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        return None


def create_trainer(cfg: TrainConfig, accelerator: Accelerator) -> FamilyTrainer:
    """Build ``cfg.family``'s nets, optimizers and schedulers (not yet prepared)."""
    return get_family(cfg.family).trainer_class()(cfg, accelerator)
