"""The synthetic generator: UrbanSound8K layout, recordings within folds, format mix."""

import hashlib

import pandas as pd
import soundfile as sf

from tests.conftest import TINY
from usbench.config import DataConfig
from usbench.datasets import open_dataset
from usbench.datasets.synthetic import CLASSES, generate


def test_layout_classes_and_folds(tiny_root_ro):
    ds = open_dataset(DataConfig(root=str(tiny_root_ro)))
    assert ds.name == "synthetic"
    assert ds.classes == CLASSES
    assert not ds.partial
    counts = ds.clips.groupby(["fold", "label"]).size()
    assert (counts == TINY.clips_per_class_per_fold).all() and len(counts) == 100


def test_every_recording_lies_in_one_fold_and_has_several_slices(tiny_root_ro):
    clips = open_dataset(DataConfig(root=str(tiny_root_ro))).clips
    assert (clips.groupby("recording")["fold"].nunique() == 1).all()
    assert clips.groupby("recording").size().max() >= 2


def test_mixed_formats_and_durations(tiny_root_ro):
    clips = open_dataset(DataConfig(root=str(tiny_root_ro))).clips
    infos = [sf.info(p) for p in clips["path"]]
    assert len({i.samplerate for i in infos}) >= 4
    assert {i.subtype for i in infos} >= {"PCM_16", "PCM_24"}
    assert {i.channels for i in infos} == {1, 2}
    durations = [i.frames / i.samplerate for i in infos]
    assert min(durations) < 0.1 and max(durations) == TINY.max_duration


def _digest(root):
    """Metadata bytes plus every file's format and samples (float WAVs carry libsndfile's
    PEAK chunk, whose timestamp differs between writes)."""
    h = hashlib.sha256((root / "metadata" / "UrbanSound8K.csv").read_bytes())
    for p in sorted((root / "audio").rglob("*.wav")):
        data, sr = sf.read(p, dtype="float32")
        h.update(f"{p.relative_to(root)} {sr} {sf.info(p).subtype}".encode())
        h.update(data.tobytes())
    return h.hexdigest()


def test_deterministic_for_a_seed(tmp_path):
    from dataclasses import replace

    cfg = replace(TINY, clips_per_class_per_fold=1)
    a, b = generate(tmp_path / "a", cfg), generate(tmp_path / "b", cfg)
    assert _digest(a) == _digest(b)
    c = generate(tmp_path / "c", replace(cfg, seed=cfg.seed + 1))
    assert _digest(c) != _digest(a)
    table = pd.read_csv(a / "metadata" / "UrbanSound8K.csv")
    assert list(table.columns) == ["slice_file_name", "fsID", "start", "end", "salience",
                                   "fold", "classID", "class"]


def test_embedded_default_is_generated_once(monkeypatch, isolated_cache, caplog):
    from dataclasses import replace

    import usbench.datasets.synthetic as synthetic

    monkeypatch.setattr(synthetic, "DEFAULT_CONFIG", replace(TINY, clips_per_class_per_fold=1))
    caplog.set_level("INFO", logger="usbench")
    first = open_dataset(DataConfig())
    second = open_dataset(DataConfig())
    assert first.root == second.root and first.root.is_relative_to(isolated_cache)
    assert first.name == "synthetic" and len(first.clips) == 100
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("No --data given: generated the embedded synthetic dataset")
    assert messages[1].startswith("No --data given: using the embedded synthetic dataset")


def test_usbench_data_env_var_is_used(tiny_root_ro, monkeypatch):
    monkeypatch.setenv("USBENCH_DATA", str(tiny_root_ro))
    assert open_dataset(DataConfig()).root == tiny_root_ro
