"""Locating and loading the pretrained weight files FID and LPIPS need; evaluation never downloads.

The metrics only read local files: an explicit path (``--fid-weights`` / ``--lpips-weights``) or the
standard torch hub cache (``$TORCH_HOME/hub/checkpoints/``, i.e. ``torch.hub.get_dir()/checkpoints``).
When the file is absent a :class:`MissingWeightsError` names the file, the URL it comes from and the
place to put it, so a user on an offline machine knows exactly what to fetch. Fetching is a separate,
explicit step: ``ponogan weights download`` (:func:`download_weights`), which checks each file's SHA-256.

Checksums: the files follow torch hub's naming rule ``<name>-<hash>.pth``, where ``<hash>`` is the first 8
hex digits of the file's SHA-256 (torchvision's ``check_hash`` verifies exactly that prefix). We do not have
the full digests from a source we can vouch for, so ``sha256`` below holds that 8-digit prefix and the
download verifies the prefix of the SHA-256 it computes; put a full 64-digit digest there to verify all of
it (any prefix length works).

Nothing is unpickled: ``.pth`` files are read with ``torch.load(weights_only=True)``, and a file that
holds pickled Python objects is refused with one line saying so (never with torch's advice to retry
with ``weights_only=False``).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ponogan.core.atomic import atomic_write
from ponogan.core.messages import UsageError, first_line


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file a metric needs: its canonical name, origin, the option overriding it and
    its name for ``ponogan weights download``."""

    filename: str
    url: str
    purpose: str
    option: str
    sha256: str = ""  # the file's SHA-256, or its leading hex digits (see the module docstring)
    download_name: str = ""


FID_INCEPTION = WeightFile(
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
    purpose="FID (pytorch-fid InceptionV3)",
    option="--fid-weights",
    sha256="6726825d",  # prefix only (from the file name)
    download_name="fid",
)


def _torchvision_weights(filename: str, backbone: str, sha256: str, download_name: str) -> WeightFile:
    """A torchvision ImageNet weight file that an LPIPS backbone is built from."""
    url = f"https://download.pytorch.org/models/{filename}"
    purpose = f"LPIPS ({backbone} backbone)"
    return WeightFile(filename, url, purpose, "--lpips-weights", sha256, download_name)


# lpips backbone name -> the torchvision ImageNet weights its trunk is built from (sha256: prefix only,
# from the file name)
LPIPS_BACKBONES: dict[str, WeightFile] = {
    "alex": _torchvision_weights("alexnet-owt-7be5be79.pth", "AlexNet", "7be5be79", "lpips"),
    "vgg": _torchvision_weights("vgg16-397923af.pth", "VGG16", "397923af", "lpips-vgg"),
    "squeeze": _torchvision_weights(
        "squeezenet1_1-b8a52dc0.pth", "SqueezeNet 1.1", "b8a52dc0", "lpips-squeeze"
    ),
}


