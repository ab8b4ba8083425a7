"""What a saved model reads: audio content, files only under the folders it is allowed, and
how much.

A request row carries the audio itself (column ``audio``: the bytes of a file; base64 in a
JSON request, which MLflow decodes) or a file path (column ``path``). A path is read only when,
with its symlinks and ``..`` resolved, it lies under one of ``allow_dirs``; any other path gets
the same answer (``REFUSED``), whether it names a missing file, a folder, a file of another
kind or a real clip, so that a client learns nothing of the files outside.

The policy comes from the model's ``model_config``: the defaults are logged with the model
(MLflow passes on only the keys logged), and ``mlflow.pyfunc.load_model(uri, model_config=...)``
overrides them; ``mlflow models serve`` passes the JSON of the ``SERVING_MODEL_CONFIG``
environment variable, which ``usbench serve`` sets. A model loaded without one reads content
only, within the default limits.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from usbench.errors import ConfigError

AUDIO = "audio"
PATH = "path"
REFUSED = ("path refused: this model reads files only under the folders it is allowed "
           "(usbench serve --allow-dir DIR, model_config allow_dirs); send the audio itself "
           "in column 'audio' (base64 in JSON)")


@dataclass(frozen=True, kw_only=True)
class InputPolicy:
    """What the model reads.

    Attributes:
        allow_dirs: absolute folders, symlinks resolved, whose files a ``path`` may name;
            empty: no path is read.
        max_seconds: the longest clip decoded, in seconds, judged from its header before
            decoding; None: no limit.
        max_rows: the most rows in one ``predict`` call; None: no limit.
    """

    allow_dirs: tuple[str, ...] = ()
    max_seconds: float | None = 60.0
    max_rows: int | None = 100

    @classmethod
    def from_model_config(cls, config: dict | None) -> InputPolicy:
        """The policy of a ``model_config`` (keys as the attributes; missing keys: defaults).

        Raises:
            ConfigError: a value of the wrong kind.
        """
        config = dict(config or {})
        if "allow_dirs" in config:
            dirs = config["allow_dirs"]
            if isinstance(dirs, str | os.PathLike) or not all(
                    isinstance(d, str | os.PathLike) for d in dirs):
                raise ConfigError(
                    f"model_config allow_dirs must be a list of folders, got {dirs!r}.")
            config["allow_dirs"] = tuple(allowed_dir(d, "model_config allow_dirs entry")
                                         for d in dirs)
        for key, kind in (("max_seconds", (int, float)), ("max_rows", (int,))):
            value = config.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)
                                      or value <= 0):
                raise ConfigError(
                    f"model_config {key} must be a positive number or None, got {value!r}.")
        return cls(**config)

    def to_model_config(self) -> dict:
        return {**dataclasses.asdict(self), "allow_dirs": list(self.allow_dirs)}


def allowed_dir(folder: str | os.PathLike, name: str = "--allow-dir") -> str:
    """`folder` made absolute with its symlinks resolved.

    Raises:
        ConfigError: `folder` is not an existing folder (`name` says where it was given).
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise ConfigError(
            f"{name} {folder} {what}. Pass a folder whose audio files the model may read.")
    return str(path.resolve())


def owner_policy(paths) -> InputPolicy:
    """The policy of ``usbench predict``: its own user's files, wherever they are, no limit.

    Every path given is allowed (the file-system roots of `paths`: ``/`` on POSIX).
    """
    roots = sorted({Path(os.path.abspath(p)).anchor for p in paths})
    return InputPolicy(allow_dirs=tuple(roots), max_seconds=None, max_rows=None)


def allowed_path(path, policy: InputPolicy) -> str | None:
    """`path` resolved (symlinks and ``..``), if it lies under an allowed folder; else None.

    Anything that stops the resolution (a symlink loop, a NUL byte) is a refusal too, so the
    answer is the same whatever the path names.
    """
    if not policy.allow_dirs or not isinstance(path, str | os.PathLike) or not str(path):
        return None
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if any(resolved.is_relative_to(d) for d in policy.allow_dirs):
        return str(resolved)
    return None
