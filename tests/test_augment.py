"""Audio augmentation: the spec and its checks, the variants, their cache entry, the CLI."""

import json

import numpy as np
import pytest

from tests.conftest import cli_error
from usbench.augment import AudioAugment, parse
from usbench.build import build_features, store_for
from usbench.config import BuildConfig, DataConfig, RunConfig
from usbench.errors import ConfigError
from usbench.runner import load_inputs, run_experiment

SR = 8000


def tone(seconds=0.5, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_overrides_are_typed_and_checked():
    aug = parse({"variants": "6", "pitch_shift": "-2,2", "families": "pitch_shift, drc",
                 "drc_threshold_db": "-30"})
    assert aug == AudioAugment(variants=6, pitch_shift=(-2.0, 2.0),
                               families=("pitch_shift", "drc"), drc_threshold_db=-30.0)
    assert parse({}) == AudioAugment()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"pitch_shift": "20"}, "Augmentation parameter 'pitch_shift' must be semitones in "
     "[-12, 12], got 20. Example: --set augment.pitch_shift=-3.5,-2.5,-2,-1,1,2,2.5,3.5"),
    ({"time_stretch": "0.81,3"}, "Augmentation parameter 'time_stretch' must be rates in "
     "[0.5, 2], got 0.81,3. Example: --set augment.time_stretch=0.81,0.93,1.07,1.23"),
    ({"variants": "0"}, "Augmentation parameter 'variants' must be an int in [1, 64], got 0. "
     "Example: --set augment.variants=4"),
    ({"variants": "two"}, "Augmentation parameter 'variants' must be int, got 'two'. "
     "Example: --set augment.variants=4"),
    ({"noise_snr_db": "30,10"}, "Augmentation parameter 'noise_snr_db' must be two numbers "
     "low,high of dB with -10 <= low <= high <= 60, got 30,10. Example: --set "
     "augment.noise_snr_db=10,30"),
    ({"families": "reverb"}, "Augmentation parameter 'families' must be one or more of "
     "time_stretch, pitch_shift, drc, noise, got reverb. Example: --set "
     "augment.families=time_stretch,pitch_shift,drc,noise"),
    ({"drc_ratio": "0.5"}, "Augmentation parameter 'drc_ratio' must be ratios >= 1, got 0.5. "
     "Example: --set augment.drc_ratio=2,4,8"),
    ({"pitch": "2"}, "Unknown augmentation parameter 'pitch'. Did you mean 'pitch_shift'? "
     "Valid: drc_ratio, drc_threshold_db, families, noise_snr_db, pitch_shift, seed, "
     "time_stretch, variants."),
])
def test_bad_augmentation_parameters_are_refused(overrides, message):
    with pytest.raises(ConfigError) as err:
        parse(overrides)
    assert str(err.value) == message


def test_variants_are_deterministic_per_clip_and_cycle_the_families():
    aug = AudioAugment(variants=8)
    y = tone()
    first, again = aug.make(y, SR, "a.wav"), aug.make(y, SR, "a.wav")
    other = aug.make(y, SR, "b.wav")
    assert len(first) == 8 and all(v.dtype == np.float32 for v in first)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(a.shape != b.shape or not np.array_equal(a, b)
               for a, b in zip(first, other, strict=True))
    stretched, shifted, compressed, noisy = first[:4]
    assert stretched.size != y.size  # none of SB-CNN's rates is 1
    assert shifted.size == compressed.size == noisy.size == y.size
    # Pitch shifting moves the tone's peak frequency; compression lowers the peak level.
    spectrum = np.abs(np.fft.rfft(shifted))
    assert abs(np.argmax(spectrum) * SR / y.size - 440) > 20
    assert np.abs(compressed).max() < np.abs(y).max()
    snr = 10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2))
    assert 9 < snr < 31
    assert all(np.isfinite(v).all() for v in first)


def test_variant_cache_key_follows_the_augmentation_spec_only(tiny_root_ro):
    from usbench.datasets import open_dataset
    from usbench.features import get_feature_set

    ds, fs = open_dataset(DataConfig(root=str(tiny_root_ro))), get_feature_set("mfcc-mean")
    plain = store_for(ds, fs)[0]
    default = store_for(ds, fs, AudioAugment())[0]
    assert default.path.parent.name == "mfcc-mean-variants"
    assert default.key != plain.key
    assert store_for(ds, fs, AudioAugment())[0].key == default.key
    for change in (AudioAugment(variants=2), AudioAugment(seed=1),
                   AudioAugment(pitch_shift=(1.0,)), AudioAugment(families=("noise",))):
        assert store_for(ds, fs, change)[0].key != default.key
    assert "augment" in store_for(ds, fs, AudioAugment())[1]


