"""Frozen run configuration and fingerprints.

Every run is described by one immutable tree of dataclasses; defaults live only here.
``fingerprint`` turns any JSON-able object into a short, stable key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from usbench.augment import AudioAugment


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; dataclasses become dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(obj: Any) -> str:
    """First 12 hex digits of the sha256 of `obj`'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:12]


# The keys a --config file may hold: the command's flags, and a [params] table.
DATA_KEYS = ("dataset", "data", "allow_missing", "skip_bad", "n_folds", "fold_seed", "table",
             "file_column", "label_column", "fold_column", "group_column", "group_pattern")
COMMAND_KEYS = {
    "run": ("folds", "seed", "experiment", "tracking_uri", "save_model", "augment", "params"),
    "sweep": ("trials", "timeout", "study", "storage", "workers", "nested", "pruner", "seed",
              "experiment", "tracking_uri", "augment", "params"),
    "audit": ("seed", "experiment", "tracking_uri", "augment", "params"),
}
CONFIG_KEYS = DATA_KEYS + COMMAND_KEYS["run"]
# numpy's seeds: integers from 0 to 2**32 - 1 (its legacy generator's range, the narrower).
SEED_MAX = 2**32 - 1
# What each key of a --config file must hold, as the flags check it: (test, what it must be).
_KINDS = {
    "text": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "switch": (lambda v: isinstance(v, bool), "true or false"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
              "a positive integer"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= SEED_MAX,
             f"an integer from 0 to {SEED_MAX:,}"),
    "seconds": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0,
                "a positive number of seconds"),
    "folds": (lambda v: isinstance(v, list) and bool(v) and all(
        isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in v),
        "a list of positive fold numbers, e.g. [1, 2, 10]"),
    "pruner": (lambda v: v in ("median", "none"), '"median" or "none"'),
}
KEY_KINDS = {**dict.fromkeys(("dataset", "data", "table", "file_column", "label_column",
                              "fold_column", "group_column", "group_pattern", "experiment",
                              "tracking_uri", "study", "storage"), "text"),
             **dict.fromkeys(("allow_missing", "skip_bad", "save_model", "augment", "nested"),
                             "switch"),
             "n_folds": "count", "trials": "count", "workers": "count", "fold_seed": "seed",
             "seed": "seed", "timeout": "seconds", "folds": "folds", "pruner": "pruner"}


