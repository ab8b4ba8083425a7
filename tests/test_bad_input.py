"""The bad-input battery, through the real command line (a subprocess per case).

Every case must end with exit code 2, one ``usbench: error:`` line on stderr (the last line;
nothing else unless work had started), no traceback, and the file or field named.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

CSV = Path("metadata") / "UrbanSound8K.csv"


def _table(root: Path, edit) -> None:
    table = pd.read_csv(root / CSV)
    edit(table)
    table.to_csv(root / CSV, index=False)


def _set(col, value, row=3):
    def edit(t):
        t[col] = t[col].astype(object)
        t.loc[row, col] = value
    return edit


def _first_clip(root: Path, fold: int = 1) -> Path:
    return sorted((root / "audio" / f"fold{fold}").iterdir())[0]


def _nan_wav(path: Path) -> None:
    samples = np.zeros(22050, np.float32)
    samples[5:50] = np.nan
    path.unlink()
    sf.write(path.with_suffix(".wav"), samples, 22050, subtype="FLOAT", format="WAV")


def _loop(clip: Path, two: bool = False) -> None:
    """Replace `clip` by a symbolic link to itself, or (`two`) to a link back to it."""
    clip.unlink()
    if two:
        (clip.parent / "other.wav").symlink_to(clip.name)
        clip.symlink_to("other.wav")
    else:
        clip.symlink_to(clip.name)


def _folder(clip: Path) -> None:
    clip.unlink()
    clip.mkdir()


def _dangling(clip: Path) -> None:
    clip.unlink()
    clip.symlink_to("nowhere.wav")


def _built(root: Path, env: dict, tmp: Path) -> Path:
    """Build mfcc-mean for `root`; return its cache entry folder."""
    _cli(["features", "build", "--features", "mfcc-mean", "--data", str(root), "--jobs", "1"],
         env, tmp, expect=0)
    return next((Path(env["USBENCH_CACHE"]) / "features" / "mfcc-mean").iterdir())


def _cli(argv, env, cwd, expect=2):
    done = subprocess.run([sys.executable, "-m", "usbench", *argv], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)
    assert done.returncode == expect, (argv, done.returncode, done.stderr[-2000:])
    return done


def _hide_tensorflow(tmp: Path, env: dict) -> None:
    """An install without TensorFlow: a sitecustomize that makes it impossible to import."""
    hide = tmp / "no-tensorflow"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n\n\nclass NoTensorflow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n\n\n"
        "sys.meta_path.insert(0, NoTensorflow())\n")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hide), env.get("PYTHONPATH")]))


RUN = ["run", "--model", "logreg", "--features", "mfcc-mean", "--jobs", "1"]

# name: (setup(root, tmp, env) -> argv, text the error must contain, or a tuple of such texts).
# {root}, {clip} and {tmp} in the expected text are filled in after setup.
CASES = {
    "zero-byte wav": (lambda r, t, e: (_first_clip(r).write_bytes(b""), [
        "features", "build", "--features", "mfcc-mean", "--data", str(r)])[1], "{clip}"),
    "truncated wav": (lambda r, t, e: (_first_clip(r).write_bytes(
        _first_clip(r).read_bytes()[:200]), RUN + ["--data", str(r)])[1], "{clip}"),
    "non-audio wav": (lambda r, t, e: (_first_clip(r).write_text("hello\n" * 50),
                                       RUN + ["--data", str(r)])[1], "{clip}"),
    "nan samples": (lambda r, t, e: (_nan_wav(_first_clip(r)), RUN + ["--data", str(r)])[1],
                    "NaN or infinite samples"),
    "missing clips": (lambda r, t, e: (_first_clip(r).unlink(), RUN + ["--data", str(r)])[1],
                      "--allow-missing"),
    "missing column": (lambda r, t, e: (_table(r, lambda x: x.drop(columns=["fsID"],
                                                                   inplace=True)),
                                        RUN + ["--data", str(r)])[1], "fsID"),
    "not a csv": (lambda r, t, e: ((r / CSV).write_bytes(b"\x00\xff\xfe" * 100),
                                   RUN + ["--data", str(r)])[1], "UrbanSound8K.csv"),
    "fold 0": (lambda r, t, e: (_table(r, _set("fold", 0)), RUN + ["--data", str(r)])[1],
               "fold 0 is outside 1-10"),
    "fold 11": (lambda r, t, e: (_table(r, _set("fold", 11)), RUN + ["--data", str(r)])[1],
                "fold 11 is outside 1-10"),
    "fold x": (lambda r, t, e: (_table(r, _set("fold", "x")), RUN + ["--data", str(r)])[1],
               "fold 'x' is not an integer"),
    "class mismatch": (lambda r, t, e: (_table(r, _set("class", "siren", row=0)),
                                        RUN + ["--data", str(r)])[1], "classID"),
    "duplicate row": (lambda r, t, e: (_table(r, lambda x: x.loc.__setitem__(
        len(x), x.iloc[0])), RUN + ["--data", str(r)])[1], "listed twice"),
    "model typo": (lambda r, t, e: ["run", "--model", "lgreg", "--features", "mfcc-mean"],
                   "Did you mean 'logreg'?"),
    "feature typo": (lambda r, t, e: ["run", "--model", "rf", "--features", "mfc-mean"],
                     "Did you mean"),
    "model/feature mismatch": (lambda r, t, e: ["run", "--model", "cnn", "--features",
                                                "mfcc-mean"], "--features logmel"),
    "bad --set value": (lambda r, t, e: RUN + ["--set", "C=abc"], "C"),
    "unknown --set key": (lambda r, t, e: RUN + ["--set", "Cee=1"], "Cee"),
    "repeated --set": (lambda r, t, e: RUN + ["--set", "C=1", "--set", "C=2"],
                       "--set C is given twice"),
    "empty fold item": (lambda r, t, e: RUN + ["--folds", "1,,2"], "--folds"),
    "repeated fold": (lambda r, t, e: RUN + ["--folds", "1,1"], "fold 1 is named twice"),
    "fold without clips": (lambda r, t, e: RUN + ["--data", str(r), "--folds", "12"],
                           "fold 12"),
    "config is a folder": (lambda r, t, e: RUN + ["--config", str(t)], "is a folder"),
    "config unknown key": (lambda r, t, e: ((t / "run.toml").write_text("sede = 3\n"),
                                            RUN + ["--config", str(t / "run.toml")])[1],
                           "unknown key 'sede'. Did you mean 'seed'?"),
    "timeout 0": (lambda r, t, e: ["sweep", "--model", "rf", "--features", "mfcc-mean",
                                   "--trials", "2", "--timeout", "0"], "--timeout"),
    "unwritable cache": (lambda r, t, e: ((t / "cachefile").write_text("x"),
                                          e.__setitem__("USBENCH_CACHE", str(t / "cachefile")),
                                          RUN + ["--data", str(r)])[2], "cachefile"),
    "corrupt features.npy": (lambda r, t, e: ((_built(r, e, t) / "features.npy").write_bytes(
        b"garbage"), RUN + ["--data", str(r)])[1], "features.npy"),
    "corrupt manifest": (lambda r, t, e: ((_built(r, e, t) / "manifest.json").write_text(
        "{not json"), RUN + ["--data", str(r)])[1], "manifest.json"),
    "bad storage": (lambda r, t, e: ["sweep", "--model", "rf", "--features", "mfcc-mean",
                                     "--trials", "1", "--storage", "nosuch://x"], "--storage"),
    "predict unknown run": (lambda r, t, e: ["predict", str(_first_clip(r)), "--run",
                                             "0123456789abcdef"], "0123456789abcdef"),
    "results is a file": (lambda r, t, e: ((t / "results").write_text("x"),
                                           RUN + ["--data", str(r)])[1], "results"),
    "not urbansound8k classes": (lambda r, t, e: (_table(r, lambda x: x.__setitem__(
        "class", x["class"].replace("siren", "alarm"))), RUN + ["--data", str(r), "--dataset",
                                                               "urbansound8k"])[1],
                                 "e.g. 'alarm'"),
    "bad USBENCH_DATA": (lambda r, t, e: (e.__setitem__("USBENCH_DATA", str(t / "nowhere")),
                                          RUN)[1], "USBENCH_DATA"),
    "corrupt mlflow store": (lambda r, t, e: ((t / "results").mkdir(),
                                              (t / "results" / "mlflow.db").write_bytes(
                                                  os.urandom(4096)), ["leaderboard"])[2],
                             "mlflow.db"),
    "unreachable tracking server": (lambda r, t, e: ["leaderboard", "--tracking-uri",
                                                     "http://127.0.0.1:9"],
                                    "http://127.0.0.1:9"),
    "predict non-audio": (lambda r, t, e: ((t / "a.wav").write_text("x"), [
        "predict", str(t / "a.wav"), "--run", "0123456789abcdef"])[1], "0123456789abcdef"),
    # serving
    "serve --allow-dir a file": (lambda r, t, e: ((t / "a.txt").write_text("x"), [
        "serve", "--run", "0123456789abcdef", "--allow-dir", str(t / "a.txt")])[1],
                                 "--allow-dir {tmp}/a.txt is not a folder"),
    "serve --allow-dir missing": (lambda r, t, e: [
        "serve", "--run", "0123456789abcdef", "--allow-dir", str(t / "nowhere")],
                                  "--allow-dir {tmp}/nowhere does not exist"),
    "serve --max-seconds 0": (lambda r, t, e: [
        "serve", "--run", "0123456789abcdef", "--max-seconds", "0"],
                              "--max-seconds: expected a positive number, got 0"),
    # ranges
    "n_estimators out of range": (lambda r, t, e: [
        "run", "--model", "rf", "--features", "mfcc-mean", "--data", str(r), "--folds", "1",
        "--set", "n_estimators=1000000000"], ("'n_estimators'", "in [1, 10000]")),
    "epochs out of range": (lambda r, t, e: [
        "run", "--model", "mlp", "--features", "mfcc-mean", "--data", str(r), "--folds", "1",
        "--set", "epochs=1000000000"], ("'epochs'", "in [1, 1000]")),
    "learning rate out of range": (lambda r, t, e: [
        "run", "--model", "mlp", "--features", "mfcc-mean", "--data", str(r), "--folds", "1",
        "--set", "learning_rate=5"], ("'learning_rate'", "in (0, 1]")),
    "range in --config": (lambda r, t, e: ((t / "rf.toml").write_text(
        "[params]\nn_estimators = 1000000000\n"), [
        "run", "--model", "rf", "--features", "mfcc-mean", "--data", str(r), "--folds", "1",
        "--config", str(t / "rf.toml")])[1], ("'n_estimators'", "in [1, 10000]")),
    "range in sweep --set": (lambda r, t, e: [
        "sweep", "--model", "mlp", "--features", "mfcc-mean", "--data", str(r), "--trials", "1",
        "--set", "epochs=1", "--set", "l2=5"], ("'l2'", "in [0, 1]")),
    # unreadable entries
    "symlink loop listed": (lambda r, t, e: (_loop(_first_clip(r)), RUN + ["--data", str(r)])[1],
                            ("{clip}: symbolic link loop", "--skip-bad")),
    "two-link loop listed": (lambda r, t, e: (_loop(_first_clip(r), two=True),
                                              RUN + ["--data", str(r)])[1],
                             ("{clip}: symbolic link loop", "--skip-bad")),
    "dangling link listed": (lambda r, t, e: (_dangling(_first_clip(r)),
                                              RUN + ["--data", str(r)])[1],
                             ("{clip}: dangling symbolic link", "--skip-bad")),
    "folder listed as a clip": (lambda r, t, e: (_folder(_first_clip(r)),
                                                 RUN + ["--data", str(r)])[1],
                                ("{clip}: a folder, not a file", "--skip-bad")),
    # secrets
    "tracking password not echoed": (lambda r, t, e: ["leaderboard", "--tracking-uri",
                                                      "http://user:Bad-Pw-1@127.0.0.1:9"],
                                     "http://user:***@127.0.0.1:9"),
    "storage password not echoed": (lambda r, t, e: [
        "sweep", "--model", "rf", "--features", "mfcc-mean", "--trials", "1", "--data", str(r),
        "--storage", "postgresql+psycopg2://u:Bad-Pw-2@127.0.0.1:9/optuna"],
                                    "postgresql+psycopg2://u:***@127.0.0.1:9/optuna ("),
    # paths
    "usbench.toml table outside the root": (lambda r, t, e: (
        (r / "usbench.toml").write_text('table = "/etc/os-release"\n'),
        RUN + ["--data", str(r), "--dataset", "csv"])[1],
        "usbench.toml: table '/etc/os-release' leads outside the dataset root"),
    "usbench.toml audio_dir outside the root": (lambda r, t, e: (
        (r / "usbench.toml").write_text('table = "metadata/UrbanSound8K.csv"\n'
                                        'file = "slice_file_name"\nlabel = "class"\n'
                                        'audio_dir = "../elsewhere"\n'),
        RUN + ["--data", str(r), "--dataset", "csv"])[1],
        "usbench.toml: audio_dir '../elsewhere' leads outside the dataset root"),
    "absolute path in the file column": (lambda r, t, e: (
        _table(r, _set("slice_file_name", "/etc/os-release")), RUN + ["--data", str(r)])[1],
        "UrbanSound8K.csv line 5: slice_file_name '/etc/os-release' leads outside"),
    # runs not lost
    "run on an unreachable tracking server": (
        lambda r, t, e: RUN + ["--data", str(r), "--tracking-uri", "http://127.0.0.1:9"],
        "(connection refused). The complete result is kept in {tmp}/results/runs/"),
    "run whose artifacts cannot be logged": (
        lambda r, t, e: ((t / "results").mkdir(), (t / "results" / "mlartifacts").write_text(
            "x"), RUN + ["--data", str(r)])[2],
        "is marked FAILED. The complete result is kept in {tmp}/results/runs/"),
    # gpu
    "keras model without tensorflow": (lambda r, t, e: (_hide_tensorflow(t, e), [
        "run", "--model", "mlp", "--features", "mfcc-mean", "--data", str(r)])[1],
        "pip install 'usbench[cpu]'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_with_the_fix(case, tiny_root, tmp_path):
    """Exit code 2, the error as the last and only `usbench: error:` line, no traceback."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "USBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("USBENCH_DATA", None)
    setup, expected = CASES[case]
    clip = _first_clip(tiny_root)
    argv = setup(tiny_root, work, env)
    done = _cli(argv, env, work)
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in lines if line.startswith("usbench: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr[-3000:]
    for text in expected if isinstance(expected, tuple) else (expected,):
        assert text.format(root=tiny_root, clip=clip.name, tmp=work) in errors[0], errors[0]


def test_the_battery_is_large_enough():
    assert len(CASES) >= 25
