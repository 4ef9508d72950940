"""Upload a run folder to a Hub model repo: its inference files, pictures and model card, in one commit.

``push_run(run, repo_id)`` checks everything it can before the first request (the run folder, its
``config.json``, the repo id, the revision name): a ``UsageError`` then, with nothing sent. It creates the
repo (``private`` for a new one) and the branch ``revision`` when missing, and commits:

* ``config.json``, ``model.safetensors`` (what ``resolve_run`` needs), ``metrics.json`` when present;
* ``losses.png`` / ``metrics.png``, ``sample.png`` and the newest ``samples/step_*.png`` when present;
* ``README.md``: the run folder's own when it has one (uploaded as it is: the user's card wins),
  otherwise the card ``card.build_card`` generates into the upload. The run folder is never written to,
  and a README.md already in the repo replaces only a card ponogan generated (``card.GENERATED_MARK``):
  a card written or edited on the Hub stays;
* the training state (the newest complete ``state/step_*`` folder and a ``state/latest`` naming it) only
  with ``with_state=True``: it holds pickled optimizer and RNG files, which ``resolve_run`` never downloads.

A repo whose ``config.json`` is not a ponogan run's is refused (``UsageError``, nothing committed): a
push never replaces another library's model. Hub failures are one ``CommandError`` line (exit 1):
refused credentials, no network, a server error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ponogan.core.messages import CommandError, UsageError, first_line
from ponogan.sharing.files import (
    CARD_NAME,
    CONFIG_NAME,
    LOSSES_NAME,
    METRICS_JSON,
    METRICS_PLOT_NAME,
    SAMPLE_NAME,
    SAMPLES_DIR,
    STATE_DIR,
    WEIGHTS_NAME,
)


@dataclass
class PushPlan:
    """What one push commits: ``files`` maps a path in the repo to a local file or to bytes."""

    repo_id: str
    files: dict[str, Path | bytes] = field(default_factory=dict)
    card_generated: bool = False
    card_kept: bool = False  # the repo's own README.md was left in place


@dataclass
class PushResult:
    plan: PushPlan
    repo_url: str
    commit_url: str


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid ``user/name`` Hub id, else ``UsageError``."""
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise UsageError(f"--repo {repo_id!r} must be a Hub repo id user/name (or org/name)")
    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise UsageError(f"--repo {repo_id}: not a valid Hub repo id: {first_line(err)}") from None
    return repo_id


def plan_push(
    run: str | os.PathLike,
    repo_id: str,
    with_state: bool = False,
    license: str = "mit",
    revision: str | None = None,
) -> PushPlan:
    """The files a push of ``run`` to ``repo_id`` commits (module doc); ``UsageError`` when ``run`` is not
    a readable run folder or ``with_state`` finds no complete training state."""
    from ponogan.core.run_folder import RunCard, RunFolderError
    from ponogan.families import family_names
    from ponogan.sharing.card import build_card

    check_repo_id(repo_id)
    run_dir = Path(run)
    if not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} does not exist (give the folder train.py wrote)")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (run_dir / name).is_file():
            raise UsageError(f"{run_dir} is not a run folder: it has no {name} (written by save_pretrained)")
    try:
        config = RunCard.load(run_dir / CONFIG_NAME, generators=False).to_dict()
    except RunFolderError as err:
        raise UsageError(first_line(err)) from None
    if not isinstance(config, dict) or config.get("family") not in family_names():
        raise UsageError(
            f"{run_dir / CONFIG_NAME} names no known family (one of {', '.join(family_names())}): "
            "not a ponogan run"
        )
    plan = PushPlan(repo_id)
    plan.files[CONFIG_NAME] = run_dir / CONFIG_NAME
    plan.files[WEIGHTS_NAME] = run_dir / WEIGHTS_NAME
    pictures = {}
    for name in (METRICS_JSON, LOSSES_NAME, METRICS_PLOT_NAME, SAMPLE_NAME):
        if (run_dir / name).is_file():
            plan.files[name] = run_dir / name
    grids = sorted((run_dir / SAMPLES_DIR).glob("step_*.png")) if (run_dir / SAMPLES_DIR).is_dir() else []
    if grids:
        plan.files[f"{SAMPLES_DIR}/{grids[-1].name}"] = grids[-1]
        pictures["samples"] = f"{SAMPLES_DIR}/{grids[-1].name}"
    elif SAMPLE_NAME in plan.files:
        pictures["samples"] = SAMPLE_NAME
    if LOSSES_NAME in plan.files:
        pictures["losses"] = LOSSES_NAME
    if with_state:
        _add_state(plan, run_dir)
    if (run_dir / CARD_NAME).is_file():
        plan.files[CARD_NAME] = run_dir / CARD_NAME
    else:
        plan.files[CARD_NAME] = build_card(run_dir, config, repo_id, pictures, license, revision).encode()
        plan.card_generated = True
    return plan