def _aug_cfg(root, **kw):
    return BuildConfig(data=DataConfig(root=str(root)), features="mfcc-mean", jobs=1,
                       chunk_size=64, augment=AudioAugment(variants=2), **kw)


@pytest.mark.slow
def test_interrupted_variant_build_resumes(tiny_root_ro, monkeypatch, tmp_path):
    def interrupt_after_two(index, n):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_features(_aug_cfg(tiny_root_ro), progress=False, on_chunk=interrupt_after_two)
    resumed = build_features(_aug_cfg(tiny_root_ro), progress=False)
    assert resumed.matrix.computed == 200 - 128 and resumed.matrix.reused == 128
    assert resumed.matrix.X.shape == (200, 2, 40)
    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "fresh"))
    fresh = build_features(_aug_cfg(tiny_root_ro), progress=False)
    np.testing.assert_array_equal(resumed.matrix.X, fresh.matrix.X)


@pytest.mark.slow
def test_runs_with_augment_share_the_variants_and_get_their_own_config_id(
        tiny_root_ro, tmp_path, monkeypatch, isolated_cache):
    monkeypatch.chdir(tmp_path)
    inp = load_inputs(DataConfig(root=str(tiny_root_ro)), "mfcc-mean", jobs=1, progress=False,
                      augment=AudioAugment(variants=2))
    assert inp.variants.shape == (len(inp.X), 2, 40)
    runs = [run_experiment(RunConfig(data=DataConfig(root=str(tiny_root_ro)),
                                     features="mfcc-mean", model="logreg", folds=(2,), jobs=1,
                                     overrides=(("C", c),), augment=aug), progress=False)
            for c, aug in (("1", AudioAugment(variants=2)), ("0.5", AudioAugment(variants=2)),
                           ("1", None))]
    entries = list((isolated_cache / "features" / "mfcc-mean-variants").iterdir())
    assert len(entries) == 1  # other model parameters reuse the same variants
    assert len({r.config_id for r in runs}) == 3
    record = json.loads((runs[0].folder / "result.json").read_text())
    assert record["params"]["augment"] is True and record["params"]["augment.variants"] == 2
    assert record["tags"]["usbench.augment"] != "off"
    assert json.loads((runs[2].folder / "result.json").read_text())["tags"][
        "usbench.augment"] == "off"



def test_cli_refuses_bad_augmentation_before_any_work(capsys, isolated_cache, tiny_root_ro):
    base = ("run", "--model", "cnn", "--features", "logmel", "--data", str(tiny_root_ro))
    assert cli_error(capsys, *base, "--augment", "--set", "augment.pitch_shift=20").startswith(
        "Augmentation parameter 'pitch_shift' must be semitones in [-12, 12], got 20.")
    assert cli_error(capsys, *base, "--set", "augment.variants=2") == (
        "--set augment.variants tunes the audio augmentation, which is off. Add --augment.")
    assert cli_error(capsys, *base, "--set", "crop_frames=400") == (
        "Parameter 'crop_frames' of model 'cnn' is 400, longer than the feature matrix "
        "(173 frames). Use --set crop_frames=N with N <= 173, or 0 for the whole matrix.")
    assert cli_error(capsys, *base, "--set", "validation=fold", "--set", "val_fold=11") == (
        "Parameter 'val_fold' of model 'cnn' names fold 11, which has no clips. Folds with "
        "clips: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10. Use one of them, or --set val_fold=0 to rotate "
        "(the fold after each test fold).")
    assert not (isolated_cache / "features").exists()  # nothing extracted


def test_too_few_folds_to_hold_one_out(capsys, isolated_cache, tiny_root):
    for fold in range(3, 11):
        for f in (tiny_root / "audio" / f"fold{fold}").iterdir():
            f.unlink()
    msg = cli_error(capsys, "run", "--model", "mlp", "--features", "mfcc-mean", "--data",
                 str(tiny_root), "--allow-missing", "--set", "validation=fold")
    assert msg == ("Model 'mlp' validates on a whole training fold, but only 2 fold(s) have "
                   "clips: testing one and validating on another leaves no fold to train on. "
                   "Use --set validation=recordings or --set validation=none.")
    assert not (isolated_cache / "features").exists()
