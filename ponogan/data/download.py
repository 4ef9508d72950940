"""Public CycleGAN / pix2pix / DRIT datasets: download, safe unpacking, and combining A/B folders into A|B.

Archives come from the authors' servers (the URLs of the original download scripts): CycleGAN and
pix2pix from Berkeley, DRIT's cat2dog and portrait from UC Merced (the URL of the DRIT and PONO-DRIT
``datasets/download_dataset.sh``; each zip holds ``<name>/trainA, trainB, testA, testB``). Network
failures raise `DownloadError` with a message a user can act on (no traceback from urllib).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

from PIL import Image

from ponogan.core.atomic import atomic_write
from ponogan.data.image_io import DEFAULT_MAX_PIXELS, ImageLoadError, find_images, is_within, load_image

CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
CYCLEGAN_DATASETS = (
    "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo", "ukiyoe2photo",
    "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower", "ae_photos", "mini",
    "mini_pix2pix", "mini_colorization", "grumpifycat",
)  # fmt: skip
PIX2PIX_DATASETS = ("cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps")
DRIT_URL = "http://vllab.ucmerced.edu/hylee/DRIT/datasets/{name}.zip"
DRIT_DATASETS = ("cat2dog", "portrait")
KINDS = {
    "cyclegan": (CYCLEGAN_URL, CYCLEGAN_DATASETS),
    "pix2pix": (PIX2PIX_URL, PIX2PIX_DATASETS),
    "drit": (DRIT_URL, DRIT_DATASETS),
}


class DownloadError(RuntimeError):
    """A dataset could not be fetched or unpacked; the message says what to do instead."""


def dataset_url(name: str, kind: str | None = None) -> str:
    """URL of a public dataset; `kind` (`cyclegan`/`pix2pix`/`drit`) is needed only for names in two lists."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    kinds = [k for k, (_, names) in KINDS.items() if name in names and kind in (None, k)]
    if not kinds:
        listing = "; ".join(f"{k}: {', '.join(names)}" for k, (_, names) in KINDS.items())
        raise ValueError(f"unknown dataset {name!r} for kind {kind or 'any'}; known datasets: {listing}")
    if len(kinds) > 1:
        raise ValueError(f"{name!r} exists as {' and '.join(kinds)} dataset; choose one with --kind")
    return KINDS[kinds[0]][0].format(name=name)


