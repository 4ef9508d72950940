"""`DataOptions`: the one typed source of dataset options and their defaults.

The training config embeds this dataclass; `create_dataset(mode, root, phase, **options)` builds one from
keyword arguments, so both paths share the same defaults and the same validation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ponogan.data.image_io import DEFAULT_MAX_PIXELS

PREPROCESS_CHOICES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
DIRECTIONS = ("AtoB", "BtoA")
VARIANTS = ("plain", "hard")


@dataclass
class DataOptions:
    """Options for every dataset mode (folder modes use the first block, `glyphs` the second).

    Folder modes (`unaligned`, `aligned`, `single`, `list`):
        load_size / crop_size: resize to `load_size`, then crop `crop_size` (pix2pix/CycleGAN semantics).
        preprocess: one of `PREPROCESS_CHOICES`; train crops are random, test crops centred.
            `none` / `scale_width` keep each image's (scaled) size, so all images must give the same
            item size (batches need one; checked from the file headers when the dataset is built) and
            images giving items under `MIN_SIDE` px (transforms.py) are skipped with a warning.
        no_flip: disable the random horizontal flip (never applied outside the train phase).
        crop_in_decay: keep the random crop in the epochs of the learning-rate decay. False is CUT's
            rule: from the first epoch wholly inside the `linear` decay (`optim.decay_start`), train
            items are resized to `crop_size` instead of `load_size`, so `resize_and_crop` takes the
            whole image with no random crop (`scale_width_and_crop` scales the width to `crop_size`;
            `crop`, which has no resize step, is unchanged); flips are unchanged.
        direction: `AtoB` or `BtoA`; `BtoA` swaps the domains, so item `A` is always the model input.
        serial: unaligned/list pairing: B index follows A instead of being drawn at random.
        input_nc / output_nc: channels of items `A` / `B` (1 = grayscale, 3 = RGB), after `direction`.
        max_pixels: images with more pixels are skipped as decompression bombs (None = no limit).
        max_dataset_size: keep at most this many files per domain (None = all).
        list_a / list_b: `list` mode files of relative paths (default `<root>/<phase>A.txt`, `...B.txt`).

    Built-in glyphs (`glyphs`, root may be None):
        image_size: side of the square images.
        paired: same glyph and jitter in A and B (pix2pix); False draws B independently (CycleGAN/MUNIT).
        variant: `plain` (black on white) or `hard` (B: textured colour fill on a cluttered gradient).
        seed: drives the train split; item i is a pure function of (seed, i).
        font_a / font_b: matplotlib font names (e.g. `DejaVuSans`), a .ttf path, or `pil-default`.
        length: train items per epoch; test_jitters: placements per held-out character in the test split.
    """

    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"
    no_flip: bool = False
    crop_in_decay: bool = True
    direction: str = "AtoB"
    serial: bool = False
    input_nc: int = 3
    output_nc: int = 3
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_dataset_size: int | None = None
    list_a: str | None = None
    list_b: str | None = None
    image_size: int = 64
    paired: bool = True
    variant: str = "plain"
    seed: int = 0
    font_a: str = "DejaVuSans"
    font_b: str = "DejaVuSerif-Bold"
    length: int = 4000
    test_jitters: int = 8

    def __post_init__(self) -> None:
        _check_choice("preprocess", self.preprocess, PREPROCESS_CHOICES)
        _check_choice("direction", self.direction, DIRECTIONS)
        _check_choice("variant", self.variant, VARIANTS)
        for name in ("input_nc", "output_nc"):
            if getattr(self, name) not in (1, 3):
                raise ValueError(f"{name} must be 1 (grayscale) or 3 (RGB), got {getattr(self, name)!r}")
        for name in ("load_size", "crop_size", "image_size", "length", "test_jitters"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive or None, got {self.max_pixels!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataOptions:
        """Build from a dict (e.g. YAML); unknown keys raise `ValueError` naming them and the valid ones."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"unknown data option(s) {', '.join(unknown)}; valid options: {', '.join(cls.field_names())}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> DataOptions:
        return dataclasses.replace(self, **changes)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
