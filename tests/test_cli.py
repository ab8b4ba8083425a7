"""The command line: outputs, exit codes, one-line errors, import hygiene."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _one_line_error(capsys, *argv):
    code = run_cli(*argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("usbench: error: ")
    return err[0].removeprefix("usbench: error: ")


def test_features_ls(capsys):
    assert run_cli("features", "ls") == 0
    out = capsys.readouterr().out
    assert "mfcc-stats  v2  vector (140)" in out and "logmel      v1  matrix (128x173)" in out
    # The built-in encoder's card: where it comes from, its licence, what it may overlap.
    assert "birdnet     v1  vector (1024) @ 48000 Hz" in out
    assert "licence:     model: CC BY-NC-SA 4.0" in out and "overlap:" in out


def test_ls_datasets(capsys):
    assert run_cli("ls", "datasets") == 0
    out = capsys.readouterr().out
    names = [line.split(":")[0] for line in out.splitlines() if line and line[0] != " "]
    assert names == ["csv", "esc10", "esc50", "folders", "synthetic", "urbansound8k"]
    # Each with its card: source, fold protocol, licence.
    assert "    - Licence: CC BY-NC 3.0 (the ESC-10 subset: CC BY). Cite the paper above." in out
    assert "Piczak" in out and "Salamon" in out and out.count("Fold protocol") == 6


def test_ls_models_lists_every_parameter_with_its_default_and_range(capsys):
    assert run_cli("ls", "models") == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line and line[0] != " "]
    assert names[:4] == ["cnn", "logreg", "mlp", "rf"]
    assert "    n_estimators      300       an int in [1, 10000]" in out.splitlines()
    assert "    epochs            100       an int in [1, 1000]" in out.splitlines()
    assert "    learning_rate     0.002     a number in (0, 1]" in out.splitlines()
    assert out.count("comma-separated ints") == 2  # hidden_units, filters


def test_features_build_counts_silent_and_short_clips(tiny_root, capsys):
    import json

    import numpy as np
    import soundfile as sf

    victims = sorted((tiny_root / "audio" / "fold2").iterdir())[:2]
    sf.write(victims[0], np.zeros(22050, np.float32), 22050, format="WAV")
    sf.write(victims[1], np.full(500, 0.2, np.float32), 22050, format="WAV")
    assert run_cli("features", "build", "--features", "mfcc-mean", "--data", str(tiny_root),
                   "--jobs", "1") == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("kept "))
    manifest = json.loads(Path(line.rsplit(" listed in ", 1)[1]).read_text())
    notes = {(n["clip_id"], n["note"]) for n in manifest["notes"]}
    assert {(victims[0].name, "silent"), (victims[1].name, "short")} <= notes
    silent = sum(n == "silent" for _, n in notes)
    short = sum(n == "short" for _, n in notes)
    assert line.startswith(f"kept {silent} silent clip(s) (peak below -140 dBFS) and {short} "
                           "shorter than one analysis window")


@pytest.mark.slow
def test_features_build_of_an_urbansound8k_root_does_not_import_pandas(tiny_root_ro):
    """pandas takes 0.22 s to import: more than the rest of a small build's start-up."""
    code = ("import sys; from usbench.cli import main; "
            f"code = main(['features', 'build', '--features', 'mfcc-mean', '--data', "
            f"{str(tiny_root_ro)!r}]); "
            "print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'pandas')[:3])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "0 []"


def test_features_build_then_from_cache(tiny_root_ro, capsys):
    args = ("features", "build", "--features", "mfcc-mean", "--data", str(tiny_root_ro),
            "--jobs", "1")
    assert run_cli(*args) == 0
    first = capsys.readouterr().out
    assert "synthetic: 200 clips -> mfcc-mean (40, float32), extracted 200 clips" in first
    assert run_cli(*args) == 0
    assert "loaded from cache" in capsys.readouterr().out


def test_data_check_partial_root(tiny_root, capsys):
    for name in ("fold3", "fold7"):
        victim = sorted((tiny_root / "audio" / name).iterdir())[0]
        victim.unlink()
    import numpy as np
    import soundfile as sf

    from usbench.config import DataConfig
    from usbench.datasets import open_dataset
    from usbench.datasets.check import check

    before = check(open_dataset(DataConfig(root=str(tiny_root), allow_missing=True)),
                   progress=False).table
    short_before = before.loc[5, "short"], before.loc["all", "short"]  # tiny clips can be short
    bad, nan, silent, short, loud = [p for p in sorted((tiny_root / "audio" / "fold5").iterdir())
                                     if sf.info(p).duration > 0.1][:5]
    bad.write_bytes(b"")
    samples = np.zeros(22050, np.float32)
    samples[10:20] = np.nan
    sf.write(nan, samples, 22050, subtype="FLOAT", format="WAV")
    sf.write(silent, np.zeros(22050, np.float32), 22050, format="WAV")
    sf.write(short, np.full(1000, 0.1, np.float32), 22050, format="WAV")
    sf.write(loud, np.full(22050, 37.2, np.float32), 22050, subtype="FLOAT", format="WAV")
    assert run_cli("data", "check", "--data", str(tiny_root)) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert lines["listed"] == ["present", "missing", "unreadable", "silent", "short", "loud"]
    assert lines["3"][:5] == ["20", "19", "1", "0", "0"]
    assert lines["5"] == ["20", "20", "0", "2", "1", str(short_before[0] + 1), "1"]
    assert lines["all"] == ["200", "198", "2", "2", "1", str(short_before[1] + 1), "1"]
    assert "198 of 200 listed clips present, 2 missing, 2 unreadable." in out
    assert (f"1 silent (peak below -140 dBFS) and {short_before[1] + 1} shorter than one "
            "analysis window") in out
    assert (f"1 clip(s) have float samples outside [-1, 1] (largest |x| 37.2, in "
            f"audio/fold5/{loud.name}): valid, used as they are") in out
    assert f"unreadable: audio/fold5/{bad.name}: empty file (0 bytes)" in out
    assert (f"unreadable: audio/fold5/{nan.name}: 10 of 22,050 frames hold NaN or infinite "
            "samples") in out


def test_data_check_complete_root(tiny_root_ro, capsys):
    assert run_cli("data", "check", "--data", str(tiny_root_ro)) == 0
    assert "200 of 200 listed clips present, 0 missing, 0 unreadable." in capsys.readouterr().out


def test_unknown_feature_name(capsys):
    assert _one_line_error(capsys, "features", "build", "--features", "mfcc-stat") == (
        "Unknown feature set 'mfcc-stat'. Did you mean 'mfcc-stats'? "
        "Available: birdnet, logmel, mfcc-mean, mfcc-stats, stft, stft-mag. Or "
        "encoder:CARD.toml, hear:MODULE, or vector sets joined with + (birdnet+mfcc-stats)."
    )


def test_unknown_dataset_name(capsys, tiny_root_ro):
    msg = _one_line_error(capsys, "data", "check", "--dataset", "urbansound8", "--data",
                          str(tiny_root_ro))
    assert msg == ("Unknown dataset 'urbansound8'. Did you mean 'urbansound8k'? "
                   "Available: csv, esc10, esc50, folders, synthetic, urbansound8k.")


def test_named_dataset_without_a_root(capsys):
    msg = _one_line_error(capsys, "data", "check", "--dataset", "urbansound8k")
    assert msg.startswith("Dataset 'urbansound8k' has no embedded copy. Pass --data")


def test_missing_root_is_one_line(capsys, tmp_path):
    msg = _one_line_error(capsys, "features", "build", "--features", "logmel", "--data",
                          str(tmp_path / "nope"))
    assert msg.startswith(f"Dataset root {tmp_path / 'nope'} does not exist.")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        run_cli("--debug", "data", "check", "--data", str(tmp_path / "nope"))


def test_cache_not_writable(capsys, tmp_path, monkeypatch, tiny_root_ro):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "file" / "c"))
    msg = _one_line_error(capsys, "features", "build", "--features", "logmel", "--data",
                          str(tiny_root_ro))
    assert msg == (f"Cache directory {tmp_path / 'file' / 'c'} is not writable (Not a "
                   "directory). Set USBENCH_CACHE to a folder you can write to.")


def test_bad_flag_values_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("features", "build", "--features", "logmel", "--jobs", "0")
    assert exit_.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        run_cli("run", "--model", "mlp", "--features", "mfcc-stats", "--fold-jobs", "0")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--fold-jobs: expected a positive integer, got 0" in err[0]


@pytest.mark.slow
def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from usbench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'numpy', 'pandas', 'librosa', 'tensorflow', 'mlflow', 'optuna', 'sklearn'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("unbuffered", ["", "1"])
@pytest.mark.parametrize("command", [["features", "ls"], ["--version"]])
def test_a_reader_that_goes_away_gets_no_traceback(command, unbuffered):
    """`usbench features ls | head -0`: the output has nowhere to go, whether it fails at a
    print (unbuffered) or at the exit's flush (buffered), or in argparse's own exit."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    reader, writer = os.pipe()
    os.close(reader)  # gone before the command starts
    try:
        proc = subprocess.run([sys.executable, "-m", "usbench", *command], stdout=writer,
                              stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(writer)
    assert proc.stderr.decode() == ""
    # argparse ignores a failed write of --version itself (exit 0); a failed flush is ours.
    assert proc.returncode == (0 if command == ["--version"] and unbuffered else 1)
