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

# name: (setup(root, tmp, env) -> argv, text the error must contain). {root}, {clip} and {tmp}
# in the expected text are filled in after setup.
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
    assert expected.format(root=tiny_root, clip=clip.name, tmp=work) in errors[0], errors[0]


def test_the_battery_is_large_enough():
    assert len(CASES) >= 25
