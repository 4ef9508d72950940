"""What a training config means, checked before anything is written or allocated.

``preflight(cfg)`` runs after ``config.validate`` (types and ranges) and before ``train``: the device and
mixed precision must exist on this machine, the GAN loss and dataset mode must be known names, and every
network the family builds (``network_plan``) must build and run a forward at the run's batch and image
size on the meta device (``ponogan.models.check``), which gives any shape or channel error without
allocating. Each failure is one ``ConfigError`` line (exit status 2).
"""

from __future__ import annotations

from ponogan.data.modes import DATASETS
from ponogan.data.transforms import keeps_image_size
from ponogan.families import get_family
from ponogan.models.check import NetworkCheckError, check_network
from ponogan.training.config import ConfigError, TrainConfig
from ponogan.training.losses import GAN_MODES


def network_plan(cfg: TrainConfig) -> list[tuple[str, str, str, dict]]:
    """``[(role, kind, preset name, kwargs)]`` of every network ``cfg.family``'s trainer builds, with the
    channel counts the family gives them (``Family.networks``)."""
    opts, model = cfg.data.options, cfg.model
    presets = {
        "generator": (model.generator, {**model.generator_kwargs, "shortcut": model.shortcut}),
        "discriminator": (model.discriminator, model.discriminator_kwargs),
    }
    plan = []
    for role, kind, in_channels, out_channels in get_family(cfg.family).networks(
        opts.input_nc, opts.output_nc
    ):
        name, kwargs = presets[kind]
        kwargs = {**kwargs, "in_channels": in_channels}
        if out_channels is not None:
            kwargs["out_channels"] = out_channels
        plan.append((role, kind, name, kwargs))
    return plan


def image_side(cfg: TrainConfig) -> int:
    """The side of the square training items: glyphs' ``image_size``, the crop of the folder modes, or
    ``load_size`` for the modes that keep each image's scaled size (their real sizes vary)."""
    opts = cfg.data.options
    if cfg.data.mode == "glyphs":
        return opts.image_size
    return opts.load_size if keeps_image_size(opts) else opts.crop_size


def check_runtime(cfg: TrainConfig) -> None:
    """The device and mixed precision must exist here (``--device cuda`` without a GPU, fp16 on a CPU)."""
    from ponogan.training.errors import TrainingError
    from ponogan.training.loop import resolve_runtime  # loop imports accelerate: only once a run starts

    try:
        resolve_runtime(cfg)
    except (TrainingError, ValueError) as err:
        raise ConfigError(str(err)) from None


def preflight(cfg: TrainConfig) -> None:
    """Refuse (``ConfigError``, one line) a config that would fail only once training builds its parts."""
    if cfg.loss.gan_mode not in GAN_MODES:
        raise ConfigError(f"loss.gan_mode must be one of {', '.join(GAN_MODES)}; got {cfg.loss.gan_mode!r}")
    if str(cfg.data.mode).lower().strip() not in DATASETS:
        raise ConfigError(f"data.mode must be one of {', '.join(DATASETS)}; got {cfg.data.mode!r}")
    check_runtime(cfg)
    side, batch = image_side(cfg), cfg.data.batch_size
    for role, kind, name, kwargs in network_plan(cfg):
        try:
            check_network(kind, name, kwargs, side=side, batch=batch, train=True)
        except NetworkCheckError as err:
            section = "model.generator_kwargs" if kind == "generator" else "model.discriminator_kwargs"
            raise ConfigError(f"the {cfg.family} network {role} ({section}): {err}") from None
