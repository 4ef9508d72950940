"""Find a run folder by name: a local folder, else a Hub model repo fetched into the hub library's cache.

``resolve_run(name, revision)`` is the one call every loader makes (``TranslationPipeline.from_pretrained``,
``ponogan translate`` / ``eval --checkpoint``, ``app.py --checkpoint``):

* a local path that exists wins, whatever it looks like (``user/name`` folder included);
* a name shaped like a repo id (``user/name``, whose first part is not a local folder) is fetched with
  ``huggingface_hub.snapshot_download``: its cache (``HF_HOME`` / ``HF_HUB_CACHE``), endpoint
  (``HF_ENDPOINT``), token (``HF_TOKEN``, ``hf auth login``) and offline mode (``HF_HUB_OFFLINE=1``,
  cached revisions only). First ``config.json`` alone: a repo that is not a ponogan run is refused before
  its weights are downloaded; then only ``files.DOWNLOAD_PATTERNS`` (never a pickle);
* anything else is returned as given, for the caller to report the missing local path.

Failures are one line: ``UsageError`` (exit 2) for a bad id, a missing repo or revision, a repo that is
not a ponogan run; ``CommandError`` (exit 1) when the Hub cannot be reached (or offline mode forbids it)
and the run is not cached, the Hub fails, or the cache cannot be written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from ponogan.core.messages import CommandError, UsageError, first_line
from ponogan.sharing.files import CONFIG_NAME, DOWNLOAD_PATTERNS, WEIGHTS_NAME

# one "/" between two non-empty parts, no spaces or backslashes: the shape of a Hub repo id
_REPO_SHAPE = re.compile(r"[^/\\\s]+/[^/\\\s]+")
_LOCAL_SUFFIXES = (".safetensors", ".json", ".pt", ".pth", ".ckpt", ".bin")


def is_repo_id(name: str | os.PathLike) -> bool:
    """Whether ``name`` would be looked up on the Hub: it does not exist locally, has the shape
    ``user/name``, is not absolute or home-relative, does not end like a file, and its first part is not
    a local folder (``checkpoints/typo`` is a missing local run, not a repo of a user "checkpoints")."""
    text = os.fspath(name)
    if Path(text).exists() or not _REPO_SHAPE.fullmatch(text) or text.startswith((".", "~")):
        return False
    owner = text.split("/", 1)[0]
    return not text.lower().endswith(_LOCAL_SUFFIXES) and not Path(owner).is_dir()


def resolve_run(name: str | os.PathLike, revision: str | None = None, *, offline: bool | None = None) -> Path:
    """The local run folder (or file) that ``name`` stands for; see the module doc.

    ``revision`` (a branch, tag or commit) applies to a Hub repo only: with a local ``name`` it is a
    ``UsageError``, so a pinned revision is never silently ignored. ``offline`` overrides the hub
    library's offline mode for this call (None: ``HF_HUB_OFFLINE`` as the library read it); the app,
    which turns offline mode on for everything else, passes the user's own setting.
    """
    if not is_repo_id(name):
        if revision is not None:
            raise UsageError(
                f"a revision ({revision}) applies to a Hub repo id; {os.fspath(name)} is a local path "
                "(a local folder of the same name wins over a repo)"
            )
        return Path(name)
    with _offline_mode(offline):
        return download_run(os.fspath(name), revision)


@contextlib.contextmanager
def _offline_mode(offline: bool | None):
    """The hub library's offline switch set to ``offline`` inside the block (unchanged for None)."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    if offline is not None:
        constants.HF_HUB_OFFLINE = bool(offline)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def download_run(repo_id: str, revision: str | None = None) -> Path:
    """The cached snapshot folder of Hub run ``repo_id`` at ``revision`` (default: main), downloading what
    is missing; ``UsageError`` / ``CommandError`` in one line (module doc)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise UsageError(
            f"{repo_id} is neither a local run folder nor a valid Hub repo id (user/name of letters, digits, "
            f"'-', '_', '.'): {first_line(err)}"
        ) from None
    where = repo_id + (f" (revision {revision})" if revision else "")
    options = {"repo_type": "model", "library_name": "ponogan"}
    with _quiet_hub(), _hub_errors(repo_id, revision, where):
        # config.json first: a foreign repo is refused before any weights come down
        folder = Path(
            snapshot_download(
                repo_id, revision=revision, allow_patterns=[CONFIG_NAME], tqdm_class=_silent_tqdm(), **options
            )
        )
        check_ponogan_config(folder / CONFIG_NAME, where)
        # the snapshot folder is named by the commit: pin it, so both calls see one commit
        folder = Path(
            snapshot_download(
                repo_id, revision=folder.name, allow_patterns=list(DOWNLOAD_PATTERNS), **options
            )
        )
    if not (folder / WEIGHTS_NAME).is_file():
        raise UsageError(f"Hub repo {where} has a ponogan config.json but no {WEIGHTS_NAME}: it is not a run")
    return folder


def check_ponogan_config(path: Path, where: str) -> None:
    """``UsageError`` unless ``path`` is a ponogan run's config.json (a family and its generators)."""
    if not path.is_file():
        raise UsageError(
            f"Hub repo {where} has no {CONFIG_NAME}: it is not a ponogan run (share one with `ponogan push`)"
        )
    from ponogan.core.run_folder import RunCard, RunFolderError

    try:
        card = RunCard.load(path, generators=True, family=True)
    except RunFolderError:
        card = None
    if card is None:
        raise UsageError(
            f"Hub repo {where} is not a ponogan run: its {CONFIG_NAME} has no 'family' and 'generators' "
            "(written by ponogan's save_pretrained)"
        )


def _silent_tqdm() -> type:
    """A progress bar class that shows nothing (the one-file config.json fetch needs no bar)."""
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

    return Silent


@contextlib.contextmanager
def _quiet_hub():
    """The hub library's log messages (which would add lines to a one-line error) at ERROR level."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str | None, where: str):
    """The hub library's exceptions as one ``UsageError`` / ``CommandError`` line naming ``where``."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except (UsageError, CommandError):
        raise
    except RevisionNotFoundError:
        raise UsageError(
            f"Hub repo {repo_id} has no revision {revision or 'main'} (a branch, tag or commit)"
        ) from None
    except GatedRepoError:
        raise UsageError(
            f"Hub repo {repo_id} is gated: accept its conditions on the Hub, then log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise UsageError(
            f"{repo_id} is not a local folder and the Hub ({constants.ENDPOINT}) has no model repo by that id"
            " (or it is private: log in with `hf auth login` or set HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise CommandError(
                f"{where} is not in the Hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 forbids "
                "downloading it: unset HF_HUB_OFFLINE, or fetch it once while online"
            ) from None
        raise CommandError(
            f"cannot reach the Hub ({constants.ENDPOINT}) to fetch {where}, and it is not in the cache "
            f"({constants.HF_HUB_CACHE}): check the network, HF_ENDPOINT, or give a local run folder"
        ) from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", "an error")
        raise CommandError(f"the Hub answered {status} while fetching {where}: {first_line(err)}") from None
    except OSError as err:
        raise CommandError(
            f"fetching {where} into the Hub cache ({constants.HF_HUB_CACHE}) failed: {first_line(err)}"
        ) from None
    except Exception as err:
        if not type(err).__module__.startswith("httpx"):  # the hub library's HTTP client
            raise
        raise CommandError(
            f"the connection to the Hub ({constants.ENDPOINT}) failed while fetching {where}: "
            f"{first_line(err)}"
        ) from None
