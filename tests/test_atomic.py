"""ponogan.core.atomic: the one temp-file-and-rename writer (target replaced whole or not at all, temp hidden
in the target's folder and removed on failure, exclusive writes, fsync, a torch-free import)."""

import errno
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from ponogan.core.atomic import atomic_write, current_umask, file_mode, temp_target, write_text_atomic


def test_replaces_the_target_through_a_hidden_temp_in_its_folder(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    seen = []

    def write(temp):
        seen.append(temp)
        assert target.read_text() == "old"  # readers see the old file while the new one is written
        temp.write_text("new")

    assert atomic_write(target, write) == target
    (temp,) = seen
    assert temp.parent == tmp_path and temp.name.startswith(".")
    assert temp_target(temp.name) == "metrics.json"
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_target_untouched_and_no_temp(tmp_path, error):
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")

    def write(temp):
        temp.write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, write)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_a_failed_rename_leaves_no_temp(tmp_path, monkeypatch):
    def no_rename(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(PermissionError):
        write_text_atomic(tmp_path / "a.txt", "new")
    assert list(tmp_path.iterdir()) == []


def test_text_is_utf8_and_the_folder_is_created(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "dir" / "notes.md", "Größe ✓\n")
    assert path.read_bytes() == "Größe ✓\n".encode()


@pytest.mark.parametrize("hard_links", [True, False])
def test_exclusive_never_replaces_an_existing_file(tmp_path, monkeypatch, hard_links):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    if not hard_links:  # e.g. FAT or some network file systems: checked, then renamed
        monkeypatch.setattr(os, "link", no_links)
    path = write_text_atomic(tmp_path / "stats.npz", "first", exclusive=True)
    assert path.read_text() == "first"
    with pytest.raises(FileExistsError):
        write_text_atomic(path, "second", exclusive=True)
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["stats.npz"]


def test_fsync_flushes_the_temp_before_the_rename(tmp_path, monkeypatch):
    synced = []  # inode of each file flushed
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino), real_fsync(fd)))
    write_text_atomic(tmp_path / "latest", "step_000010\n")
    assert synced == []
    path = write_text_atomic(tmp_path / "latest", "step_000020\n", fsync=True)
    assert synced == [path.stat().st_ino] and path.read_text() == "step_000020\n"


def test_a_fixed_temp_name_is_used_and_removed(tmp_path):
    temp = tmp_path / ".out.png.partial"
    seen = []
    atomic_write(tmp_path / "out.png", lambda t: (seen.append(t), t.write_bytes(b"png")), temp=temp)
    assert seen == [temp] and not temp.exists() and (tmp_path / "out.png").read_bytes() == b"png"


def test_temp_names_say_what_they_were_for_and_user_names_are_not_ours():
    assert temp_target(".model.safetensors.k2_j3h4x.tmp") == "model.safetensors"  # earlier versions' names
    assert temp_target(".config.json.1234.tmp") == "config.json"
    assert temp_target(".losses.png.0a1b2c3d.tmp") == "losses.png"
    for name in ("model.safetensors.0a1b2c3d.tmp", ".tmp_mine", ".notes.tmp", "a.png", ".x.png.partial"):
        assert temp_target(name) is None, name


@pytest.fixture
def umask():
    """Set the process umask for a test (``umask(0o077)``); the old one comes back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_file_gets_the_mode_of_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask and file_mode() == mode
    private = tmp_path / "private.bin"  # a writer that makes its file 0600 (as tempfile.mkstemp does)
    atomic_write(private, lambda temp: (temp.write_bytes(b"x"), os.chmod(temp, 0o600)))
    weights = tmp_path / "model.safetensors"
    atomic_write(weights, lambda temp: save_file({"w": torch.zeros(2)}, temp))
    text = write_text_atomic(tmp_path / "config.json", "{}")
    for path in (private, weights, text):
        assert path.stat().st_mode & 0o777 == mode, path.name


def test_imports_no_torch():
    code = "import sys, ponogan.core.atomic; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr
