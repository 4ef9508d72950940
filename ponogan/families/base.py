"""What every family trainer shares: building nets and optimizers, preparing them, small helpers.

The family's spec (``ponogan.families.spec.Family``) says what a run of it is; its trainer, a
subclass of ``FamilyTrainer``, does the training. A trainer owns its networks (``nets``), optimizers
and schedulers, and knows one update rule: ``step(batch) -> {loss name: float}``. The loop
(``ponogan.training.loop``) owns everything else: data order, accumulation context, checkpoints,
logging, evaluation.

The networks come from the spec: ``build()`` creates every net ``Family.networks(input_nc, output_nc)``
lists, in its order (so the init draws, parameter order and state-dict keys follow the spec), and a
family's ``build`` adds only what is its own (image pools, extra parts, other optimizers). Every
generator and discriminator is initialised as its family's original code does it when it is built
(``model.init_type`` / ``init_type_d`` / ``init_gain``, see ``ponogan.models.init``); a resumed run
then loads its saved weights over them. With ``gan_mode: wgangp`` each family adds
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
    """Base class: subclasses implement step and translate, and extend build when they need more.

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

    def make_network(self, kind: str, in_channels: int, out_channels: int | None) -> nn.Module:
        """A freshly built and initialised net of ``kind``, a kind of ``Family.networks``: a generator
        (``make_generator``) or a discriminator (``make_discriminator``, which has no ``out_channels``)."""
        makers = {
            "generator": self.make_generator,
            "discriminator": lambda cin, _: self.make_discriminator(cin),
        }
        if kind not in makers:
            raise ValueError(
                f"family {self.family.name!r} lists a network of kind {kind!r}; kinds: {', '.join(makers)}"
            )
        return makers[kind](in_channels, out_channels)

    def group_networks(self, built: dict[str, nn.Module]) -> dict[str, nn.Module]:
        """The ``nets`` entries made of the built ``{role: net}``: the nets themselves. A family that
        puts several behind one module (MUNIT's auto-encoder pair) overrides it; the names of ``nets``
        are the keys of the run state (``<net>.<param>``)."""
        return dict(built)

    def build(self) -> None:
        """Build every net of ``family.networks(input_nc, output_nc)`` in its order (the order fixes the
        init draws taken from the global RNG), put them in ``nets`` (``group_networks``) and make two
        Adams: ``G`` over the generators' parameters (``optim.lr_g``) and, when the family has
        discriminators, ``D`` over theirs (``optim.lr_d``), both in spec order. A family extends it
        (``super().build()`` first) with what is its own: image pools, extra parts, more optimizers."""
        shapes = self.family.networks(self.input_nc, self.output_nc)
        built = {role: self.make_network(kind, cin, cout) for role, kind, cin, cout in shapes}
        self.nets.update(self.group_networks(built))
        optim = self.cfg.optim
        for name, kind, lr in (("G", "generator", optim.lr_g), ("D", "discriminator", optim.lr_d)):
            params = [
                p for role, net_kind, _, _ in shapes if net_kind == kind for p in built[role].parameters()
            ]
            if params:
                self.add_optimizer(name, params, lr)

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

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Replace each gradient of ``params`` by its mean over the processes (no-op on one process).

        The DDP wrapper averages gradients during ``backward`` only for a net called through its own
        ``forward``; a family that drives a net through its methods (DRIT's encoders and decoders)
        calls this after each ``backward`` instead, so every process steps with the same gradient."""
        if self.accelerator.num_processes == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
        for grad, mean in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(mean.view_as(grad))

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

    def cycle_roles(self) -> tuple[str, str] | None:
        """``(A->B role, B->A role)`` when each direction is one network of its own (both routes with
        ``source == target``, two different roles: CycleGAN's ``G_A``, ``G_B``), else None."""
        routes = self.family.routes
        if "AtoB" not in routes or "BtoA" not in routes:
            return None
        forward, backward = routes["AtoB"], routes["BtoA"]
        if forward.source != forward.target or backward.source != backward.target:
            return None
        return (forward.source, backward.source) if forward.source != backward.source else None

    def sample_columns(self, items: Batch, paired: bool) -> list[tuple[str, torch.Tensor]]:
        """The labelled columns of a sample grid (``ponogan.training.samples.labelled_grid``) for
        ``items`` (``A``, ``B`` if the data has it, ``index``), called like ``translate``.

        With a network per direction (``cycle_roles``, say ``F`` A->B and ``G`` B->A): ``real A | F(A) |
        G(F(A)) | real B | G(B) | F(G(B))``, both translations and both cycle reconstructions (the B
        half when the data has B). Otherwise ``input | output`` (``translate``), and ``target`` (B) when
        ``paired`` (the test split pairs each A with its ground truth). A family whose samples differ
        (MUNIT's fixed styles) overrides it."""
        roles = self.cycle_roles()
        if roles is None:
            columns = [("input", items["A"]), ("output", self.translate(items["A"], items["index"]))]
            if paired and "B" in items:
                columns.append(("target", items["B"]))
            return columns
        names = {"A": roles, "B": roles[::-1]}  # the domain's (forward, backward) nets
        columns = []
        for domain in ("A", "B") if "B" in items else ("A",):
            there, back = names[domain]
            real = items[domain]
            fake = self.unwrap(there)(real)
            columns += [
                (f"real {domain}", real),
                (f"{there}({domain})", fake),
                (f"{back}({there}({domain}))", self.unwrap(back)(fake)),
            ]
        return columns

    def extra_state(self) -> dict[str, Any]:
        """Per-process state beyond nets/optimizers (image pools), saved in ``rank_<i>.pt``."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        return None


def create_trainer(cfg: TrainConfig, accelerator: Accelerator) -> FamilyTrainer:
    """Build ``cfg.family``'s nets, optimizers and schedulers (not yet prepared)."""
    return get_family(cfg.family).trainer_class()(cfg, accelerator)
