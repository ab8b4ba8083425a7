"""Options of the ``csv`` and ``folders`` layouts: flags over the root's ``usbench.toml``.

``<root>/usbench.toml`` may hold (all optional, paths relative to the root)::

    table = "train.csv"        # csv: the clip table; folders: a table of folds/recordings
    file = "ID"                # column of file paths (folders: relative to the root)
    label = "Class"            # csv only: column of class names
    fold = "fold"              # column of fold numbers (else folds are generated)
    group = "recording"        # column of recording ids
    group_pattern = "^(\\d+)-" # regular expression; its first group in a file name is the
                               # recording id
    audio_dir = "Train"        # csv only: folder the file column is relative to
    extension = ".wav"         # csv only: added to file names that have none
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from usbench.errors import DatasetError

SIDE_FILE = "usbench.toml"

# usbench.toml key -> DataConfig field of the flag that overrides it.
FLAGS = {"table": "table", "file": "file_column", "label": "label_column",
         "fold": "fold_column", "group": "group_column", "group_pattern": "group_pattern"}


@dataclass(frozen=True)
class TableOptions:
    """Where a layout's clips, labels, folds and recordings are (None: not given)."""

    table: str | None = None
    file: str | None = None
    label: str | None = None
    fold: str | None = None
    group: str | None = None
    group_pattern: str | None = None
    audio_dir: str = ""
    extension: str = ""
    source: str = "flags"

    def pattern(self) -> re.Pattern | None:
        if self.group_pattern is None:
            return None
        try:
            return re.compile(self.group_pattern)
        except re.error as exc:
            raise DatasetError(f"group_pattern {self.group_pattern!r} from {self.source} is not "
                               f"a valid regular expression ({exc}). Fix it.") from None


def read_side_file(root: Path) -> dict:
    """The validated contents of ``<root>/usbench.toml`` ({} when there is none)."""
    import difflib
    import tomllib

    path = root / SIDE_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid TOML ({exc}). Fix it, or remove it and pass "
                           "the columns as flags.") from None
    keys = [f.name for f in fields(TableOptions) if f.name != "source"]
    for key, value in data.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise DatasetError(f"{path} has an unknown key '{key}'.{hint} Valid keys: "
                               f"{', '.join(keys)}.")
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"{path}: '{key}' must be a non-empty string, got {value!r}. "
                               f"Example: {key} = \"...\"")
    return data


def _check_inside(root: Path, key: str, value: str, fix: str) -> None:
    """A path named by `key` of ``<root>/usbench.toml`` must stay under the root (`root`
    resolved; the path's links and ``..`` resolved too)."""
    from usbench.datasets.base import inside

    if not inside(str(root / value), root):
        raise DatasetError(f"{root / SIDE_FILE}: {key} {value!r} leads outside the dataset "
                           f"root {root}. Paths in {SIDE_FILE} are relative to the root and "
                           f"stay under it: {fix}")


def table_options(root: Path, cfg) -> TableOptions:
    """The root's ``usbench.toml`` with the flags of `cfg` (a DataConfig) over it.

    Args:
        root: the resolved dataset root; the table and audio_dir that ``usbench.toml`` names
            must be under it (a ``--table`` flag may point anywhere).
    """
    side = read_side_file(root)
    if "table" in side and cfg.table is None:
        _check_inside(root, "table", side["table"],
                      "move the table under the root, or pass --table for one elsewhere.")
    if "audio_dir" in side:
        _check_inside(root, "audio_dir", side["audio_dir"],
                      "move the audio under the root, or point --data at the folder that "
                      "holds both the table and the audio.")
    opts = TableOptions(**side, source=str(root / SIDE_FILE)) if side else TableOptions()
    flags = {key: getattr(cfg, attr) for key, attr in FLAGS.items()
             if getattr(cfg, attr) is not None}
    if flags:
        opts = replace(opts, **flags, source=f"{opts.source} and flags" if side else "flags")
    return opts


def recording_ids(names: list[str], opts: TableOptions, where: str) -> list[str] | None:
    """Recording ids from `opts.group_pattern` applied to each file's base name (None: no
    pattern). A name the pattern does not match is a one-line error naming it."""
    pattern = opts.pattern()
    if pattern is None:
        return None
    out = []
    for name in names:
        base = Path(name).name
        m = pattern.search(base)
        if m is None:
            raise DatasetError(
                f"{where}: file {name} does not match group_pattern {opts.group_pattern!r} "
                f"(from {opts.source}). Fix the pattern so that every file name carries its "
                "recording id, or leave it out.")
        out.append(m.group(1) if pattern.groups else m.group(0))
    return out
