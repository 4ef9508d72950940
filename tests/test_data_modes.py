"""``register_dataset``: a user's own mode is built by ``build_dataset``/``create_dataset`` and listed
in the unknown-mode error; bad or clashing names fail."""

import pytest
import torch
from torch.utils.data import Dataset

from ponogan.data import DataOptions, build_dataset, create_dataset, modes, register_dataset


class Squares(Dataset):
    """A custom mode: items of the built-in form, with the arguments it was built with."""

    def __init__(self, root, phase, options):
        self.root, self.phase, self.options = root, phase, options

    def __len__(self):
        return 2

    def __getitem__(self, index):
        image = torch.full((self.options.input_nc, 4, 4), float(index))
        return {"A": image, "B": -image, "A_path": f"sq/{index}", "B_path": f"sq/{index}"}


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Registrations made by a test are dropped after it."""
    monkeypatch.setattr(modes, "DATASETS", dict(modes.DATASETS))
    monkeypatch.setattr(modes, "ROOTLESS", set(modes.ROOTLESS))


def test_registered_mode_builds_through_build_dataset(tmp_path):
    register_dataset("Squares", Squares, needs_root=False)
    options = DataOptions(input_nc=1)
    ds = build_dataset("squares", None, "test", options)  # names match case-insensitively
    assert isinstance(ds, Squares) and (ds.root, ds.phase, ds.options) == (None, "test", options)
    assert torch.equal(ds[1]["A"], torch.ones(1, 4, 4))
    assert create_dataset("SQUARES", tmp_path, input_nc=3).root == tmp_path
    with pytest.raises(ValueError, match="valid modes: unaligned, aligned, single, list, glyphs, squares"):
        build_dataset("circles", None, "train", options)


def test_registered_mode_needs_a_root_unless_told():
    register_dataset("rooted", Squares)
    with pytest.raises(ValueError, match="'rooted' needs a root folder"):
        build_dataset("rooted", None, "train", DataOptions())


@pytest.mark.parametrize(
    "name, match", [("aligned", "already registered"), (" ", "non-empty"), (None, "non-empty")]
)
def test_bad_names_fail(name, match):
    with pytest.raises(ValueError, match=match):
        register_dataset(name, Squares)
