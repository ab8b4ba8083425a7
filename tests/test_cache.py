"""The feature cache: keys, warm loads, resumption after interruption, bad clips."""

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import alive, assert_all_end, descendants, kill_all
from usbench import cache
from usbench.build import build_features, decoder_spec
from usbench.config import BuildConfig, DataConfig
from usbench.errors import CacheError, DatasetError
from usbench.features.mfcc import MfccStats


def _cfg(root, **kw):
    return BuildConfig(data=DataConfig(root=str(root)), features="mfcc-stats", jobs=1,
                       chunk_size=32, **kw)


BASE = dict(dataset_fingerprint="d1", files_stamp="f1", feature_spec=MfccStats().spec(),
            decoder=decoder_spec(MfccStats()), libraries=cache.library_versions())


def _key(**changes):
    return cache.features_key(cache.key_inputs(**{**BASE, **changes}))


@pytest.mark.parametrize("change", [
    {"dataset_fingerprint": "d2"},
    {"files_stamp": "f2"},
    {"feature_spec": MfccStats(n_mfcc=13).spec()},
    {"feature_spec": MfccStats(sr=16000).spec()},
    {"feature_spec": {**MfccStats().spec(), "version": MfccStats.version + 1}},
    {"decoder": {**decoder_spec(MfccStats()), "resampler": "soxr_vhq"}},
    {"libraries": {**cache.library_versions(), "librosa": "0.0.1"}},
    {"libraries": {**cache.library_versions(), "numpy": "0.0.1"}},
    {"libraries": {**cache.library_versions(), "soundfile": "0.0.1"}},
], ids=lambda c: next(iter(c)))
def test_key_changes_with_every_input(change):
    assert _key(**change) != _key()


def test_key_is_stable_for_equal_inputs():
    assert _key() == _key(feature_spec=MfccStats().spec()) and len(_key()) == 12


def test_library_versions_are_read_from_the_installed_packages(monkeypatch):
    monkeypatch.setattr(cache, "version", lambda lib: "9.9" if lib == "numpy" else "1.0")
    assert cache.library_versions()["numpy"] == "9.9"


@pytest.mark.slow
def test_key_ignores_jobs_chunking_and_root_location(tiny_root_ro, tmp_path):
    a = build_features(_cfg(tiny_root_ro), progress=False)
    copy = shutil.copytree(tiny_root_ro, tmp_path / "copy")  # copy2 keeps modification times
    b = build_features(replace(_cfg(copy), jobs=2, chunk_size=7, skip_bad=True), progress=False)
    assert a.matrix.key == b.matrix.key
    assert b.matrix.computed == 0


def test_rewritten_file_gets_a_new_key(tiny_root):
    a = build_features(_cfg(tiny_root), progress=False)
    path = a.dataset.clips["path"].iloc[0]
    data, sr = sf.read(path)
    sf.write(path, data * 0.5, sr)
    b = build_features(_cfg(tiny_root), progress=False)
    assert b.matrix.key != a.matrix.key and b.matrix.computed == 200


def test_cold_build_then_warm_load(tiny_root_ro):
    cold = build_features(_cfg(tiny_root_ro), progress=False)
    warm = build_features(_cfg(tiny_root_ro), progress=False)
    assert cold.matrix.computed == 200 and warm.matrix.computed == 0
    assert warm.matrix.reused == 200
    assert warm.matrix.X.shape == (200, 140) and warm.matrix.X.dtype == np.float32
    np.testing.assert_array_equal(warm.matrix.X, cold.matrix.X)
    assert warm.matrix.clip_ids == warm.dataset.clips["clip_id"].tolist()


@pytest.mark.slow
def test_parallel_build_equals_serial(tiny_root_ro, monkeypatch, tmp_path):
    serial = np.array(build_features(_cfg(tiny_root_ro), progress=False).matrix.X)
    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "other"))
    parallel = build_features(replace(_cfg(tiny_root_ro), jobs=2), progress=False)
    assert parallel.matrix.computed == 200
    np.testing.assert_array_equal(parallel.matrix.X, serial)
    # The default: threads of this process (one per core), bit-identical too.
    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "third"))
    threaded = build_features(replace(_cfg(tiny_root_ro), jobs=None), progress=False)
    assert threaded.matrix.computed == 200
    np.testing.assert_array_equal(threaded.matrix.X, serial)