def _add_state(plan: PushPlan, run_dir: Path) -> None:
    from ponogan.core.run_folder import STATE_LATEST
    from ponogan.training.state import latest_state

    state = latest_state(run_dir)
    if state is None:
        raise UsageError(f"--with-state: {run_dir} has no complete training state under {STATE_DIR}/")
    for path in sorted(state.rglob("*")):
        if path.is_file():
            plan.files[f"{STATE_DIR}/{state.name}/{path.relative_to(state).as_posix()}"] = path
    plan.files[f"{STATE_DIR}/{STATE_LATEST}"] = (state.name + "\n").encode()


def push_run(
    run: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    with_state: bool = False,
    license: str = "mit",
    token: str | None = None,
    commit_message: str | None = None,
) -> PushResult:
    """Upload ``run`` to the Hub repo ``repo_id`` (module doc) and return what was committed where."""
    from huggingface_hub import CommitOperationAdd, HfApi

    if revision is not None and (not revision.strip() or revision != revision.strip()):
        raise UsageError(f"--revision {revision!r} must be a branch name without surrounding spaces")
    plan = plan_push(run, repo_id, with_state=with_state, license=license, revision=revision)
    api = HfApi(token=token, library_name="ponogan")
    message = commit_message or f"Upload ponogan run {Path(run).name}"
    operations = [
        CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(src) if isinstance(src, Path) else src)
        for path, src in plan.files.items()
    ]
    with _push_errors(repo_id, api.endpoint):
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        _check_existing(api, plan, revision)
        operations = [op for op in operations if op.path_in_repo in plan.files]
        info = api.create_commit(repo_id, operations, commit_message=message, revision=revision)
    return PushResult(plan, str(repo_url), info.commit_url)


def _check_existing(api, plan: PushPlan, revision: str | None) -> None:
    """Refuse a repo holding another library's config.json; keep a README.md the user wrote (dropped
    from ``plan``, ``plan.card_kept``) when this push would replace it with a generated card."""
    from ponogan.sharing.card import GENERATED_MARK
    from ponogan.sharing.remote import check_ponogan_config

    existing = set(api.list_repo_files(plan.repo_id, revision=revision, repo_type="model"))
    fetch = {}
    for name in (CONFIG_NAME, CARD_NAME):
        if name in existing:
            fetch[name] = Path(api.hf_hub_download(plan.repo_id, name, revision=revision, repo_type="model"))
    if CONFIG_NAME in fetch:
        check_ponogan_config(fetch[CONFIG_NAME], f"{plan.repo_id} (a push would replace it)")
    user_card = CARD_NAME in fetch and GENERATED_MARK not in fetch[CARD_NAME].read_text("utf-8", "replace")
    if user_card and plan.card_generated:
        del plan.files[CARD_NAME]
        plan.card_generated, plan.card_kept = False, True


class _push_errors:
    """The hub library's exceptions during a push as one ``CommandError`` line."""

    def __init__(self, repo_id: str, endpoint: str):
        self.repo_id, self.endpoint = repo_id, endpoint

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or isinstance(err, (UsageError, CommandError)) or not isinstance(err, Exception):
            return False
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        where = f"pushing to {self.repo_id} on {self.endpoint}"
        if isinstance(err, OfflineModeIsEnabled):
            raise CommandError(f"{where}: HF_HUB_OFFLINE=1 forbids uploads; unset it") from None
        if isinstance(err, HfHubHTTPError):
            status = getattr(err.response, "status_code", None)
            if status in (401, 403):
                raise CommandError(
                    f"{where}: the Hub refused the credentials ({status}): log in with a write token "
                    "(`hf auth login`, or HF_TOKEN)"
                ) from None
            raise CommandError(f"{where}: the Hub answered {status}: {first_line(err)}") from None
        if isinstance(err, (OSError, ValueError)) or type(err).__module__.startswith("httpx"):
            raise CommandError(f"{where} failed: {first_line(err)}") from None
        return False
