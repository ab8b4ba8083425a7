"""`usbench leaderboard`: ranking, statistics, reference rows, bad input, browser check."""

import shutil
import subprocess

import numpy as np
import pytest
from scipy import stats

from tests.conftest import run_cli
from usbench import tracking
from usbench.errors import ConfigError
from usbench.leaderboard import build, corrected_ttest, interval95, leaderboard, wilcoxon

FOLDS = list(range(1, 11))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"


def _log(uri, tmp_path, name, accs, model="rf", kind="run", selection="single run",
         partial=False, dataset="synthetic", config=None, extra_tags=None, metrics=True):
    folder = tmp_path / "art" / name
    folder.mkdir(parents=True)
    (folder / "note.txt").write_text(name)
    m = {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
         "macro_f1": float(np.mean(accs)) - 0.01, "fit_seconds": 1.0} if metrics else {}
    tags = {"usbench.kind": kind, "usbench.selection": selection,
            "usbench.partial": str(partial).lower(), "usbench.dataset": dataset,
            "usbench.config_id": config or name, **(extra_tags or {})}
    return tracking.log_run(uri, tmp_path / "mlartifacts", tracking.RunLog(
        experiment=dataset, run_name=name,
        params={"model": model, "features": "mfcc-stats", "model.params.n_estimators": 100},
        metrics=m, step_metrics={"fold_accuracy": list(zip(FOLDS, accs, strict=True))}
        if metrics else {}, tags=tags, artifacts=folder))


def test_corrected_ttest_matches_nadeau_bengio():
    a = [0.8, 0.7, 0.75, 0.9, 0.85]
    b = [0.7, 0.72, 0.7, 0.8, 0.8]
    d = np.subtract(a, b)
    t = d.mean() / np.sqrt(d.var(ddof=1) * (1 / 5 + 1 / 4))
    assert corrected_ttest(a, b, 1 / 4) == pytest.approx(2 * stats.t.sf(abs(t), 4))
    assert corrected_ttest(a, b, 1 / 4) > stats.ttest_rel(a, b).pvalue  # more conservative
    assert wilcoxon(a, b) == pytest.approx(stats.wilcoxon(a, b).pvalue)


def test_interval_covers_the_mean():
    low, high = interval95([0.7, 0.8, 0.75, 0.72])
    assert low < 0.7425 < high and np.isnan(interval95([0.7])[0])


def test_rows_rank_dedupe_and_label(store, tmp_path):
    best = [0.9, 0.88, 0.91, 0.87, 0.9, 0.92, 0.89, 0.9, 0.88, 0.91]
    worse = [a - 0.15 for a in best]
    _log(store, tmp_path, "rf-a", worse, config="same")
    _log(store, tmp_path, "rf-b", [a - 0.1 for a in best], config="same")  # same config, better
    _log(store, tmp_path, "mlp", best, model="mlp")
    _log(store, tmp_path, "partial", best, partial=True)
    _log(store, tmp_path, "crashed", best, metrics=False)
    for i, shift in enumerate([0.2, 0.05]):
        _log(store, tmp_path, f"trial{i}", [a - shift for a in best], model="logreg",
             kind="trial", selection="selected on CV",
             extra_tags={"usbench.study": "s", "usbench.trial_state": "complete"})
    _log(store, tmp_path, "inner", best, kind="trial", selection="nested",
         extra_tags={"usbench.study": "s-outer1", "usbench.trial_state": "complete"})
    runs, _ = tracking.fetch_runs(store, None)
    board = build(runs)
    assert [(r.model, r.selection) for r in board.rows] == [
        ("mlp", "single run"), ("logreg", "selected on CV"), ("rf", "single run")]
    assert board.rows[2].accuracy == pytest.approx(np.mean(best) - 0.1)
    assert board.skipped_crashed == 1 and board.skipped_partial == 1
    assert board.rows[0].p_ttest is None and board.rows[2].distinguishable is True
    assert len(build(runs, include_partial=True).rows) == 4


def test_report_files_sections_and_references(store, tmp_path):
    _log(store, tmp_path, "a", [0.7 + 0.01 * i for i in range(10)], dataset="urbansound8k")
    board, md, page = leaderboard(store, None, tmp_path / "out")
    text, doc = md.read_text(), page.read_text()
    assert "| 1 | rf | mfcc-stats |" in text
    assert "Published results (reference, not re-run by usbench)" in text
    assert "Piczak" in text and "0.731" in text and "0.837" in text
    assert "id='entries'" in doc and "id='references'" in doc and "data:image/png;base64," in doc
    assert (tmp_path / "out" / "leaderboard_files" / "per_fold_accuracy.png").is_file()


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


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const sections = [...document.querySelectorAll('section')].map(s => s.id).join(',');
  document.title = `CHECK images=${imgs.length} broken=${broken} sections=${sections}`;
});
</script></body>"""


def test_html_renders_in_a_browser(store, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium not found: install Debian's chromium package (.ci/run does)")
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
