"""What a translator family is, as data: the light half of a family, free of torch.

A ``Family`` names everything the rest of the package asks about a family (training, resume, the
inference pipeline, translate, eval, the app, export, the official-weights import), so no caller branches
on a family's name. Its trainer is a dotted path (``"package.module:Class"``) resolved on first use, so
reading a spec (``ponogan train --help``, config checks) imports no network code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (role, kind, in_channels, out_channels) of one network a trainer builds; kind is "generator" or
# "discriminator"; out_channels None: the network has no such argument (MUNIT's auto-encoders).
NetworkShape = tuple[str, str, int, int | None]


@dataclass(frozen=True)
class Route:
    """One translation direction: ``source`` encodes the input, ``target`` produces the output.

    Feed-forward families use one network for both (``source == target``); MUNIT encodes content and
    moments with the source domain's auto-encoder and decodes with the target domain's.
    """

    source: str
    target: str


@dataclass(frozen=True)
class Family:
    """One translator family (pix2pix, CycleGAN, MUNIT, ...), registered by ``name``.

    - ``trainer``: the ``FamilyTrainer`` subclass, or its dotted path ``"module:Class"`` (``trainer_class``).
    - ``roles``: the generators ``model.safetensors`` holds, in save order.
    - ``routes``: ``{direction: Route}`` the pipeline translates (the roles inference needs).
    - ``multimodal``: outputs take a style code (``n_styles``, a style reference).
    - ``loss``: the dataclass of the config's ``loss`` section; ``defaults``: the family's paper settings
      as changes to the config dataclasses' defaults (nested dicts, merged before a preset).
    - ``init``: ``(generator init, discriminator init)`` of the family's original code.
    - ``networks``: ``(input_nc, output_nc) -> [NetworkShape]``, every net the trainer builds; it gives
      the discriminator input channels, the preflight forward checks and the model-size estimate.
    - ``folder_mode``: the dataset mode ``--dataroot`` picks on a glyph preset (paired or unpaired folders).
    - ``repo_model``: the CycleGAN repo's ``--model`` value that trains this family (None: no such flag).
    - ``official_roles``: the generator roles of an official checkpoint ``import-official`` converts into
      this family (None: the family has no official import).
    - ``pono_layout``: the PONO block layout (``model.generator_kwargs.layout``) its ``*_pono_*`` presets
      use; None: they name none (the generator has one layout).
    - ``check``: extra config checks (``cfg -> None``, raising ``ConfigError``), after the generic ones.
    - ``inference_views``: ``{role: generator} -> {name: module}``, modules the pipeline adds beside the
      loaded generators for its routes to name (DRIT: one auto-encoder view per domain over its one
      saved ``gen``); None: the routes name the saved roles.
    - ``min_side``: the smallest square training side the family's networks take (DRIT's content
      discriminator); the glyph presets use the smallest power of two >= ``max(64, min_side)``.
    """

    name: str
    paper: str
    trainer: str | type
    roles: tuple[str, ...]
    routes: dict[str, Route]
    loss: type
    networks: Callable[[int, int], list[NetworkShape]]
    init: tuple[str, str] = ("normal", "normal")
    defaults: dict[str, Any] = field(default_factory=dict)
    multimodal: bool = False
    folder_mode: str = "unaligned"
    repo_model: str | None = None
    official_roles: tuple[str, ...] | None = None
    pono_layout: str | None = None
    check: Callable[[Any], None] | None = None
    inference_views: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    min_side: int = 1

    def trainer_class(self) -> type:
        """The trainer class, importing its module the first time a dotted path is asked for."""
        if not isinstance(self.trainer, str):
            return self.trainer
        module, _, attr = self.trainer.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(self.routes)
