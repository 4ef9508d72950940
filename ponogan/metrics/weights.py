"""Locating and loading the pretrained weight files FID and LPIPS need, without ever downloading.

The metrics only read local files: an explicit path (``--fid-weights`` / ``--lpips-weights``) or the
standard torch hub cache (``$TORCH_HOME/hub/checkpoints/``, i.e. ``torch.hub.get_dir()/checkpoints``).
When the file is absent a :class:`MissingWeightsError` names the file, the URL it comes from and the
place to put it, so a user on an offline machine knows exactly what to fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file a metric needs: its canonical name, origin and the option overriding it."""

    filename: str
    url: str
    purpose: str
    option: str


FID_INCEPTION = WeightFile(
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
    purpose="FID (pytorch-fid InceptionV3)",
    option="--fid-weights",
)

# lpips backbone name -> the torchvision ImageNet weights its trunk is built from
LPIPS_BACKBONES: dict[str, WeightFile] = {
    "alex": WeightFile(
        filename="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        purpose="LPIPS (AlexNet backbone)",
        option="--lpips-weights",
    ),
    "vgg": WeightFile(
        filename="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        purpose="LPIPS (VGG16 backbone)",
        option="--lpips-weights",
    ),
    "squeeze": WeightFile(
        filename="squeezenet1_1-b8a52dc0.pth",
        url="https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
        purpose="LPIPS (SqueezeNet 1.1 backbone)",
        option="--lpips-weights",
    ),
}


def hub_checkpoint_dir() -> Path:
    """The torch hub cache folder where torchvision and pytorch-fid keep downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


class MissingWeightsError(FileNotFoundError):
    """A metric's weight file is not on this machine; the message says what to download and where to."""

    def __init__(self, weights: WeightFile, given: str | Path | None = None):
        self.weights = weights
        self.given = None if given is None else Path(given)
        self.expected = hub_checkpoint_dir() / weights.filename
        where = f"{weights.option} {self.given} does not exist" if given is not None else "not found"
        message = (
            f"{weights.purpose} needs the weight file '{weights.filename}' ({where}).\n"
            f"  download it from: {weights.url}\n"
            f"  and put it at:    {self.expected}  (the torch hub cache; TORCH_HOME moves it)\n"
            f"  or pass its path with {weights.option} PATH"
        )
        super().__init__(message)

    def __str__(self) -> str:
        return self.args[0]


def locate_weights(weights: WeightFile, path: str | Path | None = None) -> Path:
    """Return the local file for ``weights``: ``path`` if given, else the hub cache copy.

    Raises :class:`MissingWeightsError` when the file is not there; never touches the network.
    """
    if path is not None:
        candidate = Path(path).expanduser()
        if not candidate.is_file():
            raise MissingWeightsError(weights, given=candidate)
        return candidate
    candidate = hub_checkpoint_dir() / weights.filename
    if not candidate.is_file():
        raise MissingWeightsError(weights)
    return candidate


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file without unpickling arbitrary objects."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader failure means the same thing to the user
        raise ValueError(f"could not read weight file {path}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weight file {path} does not hold a state dict of tensors")
    return state