def test_interrupted_build_resumes_without_recomputing(tiny_root_ro, monkeypatch, tmp_path):
    def interrupt_after_two(index, n):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_features(_cfg(tiny_root_ro), progress=False, on_chunk=interrupt_after_two)
    resumed = build_features(_cfg(tiny_root_ro), progress=False)
    assert resumed.matrix.computed == 200 - 64 and resumed.matrix.reused == 64

    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "fresh"))
    fresh = build_features(_cfg(tiny_root_ro), progress=False)
    np.testing.assert_array_equal(resumed.matrix.X, fresh.matrix.X)
    assert resumed.matrix.clip_ids == fresh.matrix.clip_ids


@pytest.mark.slow
def test_build_killed_with_sigkill_resumes(tiny_root_ro, isolated_cache):
    cmd = [sys.executable, "-m", "usbench", "features", "build", "--features", "mfcc-stats",
           "--data", str(tiny_root_ro), "--jobs", "1", "--chunk-size", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = list((isolated_cache / "features" / "mfcc-stats").glob("*/shards"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        shards = list((isolated_cache / "features" / "mfcc-stats").glob("*/shards/*.npz"))
        if len(shards) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(shards) >= 3, "the build finished or stalled before it could be killed"

    resumed = build_features(_cfg(tiny_root_ro), progress=False)
    assert 0 < resumed.matrix.reused < 200 and resumed.matrix.reused % 8 == 0
    expected = build_features(_cfg(tiny_root_ro), progress=False)
    np.testing.assert_array_equal(resumed.matrix.X, expected.matrix.X)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finds processes in /proc")
def test_killed_build_leaves_no_worker_behind(tiny_root_ro, isolated_cache):
    cmd = [sys.executable, "-m", "usbench", "features", "build", "--features", "logmel",
           "--data", str(tiny_root_ro), "--jobs", "2", "--chunk-size", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = isolated_cache / "features" / "logmel"
    workers = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            workers = descendants(proc.pid)
            # Two workers and the resource tracker, with a chunk done: workers are at work.
            if len(workers) >= 3 and any(shards.glob("*/shards/*.npz")):
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(workers) >= 3, "the build finished or stalled before its workers started"
        assert_all_end(workers)
    finally:
        kill_all(pid for pid in workers if alive(pid))


def _break_three(root, clips):
    broken = [clips.iloc[i] for i in (5, 50, 150)]
    paths = [root / "audio" / f"fold{c['fold']}" / c["clip_id"] for c in broken]
    paths[0].write_bytes(b"")
    raw = paths[1].read_bytes()
    paths[1].write_bytes(raw[: len(raw) // 2])
    paths[2].write_text("definitely not audio\n" * 10)
    return [c["clip_id"] for c in broken], paths


def test_bad_clips_stop_the_build_then_skip_bad_keeps_everything(tiny_root):
    clips = build_features(_cfg(tiny_root), progress=False).dataset.clips
    ids, paths = _break_three(tiny_root, clips)
    with pytest.raises(DatasetError) as err:
        build_features(_cfg(tiny_root), progress=False)
    assert str(err.value) == (
        f"3 of 200 clips could not be decoded or embedded (first: "
        f"audio/fold{clips.iloc[5]['fold']}/{ids[0]}: empty file (0 bytes)). Fix or remove "
        "them, or pass --skip-bad to leave "
        "them out (finished clips stay cached)."
    )
    skipped = build_features(_cfg(tiny_root, skip_bad=True), progress=False)
    assert skipped.matrix.computed == 0  # nothing decoded twice
    assert [b["clip_id"] for b in skipped.matrix.bad] == ids
    assert skipped.matrix.bad[1]["reason"].startswith("truncated data")
    assert skipped.matrix.X.shape == (197, 140)
    assert not set(ids) & set(skipped.matrix.clip_ids)
    manifest = skipped.matrix.path / "manifest.json"
    assert all(i in manifest.read_text() for i in ids)


def test_a_chunk_of_bad_clips_only_is_skipped_whole(tiny_root):
    """A chunk whose every clip fails to decode stores no rows and finishes the build."""
    clips = build_features(_cfg(tiny_root), progress=False).dataset.clips
    ids = [clips.iloc[i]["clip_id"] for i in (4, 5)]  # the third chunk of two
    for i in (4, 5):
        (tiny_root / "audio" / f"fold{clips.iloc[i]['fold']}" / ids[i - 4]).write_bytes(b"")
    built = build_features(replace(_cfg(tiny_root, skip_bad=True), chunk_size=2),
                           progress=False)
    assert [b["clip_id"] for b in built.matrix.bad] == ids
    assert built.matrix.X.shape == (198, 140)
    assert built.matrix.clip_ids == [c for c in clips["clip_id"] if c not in ids]


def test_unwritable_cache_directory(tiny_root_ro, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("USBENCH_CACHE", str(blocker / "cache"))
    with pytest.raises(CacheError) as err:
        build_features(_cfg(tiny_root_ro), progress=False)
    assert str(err.value) == (
        f"Cache directory {blocker / 'cache'} is not writable (Not a directory). "
        "Set USBENCH_CACHE to a folder you can write to."
    )


def test_key_follows_every_library_the_features_depend_on(monkeypatch):
    real = cache.version
    base = cache.features_key(cache.key_inputs(**{**BASE, "libraries": None}))
    for lib in ("librosa", "numpy", "scipy", "soundfile", "soxr"):
        monkeypatch.setattr(cache, "version", lambda name, lib=lib: "0.0.1" if name == lib
                            else real(name))
        assert cache.features_key(cache.key_inputs(**{**BASE, "libraries": None})) != base, lib


def _interrupt_after_three_chunks(root):
    """Build in chunks of 16 clips, interrupted after the third: returns the config."""
    def interrupt(index, n):
        if index == 2:
            raise KeyboardInterrupt

    cfg = replace(_cfg(root), chunk_size=16)
    with pytest.raises(KeyboardInterrupt):
        build_features(cfg, progress=False, on_chunk=interrupt)
    return cfg


@pytest.mark.parametrize("damage", ["random", "cut", "pickle"])
def test_damaged_shard_is_dropped_recomputed_and_named(tiny_root_ro, isolated_cache, tmp_path,
                                                       monkeypatch, caplog, damage):
    _interrupt_after_three_chunks(tiny_root_ro)
    shard = sorted((isolated_cache / "features" / "mfcc-stats").glob("*/shards/*.npz"))[1]
    raw = shard.read_bytes()
    shard.write_bytes({"random": os.urandom(len(raw)), "cut": raw[: len(raw) // 2],
                       "pickle": b"\x80\x04\x95" + raw[3:]}[damage])
    resumed = build_features(replace(_cfg(tiny_root_ro), chunk_size=16), progress=False)
    assert resumed.matrix.computed == 200 - 32  # the damaged chunk again, and the rest
    warned = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warned) == 1 and str(shard) in warned[0] and warned[0].endswith("recomputed.")
    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "fresh"))
    fresh = build_features(replace(_cfg(tiny_root_ro), chunk_size=16), progress=False)
    np.testing.assert_array_equal(resumed.matrix.X, fresh.matrix.X)


def test_damaged_rows_of_a_finished_chunk_are_recomputed(tiny_root_ro, isolated_cache, tmp_path,
                                                         monkeypatch, caplog):
    cfg = _interrupt_after_three_chunks(tiny_root_ro)
    entry = next((isolated_cache / "features" / "mfcc-stats").iterdir())
    rows = np.load(entry / "features.partial.npy", mmap_mode="r+")
    rows[20, 3] += 1.0  # a row of chunk 1
    rows.flush()
    del rows
    resumed = build_features(cfg, progress=False)
    assert resumed.matrix.computed == 200 - 32
    warned = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warned) == 1 and "000001.rows.npz" in warned[0] and "checksum" in warned[0]
    assert not (entry / "features.partial.npy").exists()  # renamed into features.npy
    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "fresh"))
    fresh = build_features(cfg, progress=False)
    np.testing.assert_array_equal(resumed.matrix.X, fresh.matrix.X)


def test_unreadable_partial_matrix_drops_every_chunk_with_one_warning_each(tiny_root_ro,
                                                                          isolated_cache, caplog):
    cfg = _interrupt_after_three_chunks(tiny_root_ro)
    entry = next((isolated_cache / "features" / "mfcc-stats").iterdir())
    (entry / "features.partial.npy").write_bytes(b"not a matrix")
    resumed = build_features(cfg, progress=False)
    assert resumed.matrix.computed == 200 and resumed.matrix.X.shape == (200, 140)
    warned = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warned) == 3 and all("features.partial.npy is unreadable" in w for w in warned)


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_extraction_processes_reuse_freed_memory_instead_of_faulting_it_in():
    """A chunk's waveforms, freed, serve the next chunk without page faults (glibc's default
    hands them back to the system, and every chunk faults them in again)."""
    code = (
        "import resource, sys, numpy as np\n"
        "from usbench.extract import keep_freed_memory\n"
        "if sys.argv[1] == 'keep':\n"
        "    assert keep_freed_memory()\n"
        "def chunk():\n"  # 64 clips of 4 s at 22,050 Hz, held together, then freed
        "    return [np.ones(88_200, np.float32) for _ in range(64)]\n"
        "chunk()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(3):\n"
        "    chunk()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    kept, default = (int(subprocess.run([sys.executable, "-c", code, mode], check=True,
                                        capture_output=True, text=True).stdout)
                     for mode in ("keep", "default"))
    pages = 3 * 64 * 88_200 * 4 // 4096
    # Transparent huge pages ("always") make fewer, larger faults of the default: relative.
    assert kept < pages // 10 and kept * 10 < default


