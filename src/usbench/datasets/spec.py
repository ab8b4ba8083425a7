"""A registered dataset layout: its name, card, opener and detection marker."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from usbench.config import DataConfig
from usbench.datasets.base import Dataset


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset layout.

    Attributes:
        name: registry name.
        summary: one line for ``usbench ls datasets``.
        card_module: the module whose docstring is the dataset card.
        opener: ``"module:function"``, called as ``function(root, data_config) -> Dataset``.
        marker: a file under the root that identifies the layout (None: never detected).
        own_folds: the layout reads ``--n-folds``, ``--table`` and the column flags
            (``folders``, ``csv``); other layouts refuse them.
    """

    name: str
    summary: str
    card_module: str
    opener: str = ""
    marker: str | None = None
    own_folds: bool = False

    def card(self) -> str:
        """The dataset card (its module docstring)."""
        return (importlib.import_module(self.card_module).__doc__ or "").strip()

    def open(self, root: Path, cfg: DataConfig) -> Dataset:
        module, _, attr = self.opener.partition(":")
        return getattr(importlib.import_module(module), attr)(root, cfg)
