"""`usbench leaderboard`: ranking, statistics, reference rows, bad input, browser check."""

import random
import shutil
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import missing_tool, run_cli
from usbench import tracking
from usbench.errors import ConfigError
from usbench.leaderboard import build, corrected_ttest, interval95, leaderboard, wilcoxon

FOLDS = list(range(1, 11))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"


def _log(uri, tmp_path, name, accs, model="rf", kind="run", selection="single run",
         partial=False, dataset="synthetic", config=None, extra_tags=None, metrics=True,
         folds=FOLDS, fingerprint="fp-synthetic", test_clips=100, train_clips=900):
    folder = tmp_path / "art" / name
    folder.mkdir(parents=True)
    (folder / "note.txt").write_text(name)
    m = {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
         "macro_f1": float(np.mean(accs)) - 0.01, "fit_seconds": 1.0} if metrics else {}
    tags = {"usbench.kind": kind, "usbench.selection": selection,
            "usbench.partial": str(partial).lower(), "usbench.dataset": dataset,
            "usbench.dataset_fingerprint": fingerprint, "usbench.dataset_clips": "1000",
            "usbench.config_id": config or name, **(extra_tags or {})}
    series = {"fold_accuracy": list(zip(folds, accs, strict=True)),
              "fold_test_clips": [(f, test_clips) for f in folds],
              "fold_train_clips": [(f, train_clips) for f in folds]}
    return tracking.log_run(uri, tmp_path / "mlartifacts", tracking.RunLog(
        experiment=dataset, run_name=name,
        params={"model": model, "features": "mfcc-stats", "model.params.n_estimators": 100},
        metrics=m, step_metrics=series if metrics else {}, tags=tags, artifacts=folder))


# Differences of 5 paired folds: mean 0.03, sample variance 0.00025. With n_test / n_train =
# 100 / 900 the corrected variance is 0.00025 * (1/5 + 1/9) = 7.78e-5, t = 3.4017 on 4 degrees
# of freedom: p = 0.02724 (two-sided). The wrong ratio 1 / (5 - 1) gives t = 2.8284, p = 0.0474.
D5 = [0.02, 0.04, 0.01, 0.03, 0.05]
P_1_9, P_1_4 = 0.027235, 0.047421


def test_corrected_ttest_by_hand():
    b = [0.6, 0.62, 0.58, 0.65, 0.61]
    a = list(np.add(b, D5))
    assert corrected_ttest(a, b, 1 / 9) == pytest.approx(P_1_9, abs=1e-6)
    assert corrected_ttest(a, b, 1 / 4) == pytest.approx(P_1_4, abs=1e-6)
    assert corrected_ttest(b, a, 1 / 9) == pytest.approx(P_1_9, abs=1e-6)  # two-sided
    assert corrected_ttest(a[:2], b[:2], 1 / 9) is None  # 2 folds: no test
    assert corrected_ttest(list(np.add(b, 0.03)), b, 1 / 9) is None  # no variance: no test


def test_wilcoxon_by_hand():
    b = [0.5] * 6
    # 6 positive differences: the exact two-sided p-value is 2 / 2**6 = 0.03125.
    assert wilcoxon(list(np.add(b, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06])), b) == 0.03125
    # 5 non-zero differences (one tie): the smallest possible p is 0.0625, so no test.
    assert wilcoxon(list(np.add(b, [0.0, 0.02, 0.03, 0.04, 0.05, 0.06])), b) is None


def test_interval_carries_the_same_correction():
    folds = [0.60, 0.62, 0.58, 0.65, 0.61, 0.59, 0.63, 0.64, 0.57, 0.61]
    # mean 0.61, s = 0.0258199, t(0.975, 9) = 2.262157: half-width t s sqrt(1/10 + 1/9).
    low, high = interval95(folds, 1 / 9)
    assert low == pytest.approx(0.61 - 0.0268369, abs=1e-6)
    assert high == pytest.approx(0.61 + 0.0268369, abs=1e-6)
    naive = 2.262157 * 0.0258199 / np.sqrt(10)  # 0.018470: 31 % too narrow
    assert (high - low) / (2 * naive) == pytest.approx(np.sqrt(1 + 10 / 9), rel=1e-5)
    assert np.isnan(interval95([0.7], 1 / 9)[0]) and np.isnan(interval95(folds, None)[0])


def test_board_takes_the_ratio_from_recorded_clip_counts(store, tmp_path):
    b = [0.6, 0.62, 0.58, 0.65, 0.61]
    five = [1, 2, 3, 4, 5]  # --folds 1-5 of ten: each fold still trains on nine folds
    _log(store, tmp_path, "top", list(np.add(b, D5)), folds=five)
    _log(store, tmp_path, "other", b, model="logreg", folds=five)
    board = build(tracking.fetch_runs(store, None)[0])
    other = board.rows[1]
    assert other.p_ttest == pytest.approx(P_1_9, abs=1e-6)
    assert other.distinguishable is True
    assert other.why_no_wilcoxon == "n/a (too few folds)" and other.p_wilcoxon is None