def fetch(url: str, dest: str | os.PathLike, timeout: float = 30.0) -> Path:
    """Stream `url` (http(s) or file://) to `dest` atomically; raises `DownloadError` on any failure."""

    def download(tmp: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as handle:
                shutil.copyfileobj(response, handle, length=1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise DownloadError(
                f"could not download {url}: {reason}. Check the network connection, or download the "
                f"archive yourself and run `ponogan data download NAME --archive FILE`."
            ) from None

    return atomic_write(dest, download)


def unpack(archive: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Extract a .zip / .tar(.gz|.bz2|.xz) into `out_dir`, refusing members that escape it.

    Returns the top-level entries created. Raises `DownloadError` for an unknown or damaged archive.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = set(out_dir.iterdir())
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_inside(out_dir, member, archive)
                zf.extractall(out_dir)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_inside(out_dir, member.name, archive)
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(out_dir, filter="data")
                else:
                    tf.extractall(out_dir)  # noqa: S202 (members checked above)
        else:
            raise DownloadError(f"{archive} is not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"cannot unpack {archive}: {err}") from None
    return sorted(set(out_dir.iterdir()) - before)


def _check_inside(out_dir: Path, member: str, archive: Path) -> None:
    target = (out_dir / member).resolve()
    if not target.is_relative_to(out_dir.resolve()):
        raise DownloadError(f"{archive} holds a member outside the target folder ({member}); refused")


def download_dataset(
    name: str,
    out_dir: str | os.PathLike,
    kind: str | None = None,
    *,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download (or take a local `archive`) and unpack dataset `name` into `out_dir/<name>`.

    Returns the dataset folder. The public archives already contain a top-level `<name>/` folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if archive is None:
        source = url or dataset_url(name, kind)
        suffix = ".tar.gz" if source.endswith(".tar.gz") else Path(source).suffix or ".zip"
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            local = fetch(source, Path(tmp) / f"{name}{suffix}", timeout=timeout)
            created = unpack(local, out_dir)
    else:
        if not Path(archive).is_file():
            raise DownloadError(f"archive {archive} does not exist")
        created = unpack(archive, out_dir)
    target = out_dir / name
    if not target.is_dir() and len(created) == 1 and created[0].is_dir():
        created[0].rename(target)
    if not target.is_dir():
        raise DownloadError(f"the archive for {name} did not contain a {name}/ folder (got {created})")
    return target


def combine_ab(
    fold_a: str | os.PathLike,
    fold_b: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> int:
    """Write one `A|B` PNG per image present in both folders (matched by relative path without extension).

    If `fold_a` and `fold_b` share sub-folders (e.g. train/val/test) each is combined into
    `out_dir/<sub>`; otherwise the folders are combined flat. B is resized to A's size when they differ.
    Unreadable or unmatched files are skipped with a warning. Returns the number of images written.
    Input files are never written over: `out_dir` may not be an input folder, one inside an input folder
    is left out of the inputs, and a pair whose output path is an input file is skipped with a warning.
    """
    fold_a, fold_b, out_dir = Path(fold_a), Path(fold_b), Path(out_dir)
    for folder in (fold_a, fold_b):
        if not folder.is_dir():
            raise ValueError(f"combine: folder {folder} does not exist")
        if os.path.realpath(folder) == os.path.realpath(out_dir):
            raise ValueError(f"combine: the output folder {out_dir} is an input folder; choose another one")
    subs_a = {p.name for p in fold_a.iterdir() if p.is_dir()}
    shared = sorted(subs_a & {p.name for p in fold_b.iterdir() if p.is_dir()})
    jobs = [(fold_a / s, fold_b / s, out_dir / s) for s in shared] or [(fold_a, fold_b, out_dir)]
    exclude = [out_dir] if is_within(out_dir, fold_a) or is_within(out_dir, fold_b) else []
    inputs = {os.path.realpath(p) for folder in (fold_a, fold_b) for p in find_images(folder, exclude)}
    written = sum(_combine_flat(a, b, o, max_pixels, exclude, inputs) for a, b, o in jobs)
    if written == 0:
        raise ValueError(f"combine: no image of {fold_a} has a readable partner of the same name in {fold_b}")
    return written


def _combine_flat(
    fold_a: Path, fold_b: Path, out_dir: Path, max_pixels: int | None, exclude: list[Path], inputs: set[str]
) -> int:
    """Combine one pair of folders; folders in `exclude` are not walked, files in `inputs` (real paths)
    are never written."""
    by_key_b = {_key(p, fold_b): p for p in find_images(fold_b, exclude)}
    count, unmatched = 0, 0
    for path_a in find_images(fold_a, exclude):
        key = _key(path_a, fold_a)
        if key not in by_key_b:
            unmatched += 1
            continue
        target = out_dir / f"{key}.png"
        if os.path.realpath(target) in inputs:
            warnings.warn(f"combine: skipping {path_a}: its output {target} is an input file", stacklevel=3)
            continue
        try:
            img_a = load_image(path_a, "RGB", max_pixels)
            img_b = load_image(by_key_b[key], "RGB", max_pixels)
        except ImageLoadError as err:
            warnings.warn(f"combine: skipping {err.path}: {err.reason}", stacklevel=3)
            continue
        if img_b.size != img_a.size:
            img_b = img_b.resize(img_a.size, Image.Resampling.BICUBIC)
        pair = Image.new("RGB", (img_a.width * 2, img_a.height))
        pair.paste(img_a, (0, 0))
        pair.paste(img_b, (img_a.width, 0))
        target.parent.mkdir(parents=True, exist_ok=True)
        pair.save(target)
        count += 1
    if unmatched:
        warnings.warn(f"combine: {unmatched} image(s) of {fold_a} have no partner in {fold_b}", stacklevel=3)
    return count


def _key(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root).with_suffix(""))
