"""Evaluating a trained run: translate a dataset split with the run's pipeline, then score the folders.

``translate_split`` writes ``input/``, ``fake/``, ``real/`` (and ``mask/`` for the glyph test split,
whose items carry the target's binary glyph) under the output folder, each image named
``<index>_<stem>.png``; a multimodal (MUNIT) run with ``num_styles > 1`` writes ``fake/<name>_s<k>.png``
so that the folder evaluation pairs ``_s0`` with the target and measures diversity over all samples.
Only paired data (``aligned``, the glyph test split) saves targets under the inputs' names; for
unpaired data the targets are written as ``real_<index>_<stem>.png`` and only FID applies.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ponogan.data import DataOptions, create_dataset, tensor_to_pil

from .images import list_images

PAIRED_MODES = ("aligned", "glyphs")


@dataclass(frozen=True)
class TranslatedSplit:
    """Folders written by :func:`translate_split` and what they hold."""

    input: Path
    fake: Path
    real: Path
    masks: Path | None
    num_items: int
    paired: bool
    multimodal: bool


def _stem(path: str) -> str:
    stem = re.split(r"[\\/]", str(path))[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return re.sub(r"[^A-Za-z0-9_+-]", "_", stem) or "image"


def dataset_for_run(config: dict, data: str, split: str):
    """The run's dataset for ``split``: ``data == "glyphs"`` uses the built-in glyphs, else a root folder.

    Options come from the run's ``config["data"]`` (only fields ``DataOptions`` knows); the mode is the
    run's unless ``data`` is ``glyphs``.
    """
    run_data = dict(config.get("data") or {})
    mode = "glyphs" if data == "glyphs" else run_data.get("mode", "aligned")
    if mode == "glyphs" and data != "glyphs":
        mode = "aligned"
    options = {k: v for k, v in run_data.items() if k in DataOptions.field_names()}
    root = None if mode == "glyphs" else data
    if root is not None and not Path(root).is_dir():
        raise FileNotFoundError(f"--data {root} is neither 'glyphs' nor an existing dataset folder")
    return create_dataset(mode, root, phase=split, **options), mode


def translate_split(
    pipe,
    dataset,
    out_dir: str | Path,
    *,
    paired: bool,
    direction: str = "AtoB",
    num_styles: int = 1,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
    overwrite: bool = False,
) -> TranslatedSplit:
    """Translate every item of ``dataset`` (item ``A`` -> fake, item ``B`` = target) into ``out_dir``.

    ``direction="BtoA"`` translates item ``B`` and scores it against item ``A``. Images left in the
    output subfolders by an earlier run would mix into FID, so they raise ``FileExistsError`` unless
    ``overwrite`` removes them first.
    """
    out_dir = Path(out_dir)
    source_key, target_key = ("A", "B") if direction == "AtoB" else ("B", "A")
    folders = {name: out_dir / name for name in ("input", "fake", "real", "mask")}
    stale = [p for folder in folders.values() if folder.is_dir() for p in list_images(folder)]
    if stale and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {len(stale)} images from an earlier evaluation (e.g. {stale[0]}); "
            "pass --overwrite to replace them or choose another --out"
        )
    for path in stale:
        path.unlink()
    for name in ("input", "fake", "real"):
        folders[name].mkdir(parents=True, exist_ok=True)
    multimodal = bool(getattr(pipe, "multimodal", False))
    styles = num_styles if multimodal else 1
    has_masks = False
    indices = range(len(dataset))
    for start in tqdm(
        range(0, len(dataset), batch_size), desc="translating", disable=not progress, leave=False
    ):
        items = [dataset[i] for i in indices[start : start + batch_size]]
        names = [f"{start + j:05d}_{_stem(item[f'{source_key}_path'])}" for j, item in enumerate(items)]
        images = [tensor_to_pil(item[source_key]) for item in items]
        kwargs = {"n_styles": styles, "seed": seed} if multimodal else {}
        outputs = pipe(images, direction=direction, **kwargs)
        for j, (name, item, image) in enumerate(zip(names, items, images, strict=True)):
            image.save(folders["input"] / f"{name}.png")
            real_name = name if paired else f"real_{start + j:05d}_{_stem(item[f'{target_key}_path'])}"
            tensor_to_pil(item[target_key]).save(folders["real"] / f"{real_name}.png")
            if "B_mask" in item and target_key == "B":
                folders["mask"].mkdir(exist_ok=True)
                tensor_to_pil(item["B_mask"] * 2 - 1).save(folders["mask"] / f"{name}.png")
                has_masks = True
            samples = outputs[j * styles : (j + 1) * styles]
            if styles == 1:
                samples[0].save(folders["fake"] / f"{name}.png")
            else:
                for k, sample in enumerate(samples):
                    sample.save(folders["fake"] / f"{name}_s{k}.png")
    return TranslatedSplit(
        input=folders["input"],
        fake=folders["fake"],
        real=folders["real"],
        masks=folders["mask"] if has_masks else None,
        num_items=len(dataset),
        paired=paired,
        multimodal=multimodal,
    )


def record_metrics_in_run(run: str | Path, metrics: dict[str, float]) -> Path:
    """Merge ``metrics`` into the run's ``config.json`` under ``"metrics"`` (atomic rewrite)."""
    run = Path(run)
    config_path = (run.parent if run.is_file() else run) / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["metrics"] = {**(config.get("metrics") or {}), **metrics}
    tmp = config_path.with_name(f".{config_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, config_path)
    return config_path