def test_float_clips_beyond_full_scale_are_used_as_they_are_with_one_warning(tiny_root,
                                                                             caplog):
    """Float samples far above 1 are kept (librosa and soundfile do not clip), counted in the
    manifest's notes and warned about in one line per build, also when loaded from the cache
    and for a combined feature set; overs within the small margin are not."""
    clips = sorted((tiny_root / "audio" / "fold2").iterdir())[:3]
    for path, gain in zip(clips, (37.2, 3.0, 1.005), strict=True):
        samples, sr = sf.read(path, dtype="float32")
        samples = samples / np.abs(samples).max() * gain
        sf.write(path.with_suffix(".wav"), samples, sr, subtype="FLOAT", format="WAV")
    messages = []
    for features in ("mfcc-stats", "mfcc-stats", "mfcc-mean+mfcc-stats"):
        caplog.clear()
        built = build_features(replace(_cfg(tiny_root), features=features), progress=False)
        messages.append([r.getMessage() for r in caplog.records if "[-1, 1]" in r.getMessage()])
        assert built.matrix.X.shape[0] == 200
    assert messages[0] == [
        "warning: 2 clip(s) have float samples outside [-1, 1] (largest |x| 37.2, in "
        f"audio/fold2/{clips[0].name}); they are used as they are. Rescale them to [-1, 1] if "
        "they were exported at the wrong scale."]
    assert messages[1] == messages[2] == messages[0]  # from the cache; a combined set: once
    loud = sorted((n["clip_id"], n["peak"]) for n in built.matrix.notes if n["note"] == "loud")
    assert loud == sorted([(clips[0].name, 37.2), (clips[1].name, 3.0)])


