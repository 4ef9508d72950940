"""Share run folders on the Hugging Face Hub (no torch imported here).

* ``remote.resolve_run(name, revision)``: a local run folder, else a Hub repo ``user/name`` fetched into
  the hub library's cache (``HF_HOME``, ``HF_HUB_OFFLINE``), only the files a run folder needs;
* ``push.push_run(run, repo_id)``: upload a run's inference files and its model card;
* ``card.build_card(run, repo_id)``: the model card (``README.md``) of a run.

Every failure a user can hit is a ``UsageError`` or ``CommandError`` of one line (``ponogan.core.messages``).
"""

from __future__ import annotations

from ponogan.sharing.remote import is_repo_id, resolve_run

__all__ = ["is_repo_id", "resolve_run"]
