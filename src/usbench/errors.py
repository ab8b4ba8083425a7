"""The error hierarchy. Library code raises these; only the CLI prints them (exit code 2).

Messages follow one template: what, what it must be, what it got, how to fix.
"""


class UsbenchError(Exception):
    """Base class of every error a user can fix; its message is one line."""


class ConfigError(UsbenchError):
    """A name, flag or setting is invalid."""


class DatasetError(UsbenchError):
    """A dataset root, its metadata table or its audio files are missing or broken."""


class AudioError(DatasetError):
    """One audio file could not be decoded. `path` names it, `reason` says why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Could not decode {self.path}: {reason}")


class FeatureError(UsbenchError):
    """Feature extraction failed or produced invalid values."""


class ClipFeatureError(FeatureError):
    """An encoder could not embed one or more clips of a batch (raised by ``extract_batch``):
    the clips are then embedded one at a time, and those that still fail follow the
    ``--skip-bad`` path like undecodable ones. `reason` says why, for the manifest."""

    def __init__(self, message: str, reason: str):
        self.reason = reason
        super().__init__(message)


class CacheError(UsbenchError):
    """The feature cache cannot be read or written."""


class FoldError(UsbenchError):
    """A fold selection cannot be evaluated under the protocol."""


class TrackingError(UsbenchError):
    """The MLflow tracking store cannot be reached, read, created or repaired."""
