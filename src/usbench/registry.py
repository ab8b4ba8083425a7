"""A generic name -> lazily imported object registry with did-you-mean errors.

Entries are ``"module:attr"`` strings so that listing names never imports heavy code.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from usbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps kebab-case names to ``"module:attr"`` targets, resolved on first use.

    Args:
        kind: what the entries are, for messages ("model", "feature set", "dataset").
        entries: name -> "package.module:attribute".
    """

    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._targets = dict(entries)
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def check(self, name: str) -> str:
        """Return `name` if registered, else raise ConfigError with a did-you-mean."""
        if name in self._targets:
            return name
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"Unknown {self.kind} '{name}'.{hint} Available: {', '.join(self.names())}."
        )

    def get(self, name: str) -> T:
        """Import and return the object registered under `name`."""
        self.check(name)
        if name not in self._loaded:
            module, _, attr = self._targets[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]
