"""The model-family contract: a cheap, frozen spec that builds fresh estimators.

A ``ModelSpec`` owns a family's typed default parameters, their allowed values, the parsing of
``--set key=value`` overrides, an Optuna search space, and a builder. Building is the only step
that may import heavy code (scikit-learn, TensorFlow), and it happens inside the builder.

Every estimator a builder returns follows one contract, the one ``usbench.cv`` calls with one
fresh estimator per test fold:

- ``fit(X, y, groups=None, folds=None, variants=None)``: X float32, shape (n, *input_shape);
  y int class ids in 0..n_classes-1, shape (n,); groups: recording id (fsID) of each row,
  shape (n,), or None; folds: fold of each row, shape (n,), or None; variants: float32,
  shape (n, k, *input_shape), k audio-augmented variants of each row (training rows only),
  or None. Nothing is fitted (scaler, model, validation, early stopping) on anything but
  these rows.
- ``predict_proba(X)``: float64, shape (n, n_classes); column j is class id j, also for
  classes absent from the training rows.
- ``history_``: a JSON-able dict about the last fit (epochs run, best epoch, ...); may be empty.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from usbench.errors import ConfigError

INPUT_KINDS = {"vector": "(d,)", "matrix": "(bands, frames)"}
_FEATURE_HINT = {"vector": "--features mfcc-stats", "matrix": "--features logmel"}
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


class Estimator(Protocol):
    """What a builder returns (see the module docstring)."""

    history_: dict

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
            folds: np.ndarray | None = None, variants: np.ndarray | None = None) -> Any: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class BuildContext:
    """What a builder needs to know about the data, never the data itself.

    Attributes:
        n_classes: size of the dataset's class list (not the classes seen in one split).
        input_shape: shape of one clip's features, e.g. (140,) or (128, 173).
        seed: seeds every random choice of the estimator (initialisation, shuffling,
            validation split, augmentation, bootstrap).
        n_jobs: CPU workers for families that use them (None: all cores). Never changes results.
        test_fold: the fold the estimator will be tested on (None: a final fit on every
            fold); a family that validates on a whole fold rotates from it.
    """

    n_classes: int
    input_shape: tuple[int, ...]
    seed: int
    n_jobs: int | None = None
    test_fold: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))


@dataclass(frozen=True)
class Allowed:
    """The values a parameter may take beyond its type: its documented range.

    Numbers (and each element of a tuple) must lie within ``low``..``high`` (inclusive unless
    ``low_open`` / ``high_open``); a tuple has 1 to ``max_items`` elements; strings must be one
    of ``choices``. Every number-valued parameter of a family has both bounds, chosen wide
    enough for any real sweep and narrow enough that a typo (a billion trees, a billion
    epochs) is refused before any work instead of running until killed.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    max_items: int | None = None

    def admits(self, value: object) -> bool:
        if isinstance(value, str):
            return not self.choices or value in self.choices
        if isinstance(value, tuple):
            return (bool(value) and (self.max_items is None or len(value) <= self.max_items)
                    and all(self.admits(v) for v in value))
        if isinstance(value, bool):
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (
            value > self.high or (self.high_open and value == self.high)
        )

    @property
    def bounded(self) -> bool:
        """Both bounds set (numbers) or a list of choices (strings)."""
        return bool(self.choices) or (self.low is not None and self.high is not None)

    def describe(self) -> str:
        """'in [1, 10000]', 'in (0, 1]', '>= 1', '> 0', '<= 5' or '' (no bounds)."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return ""


def _number(x: float) -> str:
    """A bound as a user types it: 10000, 0.5, 1e-6, 1e6."""
    if float(x).is_integer() and abs(x) <= 100_000:
        return str(int(x))
    return f"{x:g}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False,
            max_items: int | None = None) -> Allowed:
    """Numbers from `low` to `high` (inclusive unless open); for a tuple parameter, each
    element, and at most `max_items` of them."""
    return Allowed(low=low, high=high, low_open=low_open, high_open=high_open,
                   max_items=max_items)


def one_of(*choices: str) -> Allowed:
    return Allowed(choices=tuple(choices))


def format_value(value: object) -> str:
    """A parameter value as ``--set`` spells it: true, 0.001, 200,300."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class ModelSpec:
    """A model family: defaults, allowed values, search space and builder.

    Attributes:
        name: registry name (``logreg``, ``rf``, ``mlp``, ``cnn``).
        input_kind: "vector" (features of shape (d,)) or "matrix" (shape (bands, frames)).
        summary: one line for ``usbench ls models``.
        default_params: flat name -> default; each default is an int, float, bool, str or a
            non-empty tuple of ints, and its type is the parameter's type.
        builder: ``(params, ctx) -> Estimator``; gets complete, validated params.
        space: ``trial -> dict`` of sampled parameters (keyword-only Optuna calls).
        allowed: name -> Allowed, for parameters with bounds or choices.
        validate: ``(params, input_shape) -> None``, raising ConfigError for parameters that
            do not fit the feature shape (a crop longer than the matrix); None: no check.
        protocol: ``(params, present_folds, tested_folds) -> None``, raising ConfigError for
            parameters the folds cannot serve (a validation fold that has no clips); None:
            no check.
        libraries: distributions whose versions can change the family's results; they enter
            each run's ``config_id``.
        parallel_folds: one fit uses about one core however many it is given, so
            ``usbench run`` trains test folds side by side by default, a worker process per
            core (``--fold-jobs``); False: folds one after another, each fit using the cores.
        gpu: the family trains on a GPU when TensorFlow sees one (``usbench.device``); its
            folds then run one after another by default, each on the GPU.
    """

    name: str
    input_kind: str
    summary: str
    default_params: Mapping[str, object]
    builder: Callable[[dict, BuildContext], Estimator] = field(repr=False)
    space: Callable[[Any], dict] = field(repr=False)
    allowed: Mapping[str, Allowed] = field(default_factory=dict, repr=False)
    validate: Callable[[dict, tuple[int, ...]], None] | None = field(default=None, repr=False)
    protocol: Callable[[dict, Any, Any], None] | None = field(default=None, repr=False)
    libraries: tuple[str, ...] = ("numpy", "scikit-learn")
    parallel_folds: bool = False
    gpu: bool = False

    def fold_jobs(self, requested: int | None, n_folds: int, on_gpu: bool = False) -> int:
        """Worker processes for `n_folds` test folds, at most one per fold and one per core:
        `requested` (more than the cores is capped, with a one-line notice), else the
        family's default (one per core for ``parallel_folds`` on the CPU, else 1: on a GPU
        one fold at a time has the whole device)."""
        from joblib import cpu_count  # affinity and container CPU quotas

        cores = cpu_count()
        if requested is None:
            requested = cores if self.parallel_folds and not on_gpu else 1
        elif requested > cores:
            import logging

            logging.getLogger("usbench").info(
                f"--fold-jobs {requested}: capped at this machine's {cores} core(s) (more "
                "workers than cores only share them, and slow every fold)")
            requested = cores
        return max(1, min(requested, n_folds))

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {sorted(INPUT_KINDS)}")
        # Private plain-dict copies: immune to the caller's later edits, and picklable.
        object.__setattr__(self, "default_params", dict(self.default_params))
        object.__setattr__(self, "allowed", dict(self.allowed))
        for key in self.allowed:
            if key not in self.default_params:
                raise ValueError(f"{self.name}: allowed values for unknown parameter {key!r}")
        for key, value in self.default_params.items():
            if _param_type(value) is None:
                raise TypeError(f"{self.name}: default of {key!r} has unsupported type")
            if not self._allowed(key).admits(value):
                raise ValueError(f"{self.name}: default of {key!r} is not allowed")
            if _param_type(value) is not bool and not self._allowed(key).bounded:
                raise ValueError(f"{self.name}: parameter {key!r} needs a documented range "
                                 "(both bounds, or choices)")

    def params(self, overrides: Mapping[str, object] | None = None) -> dict:
        """The defaults with `overrides` merged in, converted to each default's type.

        Args:
            overrides: name -> value. Strings (from ``--set key=value``) are parsed: bools
                accept true/false/1/0/yes/no, tuples accept "200,300", string choices are
                case-insensitive. Typed values (from a
                config file or a search space) are checked and coerced (int -> float, list ->
                tuple).

        Returns:
            A new dict with every parameter of the family.

        Raises:
            ConfigError: an unknown name, or a value of the wrong type or out of range.
        """
        out = dict(self.default_params)
        for key, value in (overrides or {}).items():
            out[key] = self._convert(key, value)
        return out

    def build(self, params: Mapping[str, object], ctx: BuildContext) -> Estimator:
        """A fresh, unfitted estimator.

        Args:
            params: parameters, complete or partial (missing ones take their defaults).
            ctx: data shape, class count, seed.

        Raises:
            ConfigError: invalid params, or inputs of the wrong kind for this family.
        """
        full = self.params(params)
        self.check_input(full, ctx.input_shape)
        return self.builder(full, ctx)

    def check_input(self, params: Mapping[str, object], input_shape: tuple[int, ...]) -> None:
        """Refuse features of the wrong kind or shape for these parameters (before any work).

        Raises:
            ConfigError: vectors for a matrix family (or the reverse), or parameters that do
                not fit the shape.
        """
        expected = 1 if self.input_kind == "vector" else 2
        if len(input_shape) != expected:
            raise ConfigError(
                f"Model '{self.name}' needs {self.input_kind} features, shape "
                f"{INPUT_KINDS[self.input_kind]}, but got shape {tuple(input_shape)}. "
                f"Use {_FEATURE_HINT[self.input_kind]}."
            )
        if self.validate:
            self.validate(self.params(params), tuple(input_shape))

    def check_protocol(self, params: Mapping[str, object], present_folds,
                       tested_folds) -> None:
        """Refuse parameters the folds cannot serve (before any work).

        Args:
            present_folds: folds with clips. tested_folds: folds to be tested, or None for a
                final fit on every fold.
        """
        if self.protocol:
            self.protocol(self.params(params), present_folds, tested_folds)

    def search_space(self, trial: Any) -> dict:
        """Sample parameters for one Optuna trial.

        Args:
            trial: an ``optuna.Trial`` (only its ``suggest_*`` methods are called).

        Returns:
            The sampled parameters only (merge them over ``params(...)``), typed and checked.
        """
        return {key: self._convert(key, value) for key, value in self.space(trial).items()}

    def _allowed(self, key: str) -> Allowed:
        return self.allowed.get(key, Allowed())

    def _convert(self, key: str, value: object) -> object:
        if key not in self.default_params:
            valid = sorted(self.default_params)
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown parameter '{key}' for model '{self.name}'.{hint} "
                f"Valid: {', '.join(valid)}."
            )
        kind = _param_type(self.default_params[key])
        converted = _parse(kind, value) if isinstance(value, str) else _coerce(kind, value)
        if converted is None or not self._allowed(key).admits(converted):
            raise ConfigError(
                f"Parameter '{key}' of model '{self.name}' must be {self.expect(key)}, "
                f"got {value!r}. Example: --set {key}={format_value(self.default_params[key])}"
            )
        return converted

    def describe_params(self) -> list[tuple[str, str, str]]:
        """(name, default as ``--set`` spells it, allowed values in words) per parameter,
        sorted by name: the table of ``usbench ls models`` and the models page."""
        return [(key, format_value(self.default_params[key]), self.expect(key))
                for key in sorted(self.default_params, key=str.lower)]

    def expect(self, key: str) -> str:
        """What a value must be, in words: 'an int in [1, 10000]', "'none' or 'balanced'"."""
        kind, allowed = _param_type(self.default_params[key]), self._allowed(key)
        if kind is bool:
            return "true or false"
        if kind is str:
            quoted = [f"'{c}'" for c in allowed.choices] or ["a string"]
            return " or ".join(filter(None, [", ".join(quoted[:-1]), quoted[-1]]))
        bound = allowed.describe()
        if kind is tuple:
            count = f"1 to {allowed.max_items} " if allowed.max_items else ""
            return f"{count}comma-separated ints" + (f", each {bound}" if bound else "")
        noun = "an int" if kind is int else "a number"
        return f"{noun} {bound}" if bound else noun