def hub_checkpoint_dir() -> Path:
    """The torch hub cache folder where torchvision and pytorch-fid keep downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


class MissingWeightsError(FileNotFoundError):
    """A metric's weight file is not on this machine; the one-line message says what to download, from
    where, and where to put it (or which option names it).

    ``reason`` replaces the default "not found" (e.g. why a download failed); the hint to run ``ponogan
    weights download`` is left out then, since that is what failed."""

    def __init__(self, weights: WeightFile, given: str | Path | None = None, reason: str | None = None):
        self.weights = weights
        if given is not None:
            state = "is a folder, not a file" if Path(given).is_dir() else "does not exist"
            where = f"{weights.option} {given} {state}"
        else:
            where = reason or "not found"
        fetch = (
            f"run `ponogan weights download {weights.download_name}`, or "
            if reason is None and weights.download_name
            else ""
        )
        super().__init__(
            f"{weights.purpose} needs the weight file '{weights.filename}' ({where}): {fetch}download it "
            f"from {weights.url} to {hub_checkpoint_dir() / weights.filename} (the torch hub cache; "
            f"TORCH_HOME moves it), or pass its path with {weights.option} PATH"
        )


def locate_weights(weights: WeightFile, path: str | Path | None = None) -> Path:
    """Return the local file for ``weights``: ``path`` if given, else the hub cache copy.

    Raises :class:`MissingWeightsError` when the file is not there; never touches the network.
    """
    candidate = hub_checkpoint_dir() / weights.filename if path is None else Path(path).expanduser()
    if not candidate.is_file():
        raise MissingWeightsError(weights, given=None if path is None else candidate)
    return candidate


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict ``{name: tensor}`` from ``.safetensors`` or a torch file without unpickling
    arbitrary objects; ``ValueError`` (one line) when the file is not a plain weights file."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error says enough
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader failure means the same thing to the user
        raise ValueError(_unreadable_reason(path, err)) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"weight file {path} does not hold a state dict of tensors (name -> tensor): use the original "
            "weight file"
        )
    return state


def _unreadable_reason(path: Path, err: Exception) -> str:
    """Why ``path`` could not be read as weights, on one line. Pickled objects are named as such, with
    no hint to load them another way: ponogan never unpickles a file."""
    message = str(err)
    found = re.search(r"GLOBAL (\S+)", message)  # torch names the class or function it refused
    try:
        with open(path, "rb") as handle:  # a plain pickle starts with the PROTO opcode; torch.save: a zip
            plain_pickle = handle.read(1) == b"\x80"
    except OSError as read_error:  # missing or unreadable: that is the reason
        return f"could not read weight file {path}: {read_error.strerror or read_error}"
    if found or (plain_pickle and "Weights only load failed" in message):
        what = f" ({found[1]})" if found else ""
        return (
            f"weight file {path} is not a plain weights file: it holds pickled Python objects{what}, which "
            "ponogan never unpickles; use the original weight file (or a .safetensors copy)"
        )
    if path.is_file() and path.stat().st_size == 0:
        return f"weight file {path} is empty; download it again"
    # torch's own text for a .pth advises loading the file unsafely: it is never shown
    detail = f" ({first_line(err)})" if path.suffix == ".safetensors" else ""
    return f"could not read weight file {path}: it is damaged or not a weights file{detail}"


def check_weights_file(weights: WeightFile, path: str | Path) -> Path:
    """``path`` given for ``weights`` (``--fid-weights`` / ``--lpips-weights``) when it exists and reads as
    a plain state dict; else ``UsageError`` (one line), so a command can refuse it before writing
    anything. Whether the tensors fit the network is checked when the metric builds it."""
    located = locate_weights(weights, path)  # MissingWeightsError: a FileNotFoundError
    try:
        load_state_dict(located)
    except ValueError as err:
        raise UsageError(f"{weights.option}: {err}") from None
    return located


class ChecksumError(ValueError):
    """A weight file's SHA-256 does not match the known digest (or prefix)."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(weights: WeightFile, path: str | Path) -> str:
    """The file's SHA-256 when it starts with ``weights.sha256``, else :class:`ChecksumError`."""
    digest = file_sha256(path)
    if not digest.startswith(weights.sha256.lower()):
        raise ChecksumError(
            f"{path} has SHA-256 {digest}, but {weights.filename} should start with {weights.sha256}: "
            "it is damaged or another file; remove it and download again"
        )
    return digest


def download_weights(weights: WeightFile, *, progress: bool = True) -> tuple[Path, bool]:
    """Fetch ``weights`` into the torch hub cache, verify its SHA-256, and return ``(path, downloaded)``.

    A file already there is verified and kept (``downloaded`` False; :class:`ChecksumError` if it does
    not match, and it is never replaced). Otherwise the file is streamed by
    ``torch.hub.download_url_to_file`` to a temporary file next to the destination, which checks the
    digest (prefix) and renames it; the result is then linked to the final name, which fails rather than
    replace a file that appeared meanwhile. Network failures raise :class:`MissingWeightsError` with the
    reason, the URL and the destination; a digest mismatch raises :class:`ChecksumError` (nothing kept).
    """
    if not weights.sha256:
        raise ValueError(f"no checksum known for {weights.filename}; refusing to download it unverified")
    dest = hub_checkpoint_dir() / weights.filename
    if dest.is_file():
        verify_file(weights, dest)
        return dest, False

    def download(tmp: Path) -> None:
        try:
            torch.hub.download_url_to_file(
                weights.url, str(tmp), hash_prefix=weights.sha256.lower(), progress=progress
            )
        except RuntimeError as err:
            if "invalid hash value" in str(err):
                raise ChecksumError(
                    f"the download of {weights.filename} from {weights.url} failed its check: {err}"
                ) from None
            raise MissingWeightsError(weights, reason=f"download failed: {err}") from None
        except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts, refused connections, bad URLs
            reason = getattr(err, "reason", None) or err
            raise MissingWeightsError(weights, reason=f"download failed: {reason}") from None

    try:
        atomic_write(dest, download, exclusive=True)
    except FileExistsError:  # another process finished first
        verify_file(weights, dest)
        return dest, False
    return dest, True
