"""``usbench data check``: a per-fold table of listed / present / missing / unreadable clips.

A listed clip whose entry is there but cannot be decoded (a symbolic link loop, a dangling
link, a folder, a file that may not be read, a broken file) is unreadable, with the reason;
entries the table does not list are never looked at.

Three more columns count clips that are valid but worth a look: ``silent`` (peak below
-140 dBFS), ``short`` (shorter than one analysis window of the feature sets, 2,048 samples at
22,050 Hz: 93 ms) and ``loud`` (float samples beyond full scale, ``audio.FLOAT_PEAK_LIMIT``).
They are kept and used like any other clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from usbench.datasets.base import Dataset

SILENT_PEAK = 1e-7  # -140 dBFS
SHORT_SECONDS = 2048 / 22050  # one analysis window of the feature sets


@dataclass(frozen=True)
class CheckReport:
    """Per-fold counts and the unreadable files.

    Attributes:
        table: rows per fold plus "all": listed, present, missing, unreadable, silent, short,
            loud.
        unreadable: (relative path, reason) for each present clip that fails to decode.
        loud: (relative path, peak |x|) for each clip with float samples beyond full scale.
    """

    table: pd.DataFrame
    unreadable: list[tuple[str, str]]
    loud: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        total = self.table.loc["all"]
        return bool(total["missing"] == 0 and total["unreadable"] == 0)


def check(ds: Dataset, progress: bool = True) -> CheckReport:
    """Decode every present clip of `ds` (no resampling) and count problems per fold."""
    from tqdm import tqdm

    from usbench.audio import FLOAT_PEAK_LIMIT, peak, read
    from usbench.errors import AudioError

    listed = ds.listed
    bad = pd.Series(False, index=listed.index)
    silent, short, over = bad.copy(), bad.copy(), bad.copy()
    unreadable, loud = [], []
    present = listed.index[listed["present"]]
    for i in tqdm(present, desc="decoding", unit="clip", disable=None if progress else True):
        try:
            data, sr = read(listed.at[i, "path"])
        except AudioError as exc:
            bad[i] = True
            unreadable.append((ds.relative(listed.at[i, "path"]), exc.reason))
            continue
        loudest = peak(data)
        silent[i] = loudest < SILENT_PEAK
        short[i] = data.shape[0] / sr < SHORT_SECONDS
        if loudest > FLOAT_PEAK_LIMIT:
            over[i] = True
            loud.append((ds.relative(listed.at[i, "path"]), loudest))
    frame = pd.DataFrame(
        {"fold": listed["fold"], "listed": 1, "present": listed["present"].astype(int),
         "missing": (~listed["present"]).astype(int), "unreadable": bad.astype(int),
         "silent": silent.astype(int), "short": short.astype(int), "loud": over.astype(int)}
    )
    table = frame.groupby("fold").sum()
    table.loc["all"] = table.sum()
    return CheckReport(table=table, unreadable=unreadable, loud=loud)