def layered(cls, file: dict, flags: dict, **given):
    """A `cls` config from three layers: its defaults < the --config `file` < the command-line
    `flags` (a flag counts when it is not None, or True for a switch); `given` are fields the
    caller has already merged (data, overrides, augment)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            continue
        flag = flags.get(f.name)
        if flag is not None and flag is not False:
            values[f.name] = flag
        elif f.name in file:
            values[f.name] = file[f.name]
    return cls(**values, **given)


def load_config_file(path: str, command: str = "run") -> dict:
    """Read a TOML file of `command`'s settings (keys as its flags, plus a ``[params]``
    table).

    Raises:
        ConfigError: the file is missing, a folder, unreadable, not TOML, or holds a key
            outside CONFIG_KEYS.
    """
    import difflib
    import tomllib

    from usbench.errors import ConfigError

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} not found. Check the --config path.") from None
    except IsADirectoryError:
        raise ConfigError(f"Config file {path} is a folder. Pass a .toml file to --config.") \
            from None
    except PermissionError:
        raise ConfigError(f"Config file {path} cannot be read (permission denied). Check its "
                          "permissions.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid TOML ({exc}).") from None
    keys = DATA_KEYS + COMMAND_KEYS[command]
    for key in data:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"Config file {path} has an unknown key '{key}'.{hint} Valid "
                              f"keys for `usbench {command}`: {', '.join(keys)}.")
    if not isinstance(data.get("params", {}), dict):
        raise ConfigError(f"Config file {path}: 'params' must be a table ([params] with "
                          "name = value lines).")
    for key, value in data.items():
        if key in KEY_KINDS:
            ok, what = _KINDS[KEY_KINDS[key]]
            if not ok(value):
                raise ConfigError(f"Config file {path}: '{key}' must be {what}, got "
                                  f"{value!r}. Fix it in the file.")
    return data


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Which dataset to read and how strictly.

    Attributes:
        dataset: a registered dataset name; None: detected from the root's metadata files
            (synthetic, UrbanSound8K, ESC-50), else an error asking for it.
        root: dataset root folder; None means ``$USBENCH_DATA`` or the embedded synthetic set.
        allow_missing: use only the clips present when some listed clips are missing.
        skip_bad: leave out clips that fail to decode (listed in the cache manifest) instead
            of stopping; results are then marked partial.
        n_folds, fold_seed: generated folds (``folders`` and ``csv`` without a fold column):
            how many (None: 5) and the shuffling seed (None: 0).
        table, file_column, label_column, fold_column, group_column, group_pattern: the
            ``csv`` layout's table (relative to the root) and column names, and a regular
            expression whose first group in a file name is its recording id; they override
            the root's ``usbench.toml``. ``folders`` uses all but ``label_column``.
    """

    dataset: str | None = None
    root: str | None = None
    allow_missing: bool = False
    skip_bad: bool = False
    n_folds: int | None = None
    fold_seed: int | None = None
    table: str | None = None
    file_column: str | None = None
    label_column: str | None = None
    fold_column: str | None = None
    group_column: str | None = None
    group_pattern: str | None = None

    def layout_options(self) -> dict[str, str | int]:
        """The options only ``folders`` and ``csv`` read, those that are set, by flag name."""
        names = ("n_folds", "fold_seed", "table", "file_column", "label_column",
                 "fold_column", "group_column", "group_pattern")
        return {f"--{n.replace('_', '-')}": getattr(self, n) for n in names
                if getattr(self, n) is not None}


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """One feature-cache build.

    Attributes:
        data: the dataset.
        features: a registered feature-set name (``usbench features ls``).
        jobs: worker processes (None: one thread per available core in this process, or
            one process per core with ``augment``). Not part of any key.
        skip_bad: list undecodable clips in the manifest instead of stopping.
        chunk_size: clips per cache shard (the unit of resumption).
        augment: build the features of audio-augmented variants of every clip with this
            spec instead of the clips' own.
    """

    data: DataConfig = DataConfig()
    features: str = "mfcc-stats"
    jobs: int | None = None
    skip_bad: bool = False
    chunk_size: int = 64
    augment: AudioAugment | None = None


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One ``usbench run``: a model family on a feature set under leave-one-fold-out.

    Attributes:
        data: the dataset.
        features: registered feature-set name.
        model: registered model-family name.
        overrides: ``--set`` hyper-parameter overrides as (name, raw string) pairs; typed and
            validated by the model family.
        folds: test folds (None: every present fold).
        seed: random seed of every model fit.
        experiment: MLflow experiment (None: the dataset's name).
        tracking_uri: MLflow tracking URI (None: sqlite under ``results/``).
        save_model: also fit on all present folds and log it as the run's MLflow model
            (``usbench predict``, ``mlflow models serve``).
        register: also register that model under this name in the MLflow model registry.
        jobs: feature-extraction worker processes (not part of any key).
        augment: audio augmentation (``--augment``, tuned by ``--set augment.KEY=VALUE``), or
            None: each training fold then also offers cached deformed copies of its clips.
        from_study: the Optuna study that chose these parameters on the same folds (the run
            is then labelled "selected on CV"), or None: a single run.
        fold_jobs: worker processes training test folds side by side (1: one after
            another in this process; None: the model family's default, a worker per core
            for the MLP, else 1). The same results either way (not part of any key).
    """

    data: DataConfig = DataConfig()
    features: str = "mfcc-stats"
    model: str = "logreg"
    overrides: tuple[tuple[str, str], ...] = ()
    folds: tuple[int, ...] | None = None
    seed: int = 0
    experiment: str | None = None
    tracking_uri: str | None = None
    save_model: bool = False
    register: str | None = None
    jobs: int | None = None
    augment: AudioAugment | None = None
    from_study: str | None = None
    fold_jobs: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """One ``usbench audit``: a configuration under the folds and under a random split.

    Attributes:
        data, features, model, overrides, seed, experiment, tracking_uri, jobs, augment: as in
            RunConfig.
    """

    data: DataConfig = DataConfig()
    features: str = "mfcc-stats"
    model: str = "rf"
    overrides: tuple[tuple[str, str], ...] = ()
    seed: int = 0
    experiment: str | None = None
    tracking_uri: str | None = None
    jobs: int | None = None
    augment: AudioAugment | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """One ``usbench sweep``: an Optuna study over a model family's search space.

    Attributes:
        data, features, model, seed, experiment, tracking_uri, jobs: as in RunConfig.
        trials: total finished trials the study should hold (a re-run adds the difference).
        timeout: stop starting trials after this many seconds (None: no limit).
        study: study name (None: derived from dataset, model and features).
        storage: Optuna storage URL (None: ``sqlite:///results/optuna.db``);
            ``journal:///path/to/file.log`` selects a journal file.
        workers: processes on this machine sharing the study.
        nested: select on inner folds for each outer test fold (an unbiased estimate).
        pruner: ``median`` (stop poor trials after a few folds) or ``none``.
        overrides: ``--set`` parameters held fixed in every trial (they win over the search
            space).
        augment: as in RunConfig.
    """

    data: DataConfig = DataConfig()
    features: str = "mfcc-stats"
    model: str = "rf"
    overrides: tuple[tuple[str, str], ...] = ()
    trials: int = 20
    timeout: float | None = None
    study: str | None = None
    storage: str | None = None
    workers: int = 1
    nested: bool = False
    pruner: str = "median"
    seed: int = 0
    experiment: str | None = None
    tracking_uri: str | None = None
    jobs: int | None = None
    augment: AudioAugment | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