def test_no_variance_gives_no_p_value_and_no_verdict(store, tmp_path):
    base = [0.6 + 0.01 * i for i in range(10)]
    _log(store, tmp_path, "top", [a + 0.05 for a in base])
    _log(store, tmp_path, "shifted", base, model="logreg")
    board, md, _ = leaderboard(store, None, tmp_path / "out")
    row = board.rows[1]
    assert row.p_ttest is None and row.distinguishable is None
    text = md.read_text()
    assert "n/a (no variance)" in text and "worse (p < 0.05)" not in text


def test_datasets_and_fold_sets_are_never_mixed(store, tmp_path):
    accs = [0.7 + 0.01 * i for i in range(10)]
    _log(store, tmp_path, "default", accs)
    _log(store, tmp_path, "copy", [a - 0.2 for a in accs], fingerprint="fp-small-copy")
    _log(store, tmp_path, "subset", [0.9, 0.9, 0.9], folds=[1, 2, 10])
    board, md, _ = leaderboard(store, None, tmp_path / "out")
    assert [(g.fingerprint, g.folds, len(g.rows)) for g in board.groups] == [
        ("fp-synthetic", tuple(FOLDS), 1), ("fp-small-copy", tuple(FOLDS), 1),
        ("fp-synthetic", (1, 2, 10), 1)]
    assert all(r.p_ttest is None and r.why_no_ttest == "" for r in board.rows)  # no pairing
    text = md.read_text()
    assert "## synthetic (1,000 clips, fingerprint fp-synth): tested folds 1-10" in text
    assert "## synthetic (1,000 clips, fingerprint fp-small): tested folds 1-10" in text
    assert "## synthetic (1,000 clips, fingerprint fp-synth): tested folds 1,2,10" in text


def test_rows_rank_dedupe_and_label(store, tmp_path):
    best = [0.9, 0.88, 0.91, 0.87, 0.9, 0.92, 0.89, 0.9, 0.88, 0.91]
    worse = [a - 0.15 for a in best]
    _log(store, tmp_path, "rf-a", worse, config="same")
    rf_b = [a - 0.1 - 0.01 * (i % 3) for i, a in enumerate(best)]
    _log(store, tmp_path, "rf-b", rf_b, config="same")  # same config, better
    _log(store, tmp_path, "mlp", best, model="mlp")
    _log(store, tmp_path, "partial", best, partial=True)
    _log(store, tmp_path, "crashed", best, metrics=False)
    for i, shift in enumerate([0.2, 0.05]):
        _log(store, tmp_path, f"trial{i}", [a - shift for a in best], model="logreg",
             kind="trial", selection="selected on CV",
             extra_tags={"usbench.study": "s", "usbench.trial_state": "complete"})
    _log(store, tmp_path, "inner", best, kind="inner_trial", selection="nested (inner folds)",
         extra_tags={"usbench.study": "s-outer1", "usbench.trial_state": "complete"})
    runs, _ = tracking.fetch_runs(store, None)
    board = build(runs)
    assert [(r.model, r.selection) for r in board.rows] == [
        ("mlp", "single run"), ("logreg", "selected on CV"), ("rf", "single run")]
    assert board.rows[2].accuracy == pytest.approx(np.mean(rf_b))
    assert board.skipped_crashed == 1 and board.skipped_partial == 1
    assert board.rows[0].p_ttest is None and board.rows[2].distinguishable is True
    assert len(build(runs, include_partial=True).rows) == 4


def test_a_reproduced_best_trial_is_one_row(store, tmp_path):
    accs = [0.7 + 0.01 * i for i in range(10)]
    _log(store, tmp_path, "trial0", accs, kind="trial", selection="selected on CV",
         config="cfg-best", extra_tags={"usbench.study": "s", "usbench.trial_state": "complete"})
    _log(store, tmp_path, "rerun", accs, selection="selected on CV", config="cfg-best",
         extra_tags={"usbench.study": "s"})
    assert len(build(tracking.fetch_runs(store, None)[0]).rows) == 1


def test_report_files_sections_and_references(store, tmp_path):
    _log(store, tmp_path, "a", [0.7 + 0.01 * i for i in range(10)], dataset="urbansound8k")
    board, md, page = leaderboard(store, None, tmp_path / "out")
    text, doc = md.read_text(), page.read_text()
    assert "| 1 | rf | mfcc-stats |" in text
    assert "Published results (reference, not re-run by usbench)" in text
    assert "Piczak" in text and "0.731" in text and "0.837" in text
    assert "id='entries'" in doc and "id='references'" in doc and "data:image/png;base64," in doc
    assert (tmp_path / "out" / "leaderboard_files" / "per_fold_accuracy.png").is_file()


