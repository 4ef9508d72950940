"""Write a file so that a reader sees its old content or its new content, never half of it.

``atomic_write(path, write)`` has ``write`` fill a hidden temp file in ``path``'s folder (the same file
system, so the final ``os.replace`` is atomic) and renames it over ``path``; when ``write`` or the rename
fails (disk full, Ctrl-C) the temp file is removed and ``path`` is left as it was. Every writer of
ponogan goes through it, so a temp file a kill leaves behind always has the one form of name by which
a sweeper can tell it is ours and what it was for: ``temp_target``. Every file it writes gets the mode a
plain ``open`` would give it (``0o666`` less the umask, ``file_mode``), also when the writer itself made it
private (safetensors writes through a 0600 temp file), so a run trained by one account can be served by
another. Imports no torch: ``--help`` paths use it.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

# ".<target name>.<random>.tmp": 8 hex digits here; letters, digits and "_" in the temp names of earlier
# versions (tempfile.mkstemp's, or the writer's pid), so their leftovers are recognised too.
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp")


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``/proc/self/status``);
    elsewhere it is set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of a new regular file under the current umask: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


def set_file_mode(path: str | os.PathLike) -> None:
    """Give the regular file ``path`` the mode ``file_mode()`` (writers that create 0600 files)."""
    os.chmod(path, file_mode())


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], object],
    *,
    exclusive: bool = False,
    fsync: bool = False,
    temp: str | os.PathLike | None = None,
) -> Path:
    """Call ``write(temp_path)``, then rename the temp file to ``path`` (its folder is created); returns
    ``path``. The temp name ``.<name>.<random>.tmp`` hides its suffix from format detection: image writers
    pass ``format=``.

    The file gets ``file_mode()`` whatever mode ``write`` created it with.

    ``exclusive``: never replace an existing ``path``; ``FileExistsError`` when it exists, also when
    another process creates it meanwhile (a hard link claims the name atomically; a file system without
    hard links is checked, then renamed into). ``fsync``: flush the content to disk before the rename, so
    that after a power cut ``path`` holds the old or the new content, not an empty file. ``temp``: a
    fixed temp name instead of a random one (``ponogan translate`` sweeps its own by name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(temp) if temp is not None else path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(temp)
        set_file_mode(temp)
        if fsync:
            with open(temp, "rb") as written:
                os.fsync(written.fileno())
        if not exclusive:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # atomic, and fails when the name exists
            except FileExistsError:
                raise
            except OSError:  # no hard links on this file system: check, then rename
                if os.path.lexists(path):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
                os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str, **options) -> Path:
    """``atomic_write`` of ``text`` in UTF-8 (``options``: those of ``atomic_write``); returns ``path``."""
    return atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"), **options)


def temp_target(name: str) -> str | None:
    """The name of the file that ``name`` is an ``atomic_write`` temp file of, or ``None`` when it is not
    such a temp name (``.config.json.0a1b2c3d.tmp`` -> ``config.json``)."""
    temp = _TEMP_NAME.fullmatch(name)
    return temp["target"] if temp else None
