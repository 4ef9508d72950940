"""Lazy package exports (PEP 562): a package lists ``{name: submodule}`` and each name is imported from
its submodule on first use. Importing ``ponogan.cli.train`` then costs ``ponogan.training``'s
``__init__`` nothing, so the commands' ``--help`` answers without importing torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``exports`` map names to submodules
    (``"train": "loop"``); a looked-up name is cached in the package's namespace."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
