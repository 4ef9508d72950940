"""The family registry: every translator family, looked up by the name a config or run folder gives.

``get_family(name)`` returns the ``Family`` spec (``ponogan.families.spec``); ``family_names()`` lists
them. The built-in families live one module each (``pix2pix``, ``cyclegan``, ``munit``) and are imported
on first lookup, so importing this registry imports neither torch nor any network code. A new family
calls ``register_family(Family(...))`` in its own module and adds its module to ``BUILTIN`` (or, from
outside the package, imports its module before use).
"""

from __future__ import annotations

import importlib

from ponogan.core.messages import UsageError
from ponogan.families.spec import Family, NetworkShape, Route

# name -> module that registers it when imported
BUILTIN: dict[str, str] = {
    "pix2pix": "ponogan.families.pix2pix",
    "cyclegan": "ponogan.families.cyclegan",
    "munit": "ponogan.families.munit",
    "drit": "ponogan.families.drit",
    "cut": "ponogan.families.cut",
}
# the family a config without a ``family`` key trains
DEFAULT_FAMILY = "pix2pix"

_REGISTRY: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` under ``family.name`` (a second registration of the same name replaces the first,
    so a reloaded module stays usable); returns it, so a module can write ``SPEC = register_family(...)``."""
    _REGISTRY[family.name] = family
    return family


def family_names() -> tuple[str, ...]:
    """Every known family name: the built-in ones, then those registered from elsewhere."""
    return tuple(dict.fromkeys([*BUILTIN, *_REGISTRY]))


def get_family(name: object) -> Family:
    """The spec of family ``name``; ``UsageError`` naming the known families if there is none."""
    if isinstance(name, str):
        if name not in _REGISTRY and name in BUILTIN:
            importlib.import_module(BUILTIN[name])
        if name in _REGISTRY:
            return _REGISTRY[name]
    raise UsageError(f"unknown family {name!r}; valid families: {', '.join(family_names())}")


def all_families() -> list[Family]:
    """Every family's spec (imports the built-in family modules)."""
    return [get_family(name) for name in family_names()]


__all__ = [
    "BUILTIN",
    "DEFAULT_FAMILY",
    "Family",
    "NetworkShape",
    "Route",
    "all_families",
    "family_names",
    "get_family",
    "register_family",
]
