"""Evaluating a trained run: translate a dataset split with the run's pipeline, then score the folders.

``translate_split`` writes ``input/``, ``fake/``, ``real/`` (and ``mask/`` for the glyph test split,
whose items carry the target's binary glyph) under the output folder, each image named
``<index>_<stem>.png``; a multimodal (MUNIT) run with ``num_styles > 1`` writes ``fake/<name>_s<k>.png``
so that the folder evaluation pairs ``_s0`` with the target and measures diversity over all samples.
Only paired data (``aligned``, the glyph test split) saves targets under the inputs' names; for
unpaired data the targets are written as ``real_<index>_<stem>.png`` and only FID applies.

Every file and folder is listed in the output folder's manifest (``report.EvalOutput``) before it is
written, so ``overwrite`` deletes only eval's own files (see :func:`prepare_output`).

With several processes (:mod:`.distributed`) rank 0 checks and prepares the folder; batch ``k`` is
translated by process ``k % world_size`` (the batches of a one-process run, so the same images); before
each round of batches the file names of every process are gathered and rank 0 lists them in the
manifest, then each process writes its own files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from ponogan.core.distributed import SINGLE, ProcessGroup
from ponogan.core.run_folder import DataGeometry, RunCard, RunFolder
from ponogan.data import DataOptions, create_dataset, tensor_to_pil
from ponogan.metrics.report import REPORT_FILES, EvalOutput

PAIRED_MODES = ("aligned", "glyphs")
SPLIT_FOLDERS = ("input", "fake", "real", "mask")
GLYPH_CODE = re.compile(r"U\+([0-9A-Fa-f]{4,6})$")  # glyph item paths end in the code point: .../U+0061


@dataclass(frozen=True)
class TranslatedSplit:
    """Folders written by :func:`translate_split` and what they hold."""

    input: Path
    fake: Path
    real: Path
    masks: Path | None
    num_items: int
    grid_labels: dict[str, str] | None = None  # glyphs: first item of each character -> the character


def glyph_character(path: str) -> str | None:
    """The character of a built-in glyph item from its path (``glyphs:test/00003/DejaVuSans/U+0061`` ->
    ``a``), or None for other data."""
    match = GLYPH_CODE.search(str(path))
    return chr(int(match[1], 16)) if match else None


def _stem(path: str) -> str:
    stem = re.split(r"[\\/]", str(path))[-1].rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_+-]", "_", stem) or "image"


def dataset_for_run(config: dict, data: str, split: str):
    """The run's dataset for ``split``: ``data == "glyphs"`` uses the built-in glyphs, else a root folder.

    Options come from the run's card (``config``, its data options that ``DataOptions`` knows); the mode
    is the run's unless ``data`` is ``glyphs``; glyphs for a run trained on folders are drawn at the
    side it was trained on.
    """
    geometry = RunCard.from_dict(config).data or DataGeometry()
    run_mode = geometry.mode or "aligned"
    mode = "glyphs" if data == "glyphs" else "aligned" if run_mode == "glyphs" else run_mode
    options = {k: v for k, v in geometry.to_dict().items() if k in DataOptions.field_names()}
    if mode == "glyphs" and run_mode != "glyphs" and geometry.side is not None:
        options["image_size"] = geometry.side
    root = None if mode == "glyphs" else data
    if root is not None and not Path(root).is_dir():
        raise FileNotFoundError(f"--data {root} is neither 'glyphs' nor an existing dataset folder")
    return create_dataset(mode, root, phase=split, **options), mode


def prepare_output(out_dir: str | Path, *, overwrite: bool = False) -> EvalOutput:
    """Check ``out_dir`` before a run's split is translated into it, and clear eval's earlier images.

    Raises ``FileExistsError`` (nothing touched) when the split folders or the report names hold
    anything eval did not write, or, without ``overwrite``, images of an earlier evaluation (they would
    mix into FID). With ``overwrite`` only the files listed in the manifest are deleted.
    """
    output = EvalOutput(out_dir)
    output.check_free(REPORT_FILES, SPLIT_FOLDERS)
    earlier = output.own_files(trees=SPLIT_FOLDERS)
    if earlier and not overwrite:
        raise FileExistsError(
            f"{output.root} already holds {len(earlier)} images from an earlier evaluation (e.g. "
            f"{earlier[0]}); pass --overwrite to replace them or choose another --out"
        )
    if earlier:
        output.remove(earlier)
    return output


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
    group: ProcessGroup | None = None,
) -> TranslatedSplit:
    """Translate every item of ``dataset`` (item ``A`` -> fake, item ``B`` = target) into ``out_dir``.

    ``direction="BtoA"`` translates item ``B`` and scores it against item ``A``. The output folder is
    checked by :func:`prepare_output` (``overwrite`` replaces images of an earlier evaluation only).
    ``seed`` seeds MUNIT's styles and, for a pipeline in ``"paper"`` test mode, the dropout noise.
    With a multi-process ``group`` the batches are shared out (see the module docstring). For glyph data
    ``grid_labels`` maps the first item of each character to that character (one grid row each).
    """
    group = group or SINGLE
    out_dir = Path(out_dir)

    def prepare() -> EvalOutput:
        output = prepare_output(out_dir, overwrite=overwrite)
        for name in ("input", "fake", "real"):
            output.mkdir(name)
        return output

    output = group.run_on_main(prepare)
    source_key, target_key = ("A", "B") if direction == "AtoB" else ("B", "A")
    folders = {name: out_dir / name for name in SPLIT_FOLDERS}
    multimodal = bool(getattr(pipe, "multimodal", False))
    styles = num_styles if multimodal else 1
    has_masks = False
    grid_labels: dict[str, str] = {}
    starts = range(0, len(dataset), batch_size)
    rounds = range(0, len(starts), group.world_size)
    for first in tqdm(rounds, desc="translating", disable=not (progress and group.is_main), leave=False):
        mine = first + group.rank  # this process's batch of the round
        files: dict[Path, object] = {}
        labels: dict[str, str] = {}
        error = None
        try:
            if mine < len(starts):
                files, labels = _translate_batch(
                    pipe, dataset, starts[mine], batch_size, folders, paired=paired,
                    keys=(source_key, target_key), styles=styles, multimodal=multimodal,
                    direction=direction, seed=seed,
                )  # fmt: skip
        except Exception as err:  # noqa: BLE001 - raised in every process below
            if not group.distributed:
                raise
            error = f"{type(err).__name__}: {err} (process {group.rank})"
        group.raise_any(error)
        planned = [Path(p) for paths in group.all_gather([str(p) for p in files]) for p in paths]
        round_has_masks = any(p.parent == folders["mask"] for p in planned)
        has_masks = has_masks or round_has_masks
        if group.is_main:
            if round_has_masks:
                output.mkdir("mask")
            output.claim(planned)  # listed before any process writes them
        group.barrier()
        for path, img in files.items():
            img.save(path)
        for labelled in group.all_gather(labels):
            grid_labels.update(labelled)
    first_of_each: dict[str, str] = {}
    for name in sorted(grid_labels):
        first_of_each.setdefault(grid_labels[name], name)
    group.barrier()  # every file is written before anyone reads the folders
    return TranslatedSplit(
        input=folders["input"],
        fake=folders["fake"],
        real=folders["real"],
        masks=folders["mask"] if has_masks else None,
        num_items=len(dataset),
        grid_labels={name: char for char, name in first_of_each.items()} or None,
    )


def _translate_batch(
    pipe, dataset, start, batch_size, folders, *, paired, keys, styles, multimodal, direction, seed
) -> tuple[dict[Path, object], dict[str, str]]:
    """Translate items ``start .. start + batch_size``: the files to write (path -> PIL image) and, for
    glyph items, ``{name: character}``."""
    source_key, target_key = keys
    indices = range(start, min(start + batch_size, len(dataset)))
    items = [dataset[i] for i in indices]
    names = [f"{i:05d}_{_stem(item[f'{source_key}_path'])}" for i, item in zip(indices, items, strict=True)]
    images = [tensor_to_pil(item[source_key]) for item in items]
    kwargs = {"n_styles": styles} if multimodal else {}
    outputs = pipe(images, direction=direction, seed=seed, **kwargs)
    files: dict[Path, object] = {}
    labels: dict[str, str] = {}
    for j, (index, name, item, image) in enumerate(zip(indices, names, items, images, strict=True)):
        real_name = name if paired else f"real_{index:05d}_{_stem(item[f'{target_key}_path'])}"
        files[folders["input"] / f"{name}.png"] = image
        files[folders["real"] / f"{real_name}.png"] = tensor_to_pil(item[target_key])
        if "B_mask" in item and target_key == "B":
            files[folders["mask"] / f"{name}.png"] = tensor_to_pil(item["B_mask"] * 2 - 1)
        samples = outputs[j * styles : (j + 1) * styles]
        suffixes = [""] if styles == 1 else [f"_s{k}" for k in range(styles)]
        for suffix, sample in zip(suffixes, samples, strict=True):
            files[folders["fake"] / f"{name}{suffix}.png"] = sample
        character = glyph_character(item[f"{source_key}_path"])
        if character is not None and paired:
            labels[name] = character
    return files, labels


def record_metrics_in_run(run: str | Path, metrics: dict[str, float]) -> Path:
    """Merge ``metrics`` into the card of run ``run`` (its folder or ``model.safetensors``) under
    ``"metrics"``; an atomic rewrite, in this ponogan's card format."""
    folder = RunFolder.of(run)
    card = RunCard.load(folder.config)
    return replace(card, metrics={**(card.metrics or {}), **metrics}).save(folder.config)