def test_pretrained_encoders_get_their_own_section_never_ranked_with_scratch(store, tmp_path):
    accs = [0.6 + 0.01 * i for i in range(10)]
    _log(store, tmp_path, "scratch", accs, dataset="urbansound8k")
    assert "with pretrained encoders" not in leaderboard(store, None, tmp_path / "a")[1].read_text()
    enc = {"usbench.pretrained": "true", "usbench.encoder": "birdnet",
           "usbench.encoder.overlap": "Freesound clips may be among its training data."}
    _log(store, tmp_path, "probe-lr", [a + 0.2 for a in accs], model="logreg",
         dataset="urbansound8k", extra_tags=enc)
    _log(store, tmp_path, "probe-rf", [a + 0.1 + 0.01 * (i % 3) for i, a in enumerate(accs)],
         dataset="urbansound8k",
         extra_tags={**enc, "usbench.encoder": "my-birdnet"})
    board, md, page = leaderboard(store, None, tmp_path / "b")
    assert [(g.pretrained, [r.model for r in g.rows]) for g in board.groups] == [
        (False, ["rf"]), (True, ["logreg", "rf"])]
    scratch, probes = board.groups
    assert scratch.rows[0].p_ttest is None  # the best scratch entry is compared with nothing
    assert probes.rows[1].p_ttest is not None  # probes are compared among themselves
    text = md.read_text()
    assert "tested folds 1-10 - with pretrained encoders" in text
    assert "Pretraining overlap, birdnet, my-birdnet: Freesound clips may be among" in text
    assert text.count("Pretraining overlap") == 1
    probe_refs = text.split("Published results with pretrained encoders")[1]
    assert "BEATs" in probe_refs and "0.848" in probe_refs
    assert "BEATs" not in text.split("Published results with pretrained encoders")[0]
    assert "id='references-pretrained'" in page.read_text()


def test_no_reference_rows_for_synthetic(store, tmp_path):
    _log(store, tmp_path, "a", [0.7] * 10)
    _, md, _ = leaderboard(store, None, tmp_path / "out")
    assert "Published results" not in md.read_text()


def test_no_runs_says_how_to_make_some(store, tmp_path, capsys):
    _log(store, tmp_path, "crashed", [0.7] * 10, metrics=False)
    assert run_cli("leaderboard", "--tracking-uri", store) == 2
    err = capsys.readouterr().err
    assert "No finished runs in synthetic at " in err
    assert "Make some with `usbench run --model rf --features mfcc-stats`" in err


def test_unknown_experiment_did_you_mean(store, tmp_path):
    _log(store, tmp_path, "a", [0.7] * 10)
    with pytest.raises(ConfigError) as err:
        leaderboard(store, ["synthetc"], tmp_path / "out")
    assert str(err.value) == (f"Unknown experiment 'synthetc' in {store}. Did you mean "
                              "'synthetic'? Available: Default, synthetic.")



def test_corrupt_store_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "results" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(random.Random(0).randbytes(8192))
    assert run_cli("leaderboard") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"usbench: error: MLflow store {db} is not a readable SQLite database (file is not a "
        "database). Move it aside or restore it from a backup (a new store is then created), "
        "or pass --tracking-uri for another store."]


def test_unreachable_server_is_one_line_and_fast(capsys):
    start = time.monotonic()
    assert run_cli("leaderboard", "--tracking-uri", "http://127.0.0.1:9") == 2
    assert time.monotonic() - start < 30  # MLflow's own retries would take minutes
    assert capsys.readouterr().err.splitlines() == [
        "usbench: error: Cannot reach the MLflow tracking server at http://127.0.0.1:9 "
        "(connection refused). Start the server, or pass the right --tracking-uri."]

CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const sections = [...document.querySelectorAll('section')].map(s => s.id).join(',');
  document.title = `CHECK images=${imgs.length} broken=${broken} sections=${sections}`;
});
</script></body>"""


@pytest.mark.slow
def test_html_renders_in_a_browser(store, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        missing_tool("Chromium not found: install Debian's chromium package")
    _log(store, tmp_path, "a", [0.7 + 0.01 * i for i in range(10)], dataset="urbansound8k")
    _, _, page = leaderboard(store, None, tmp_path / "out")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", CHECK))
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    title = done.stdout.split("<title>")[1].split("</title>")[0]
    assert title.startswith("CHECK images=") and "broken=0" in title, title
    assert "sections=entries,references,plots" in title
    assert int(title.split("images=")[1].split()[0]) >= 1
