"""Tiny dataset roots of every layout, with audio generated here: each class is a tone of its
own pitch, each recording a different loudness, so features differ by class and recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SR = 8000


def tone(path: Path, class_id: int, recording: int, seconds: float = 0.25, sr: int = SR,
         subtype: str = "PCM_16") -> Path:
    """Write a short tone of the class's pitch, loudness set by the recording."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(recording)
    y = (0.1 + 0.05 * (recording % 5)) * np.sin(2 * np.pi * (300 + 150 * class_id) * t)
    y = y + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), sr, subtype=subtype)
    return path


ESC_CLASSES = {0: "dog", 1: "rooster", 2: "pig", 10: "rain", 11: "sea_waves", 3: "cow"}
ESC10_TARGETS = (0, 1, 10, 11)


def esc50_root(root: Path, per_fold: int = 2) -> Path:
    """An ESC-50 layout: ``meta/esc50.csv`` + ``audio/``, 5 folds, 6 classes (targets 0-3,
    10, 11; the ESC-10 ones are 0, 1, 10, 11), ``per_fold`` clips of each class per fold,
    two takes (A, B) of each source file."""
    rows = []
    targets = sorted(ESC_CLASSES)
    # Renumber to 0..5 so targets have no gaps, keeping the ESC-10 flags of the real ids.
    for fold in range(1, 6):
        for new_id, target in enumerate(targets):
            for k in range(per_fold):
                src = 1000 * fold + 10 * new_id + k // 2
                take = "AB"[k % 2]
                name = f"{fold}-{src}-{take}-{new_id}.wav"
                tone(root / "audio" / name, new_id, src)
                rows.append({"filename": name, "fold": fold, "target": new_id,
                             "category": ESC_CLASSES[target],
                             "esc10": target in ESC10_TARGETS, "src_file": src, "take": take})
    (root / "meta").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def folders_root(root: Path, classes=("cat", "dog", "owl"), per_class: int = 10,
                 splits: tuple[str, ...] = ()) -> Path:
    """``<root>/<class>/<recording>_<k>.wav`` (or ``<root>/<split>/<class>/...``): recordings
    of two slices each, named so that ``^(\\d+)_`` gives the recording id."""
    for c, label in enumerate(classes):
        for k in range(per_class):
            rec = 100 * (c + 1) + k // 2
            split = splits[k % len(splits)] if splits else ""
            tone(root / split / label / f"{rec}_{k % 2}.wav", c, rec)
    return root


def competition_root(root: Path, classes=("cat", "dog"), per_class: int = 10) -> Path:
    """The tutorials' competition layout: ``train.csv`` (ID, Class) + ``Train/<ID>.wav``."""
    rows = []
    for c, label in enumerate(classes):
        for k in range(per_class):
            clip_id = 1 + c * per_class + k
            tone(root / "Train" / f"{clip_id}.wav", c, clip_id)
            rows.append({"ID": clip_id, "Class": label})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    return root