SLOW_BUILD = """
import sys, time
from pathlib import Path
import usbench.extract as extract
from usbench.cli import main

started, go = Path(sys.argv[1]), Path(sys.argv[2])
real = extract.run_chunks


def held(*args, **kwargs):  # extraction starts, then waits for the test's word
    started.touch()
    while not go.exists():
        time.sleep(0.05)
    return real(*args, **kwargs)


extract.run_chunks = held
sys.exit(main(sys.argv[3:]))
"""


def _wait_for(check, what: str, within: float = 120.0):
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_processes_needing_the_same_features_build_them_once(tiny_root_ro, isolated_cache,
                                                                 tmp_path):
    """The second process waits for the first (one line says so), then loads its features."""
    go = tmp_path / "go"
    argv = ["features", "build", "--features", "mfcc-stats", "--data", str(tiny_root_ro),
            "--jobs", "1"]
    procs, errs = [], []
    try:
        for name in ("a", "b"):
            errs.append(tmp_path / f"{name}.err")
            procs.append(subprocess.Popen(
                [sys.executable, "-c", SLOW_BUILD, str(tmp_path / f"{name}.started"), str(go),
                 *argv], stdout=subprocess.PIPE, stderr=errs[-1].open("w"), text=True))
            if name == "a":
                _wait_for(lambda: (tmp_path / "a.started").exists(), "the first build to start")
        _wait_for(lambda: "waiting for another process" in errs[1].read_text(),
                  "the second process to wait")
    finally:
        go.touch()  # never leave a process waiting
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.read_text()[-2000:] for e in errs]
    assert not (tmp_path / "b.started").exists()  # b extracted nothing
    assert "extracted 200 clips" in outs[0] and "loaded from cache" in outs[1], outs
    (entry,) = (isolated_cache / "features" / "mfcc-stats").iterdir()
    assert errs[1].read_text().splitlines() == [
        f"waiting for another process that builds the same features ({entry})"]
    assert "waiting" not in errs[0].read_text()
