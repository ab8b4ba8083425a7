"""``usbench data check``: a per-fold table of listed / present / missing / unreadable clips."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from usbench.datasets.base import Dataset


@dataclass(frozen=True)
class CheckReport:
    """Per-fold counts and the unreadable files.

    Attributes:
        table: rows per fold plus "all": listed, present, missing, unreadable.
        unreadable: (relative path, reason) for each present clip that fails to decode.
    """

    table: pd.DataFrame
    unreadable: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        total = self.table.loc["all"]
        return bool(total["missing"] == 0 and total["unreadable"] == 0)


def check(ds: Dataset, progress: bool = True) -> CheckReport:
    """Decode every present clip of `ds` (no resampling) and count problems per fold."""
    from tqdm import tqdm

    from usbench.audio import read
    from usbench.errors import AudioError

    listed = ds.listed
    bad = pd.Series(False, index=listed.index)
    unreadable = []
    present = listed.index[listed["present"]]
    for i in tqdm(present, desc="decoding", unit="clip", disable=None if progress else True):
        try:
            read(listed.at[i, "path"])
        except AudioError as exc:
            bad[i] = True
            unreadable.append((f"audio/fold{listed.at[i, 'fold']}/{listed.at[i, 'clip_id']}",
                               exc.reason))
    frame = pd.DataFrame(
        {"fold": listed["fold"], "listed": 1, "present": listed["present"].astype(int),
         "missing": (~listed["present"]).astype(int), "unreadable": bad.astype(int)}
    )
    table = frame.groupby("fold").sum()
    table.loc["all"] = table.sum()
    return CheckReport(table=table, unreadable=unreadable)