def _param_type(value: object) -> type | None:
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, tuple) and value and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple
    return None


def _parse(kind: type, text: str) -> object | None:
    """`text` as a value of `kind`, or None when it is not one."""
    text = text.strip()
    try:
        if kind is bool:
            low = text.lower()
            return True if low in _TRUE else False if low in _FALSE else None
        if kind is int:
            return int(text)
        if kind is float:
            number = float(text)
            return number if math.isfinite(number) else None
        if kind is tuple:
            parts = text.strip("()[]").split(",")
            return tuple(int(p) for p in parts)
        return text.lower()
    except ValueError:
        return None


def _coerce(kind: type, value: object) -> object | None:
    """A typed `value` as a value of `kind`, or None when it is not one."""
    if isinstance(value, bool | np.bool_):
        return bool(value) if kind is bool else None
    if kind is int and isinstance(value, numbers.Integral):
        return int(value)
    if kind is float and isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    if kind is tuple and isinstance(value, tuple | list) and value:
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            return tuple(int(v) for v in value)
    return None


def check_fit_inputs(
    model: str, ctx: BuildContext, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate what ``fit`` receives; return X as float32 and y as int64.

    Raises:
        ValueError: shapes that disagree with each other or with `ctx`, or class ids out of
            0..n_classes-1 (a bug in the caller, not a user error).
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.shape[1:] != ctx.input_shape or len(X) == 0:
        raise ValueError(
            f"Model '{model}' was built for inputs of shape {_rows(ctx)}, got {X.shape}."
        )
    if y.shape != (len(X),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be int class ids of shape ({len(X)},), got {y.dtype} {y.shape}")
    if y.min() < 0 or y.max() >= ctx.n_classes:
        raise ValueError(f"class ids must lie in 0..{ctx.n_classes - 1}, got {y.min()}..{y.max()}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (len(X),):
            raise ValueError(f"groups must have shape ({len(X)},), got {groups.shape}")
    return X, y.astype(np.int64), groups


def check_predict_inputs(model: str, ctx: BuildContext, X: np.ndarray, fitted: bool) -> np.ndarray:
    """Validate what ``predict_proba`` receives; return X as float32."""
    if not fitted:
        raise RuntimeError(f"Model '{model}' is not fitted yet; call fit first.")
    X = np.asarray(X, dtype=np.float32)
    if X.shape[1:] != ctx.input_shape:
        raise ValueError(
            f"Model '{model}' was fitted on inputs of shape {_rows(ctx)}, got {X.shape}."
        )
    return X


def _rows(ctx: BuildContext) -> str:
    return f"(n, {', '.join(map(str, ctx.input_shape))})"
