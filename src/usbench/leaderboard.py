"""``usbench leaderboard``: the published report, built from finished MLflow runs.

One table per dataset (by fingerprint) and set of tested folds: rows of different data or
folds are never ranked or paired together. In a table, one row per distinct configuration
(its best run), best first; a sweep contributes its best trial (labelled "selected on CV"), a
nested sweep its outer-fold run ("nested"; its inner trials never appear). Each row is
compared with the top one on their folds by the corrected resampled t-test of Nadeau & Bengio
(2003), with n_test / n_train from the recorded clip counts, and the Wilcoxon signed-rank test
(scipy); too few folds give no p-value rather than one that cannot be significant.
Partial-data runs are left out unless asked; runs without metrics (crashed) are skipped and
counted. Reference rows (published results under each dataset's official folds, from
``data/reference_results.toml``) are shown for the datasets on the board only. Writes
``leaderboard.md`` (with PNGs beside it) and a self-contained ``leaderboard.html`` (images
embedded).
"""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path

import numpy as np

from usbench.errors import ConfigError
from usbench.record import Tag
from usbench.redact import redact
from usbench.report import fold_span, plots, to_html, to_markdown

log = logging.getLogger("usbench")
ALPHA = 0.05


@dataclass
class Row:
    """One leaderboard entry (a run), with its comparison to the top entry of its group."""

    run_id: str
    experiment: str
    model: str
    features: str
    params: dict
    accuracy: float
    accuracy_std: float
    macro_f1: float
    fold_accuracy: dict[int, float]
    selection: str
    partial: bool
    augment: bool
    fit_seconds: float
    kind: str
    artifact_uri: str
    config_id: str = ""
    dataset: str = "?"
    dataset_fingerprint: str = ""
    dataset_clips: int | None = None
    fold_plan: str = "official folds"
    fold_ratio: dict[int, float] = field(default_factory=dict)
    pretrained: bool = False
    encoder: str = ""
    overlap: str = ""
    ci95: tuple[float, float] = (float("nan"), float("nan"))
    p_ttest: float | None = None
    p_wilcoxon: float | None = None
    why_no_ttest: str = ""
    why_no_wilcoxon: str = ""
    distinguishable: bool | None = None
    audit: dict = field(default_factory=dict)

    @property
    def key_params(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))

    @property
    def folds(self) -> tuple[int, ...]:
        return tuple(sorted(self.fold_accuracy))

    def test_train_ratio(self, folds) -> float | None:
        """Mean n_test / n_train over `folds` (None if the run did not record clip counts)."""
        if not folds or any(f not in self.fold_ratio for f in folds):
            return None
        return float(np.mean([self.fold_ratio[f] for f in folds]))


# Below these counts a test cannot say anything: the corrected t-test needs a variance over at
# least 3 paired folds; Wilcoxon's exact two-sided p-value is at least 2 / 2**n for n non-zero
# differences, so n <= 5 can never reach p < 0.05.
MIN_TTEST_FOLDS = 3
MIN_WILCOXON_DIFFERENCES = 6


def interval95(folds: list[float], test_train_ratio: float | None) -> tuple[float, float]:
    """95 % t-interval of the mean fold accuracy, with Nadeau & Bengio's correction.

    The folds' training sets overlap, so the naive standard error s / sqrt(J) is too small;
    it is multiplied by sqrt(1 + J * n_test / n_train) (variance (1/J + n_test/n_train) s^2),
    as in the corrected t-test. nan with fewer than two folds or no recorded ratio.
    """
    from scipy import stats

    if len(folds) < 2 or test_train_ratio is None:
        return (float("nan"), float("nan"))
    k = len(folds)
    mean = float(np.mean(folds))
    scale = float(np.sqrt(np.var(folds, ddof=1) * (1 / k + test_train_ratio)))
    if scale == 0:
        return (mean, mean)
    low, high = stats.t.interval(0.95, k - 1, loc=mean, scale=scale)
    return (max(0.0, float(low)), min(1.0, float(high)))  # accuracy lives in [0, 1]


def corrected_ttest(a: list[float], b: list[float], test_train_ratio: float) -> float | None:
    """Two-sided p-value of Nadeau & Bengio's corrected resampled t-test on paired folds.

    The variance of the J fold differences is inflated from s^2 / J to (1/J + n_test/n_train)
    s^2 for the overlapping training sets; the statistic follows Student's t with J - 1 dof.
    None with fewer than MIN_TTEST_FOLDS pairs or differences without variance (no test).
    """
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    k = len(d)
    # Accuracies are ratios of counts: equal differences can differ by rounding only.
    if k < MIN_TTEST_FOLDS or d.std(ddof=1) < 1e-12:
        return None
    var = d.var(ddof=1) * (1 / k + test_train_ratio)
    t = d.mean() / np.sqrt(var)
    return float(2 * stats.t.sf(abs(t), k - 1))


def wilcoxon(a: list[float], b: list[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value on paired folds (zero differences dropped).

    None with fewer than MIN_WILCOXON_DIFFERENCES non-zero differences: the smallest p-value
    possible there is 0.0625, so the test could never find a difference.
    """
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if np.count_nonzero(d) < MIN_WILCOXON_DIFFERENCES:
        return None
    return float(stats.wilcoxon(d).pvalue)


def _row(run: dict) -> Row | None:
    m, p, t = run["metrics"], run["params"], run["tags"]
    if "accuracy" not in m or not run["fold_accuracy"]:
        return None
    params = {k.removeprefix("model.params."): v for k, v in p.items()
              if k.startswith("model.params.")}
    test, train = run.get("fold_test_clips", {}), run.get("fold_train_clips", {})
    clips = t.get(Tag.DATASET_CLIPS)
    return Row(run_id=run["run_id"], experiment=run["experiment"], model=p.get("model", "?"),
               features=p.get("features", "?"), params=params, accuracy=m["accuracy"],
               accuracy_std=m.get("accuracy_std", float("nan")),
               macro_f1=m.get("macro_f1", float("nan")), fold_accuracy=run["fold_accuracy"],
               selection=t.get(Tag.SELECTION, "single run"),
               partial=t.get(Tag.PARTIAL) == "true",
               augment=params.get("augment", p.get("augment", "False")) in ("True", "true"),
               fit_seconds=m.get("fit_seconds", float("nan")),
               kind=t.get(Tag.KIND, "run"), artifact_uri=run["artifact_uri"],
               config_id=t.get(Tag.CONFIG_ID, run["run_id"]),
               dataset=t.get(Tag.DATASET, p.get("dataset", "?")),
               dataset_fingerprint=t.get(Tag.DATASET_FINGERPRINT, ""),
               dataset_clips=int(clips) if clips else None,
               fold_plan=t.get(Tag.FOLD_PLAN, "official folds"),
               fold_ratio={f: test[f] / train[f] for f in test if train.get(f)},
               pretrained=t.get(Tag.PRETRAINED) == "true",
               encoder=t.get(Tag.ENCODER, ""),
               overlap=t.get(Tag.ENCODER_OVERLAP, ""),
               audit={k: m[k] for k in ("random_split_accuracy", "inflation",
                                        "leaky_recordings") if k in m})


@dataclass(frozen=True)
class Group:
    """Rows that may be compared: one dataset (by fingerprint), one set of tested folds."""

    dataset: str
    fingerprint: str
    clips: int | None
    folds: tuple[int, ...]
    rows: list[Row]
    fold_plan: str = "official folds"
    pretrained: bool = False

    @property
    def title(self) -> str:
        size = f"{self.clips:,} clips" if self.clips else "clip count not recorded"
        fp = f", fingerprint {self.fingerprint[:8]}" if self.fingerprint else ""
        plan = "" if self.fold_plan == "official folds" else f", {self.fold_plan}"
        kind = (" - with pretrained encoders (they saw extra data: never ranked against "
                "models trained from scratch)" if self.pretrained else "")
        return (f"{self.dataset} ({size}{fp}): tested folds {fold_span(self.folds)}"
                f"{plan}{kind}")


@dataclass(frozen=True)
class Board:
    """The ranked groups, the audits, and what was left out."""

    groups: list[Group]
    audits: list[Row]
    skipped_crashed: int
    skipped_partial: int
    datasets: list[str]
    references: list[dict]
    run_id: str | None = None

    @property
    def rows(self) -> list[Row]:
        return [r for g in self.groups for r in g.rows]


def _compare(rows: list[Row]) -> None:
    """Intervals for every row; p-values of each row against the first (best) one."""
    top = rows[0]
    for r in rows:
        r.ci95 = interval95(list(r.fold_accuracy.values()), r.test_train_ratio(r.folds))
        if r is top:
            continue
        shared = sorted(set(top.fold_accuracy) & set(r.fold_accuracy))
        a = [top.fold_accuracy[f] for f in shared]
        b = [r.fold_accuracy[f] for f in shared]
        ratio = r.test_train_ratio(shared)
        if len(shared) < MIN_TTEST_FOLDS:
            r.why_no_ttest = "n/a (too few folds)"
        elif ratio is None:
            r.why_no_ttest = "n/a (clip counts not recorded)"
        else:
            r.p_ttest = corrected_ttest(a, b, ratio)
            r.why_no_ttest = "n/a (no variance)" if r.p_ttest is None else ""
        r.p_wilcoxon = wilcoxon(a, b)
        r.why_no_wilcoxon = "n/a (too few folds)" if r.p_wilcoxon is None else ""
        r.distinguishable = None if r.p_ttest is None else r.p_ttest < ALPHA


def build(runs: list[dict], include_partial: bool = False) -> Board:
    """Rank finished runs per dataset and fold set: one row per configuration, best first."""
    audits, crashed, partial = [], 0, 0
    best_trial: dict[str, Row] = {}
    by_config: dict[str, Row] = {}
    for run in runs:
        row = _row(run)
        if row is None:
            if run["tags"].get(Tag.KIND) not in ("sweep", "leaderboard"):
                crashed += 1
            continue
        if row.partial and not include_partial:
            partial += 1
            continue
        if row.kind == "audit":
            audits.append(row)
            continue
        if row.kind == "inner_trial":
            # A nested sweep's inner trials score inner folds only; its estimate is the
            # sweep's outer-fold run.
            continue
        if row.kind == "trial":
            study = run["tags"].get(Tag.STUDY, "?")
            if (run["tags"].get(Tag.TRIAL_STATE) != "complete"
                    or row.selection == "nested"):
                continue
            if study not in best_trial or row.accuracy > best_trial[study].accuracy:
                best_trial[study] = row
            continue
        key = row.config_id
        if key not in by_config or row.accuracy > by_config[key].accuracy:
            by_config[key] = row
    # A run of a study's reproduce command is the same configuration as its best trial.
    trials = [r for r in best_trial.values() if r.config_id not in by_config]
    grouped: dict[tuple, list[Row]] = {}
    for r in [*by_config.values(), *trials]:
        # Entries on pretrained encoders saw extra data: a group of their own.
        key = (r.dataset, r.dataset_fingerprint, r.folds, r.fold_plan, r.pretrained)
        grouped.setdefault(key, []).append(r)
    groups = []
    # By dataset name, trained from scratch first, then most folds first, then best top row.
    for (name, fp, folds, plan, pre), rows in sorted(grouped.items(), key=lambda kv: (
            kv[0][0], kv[0][4], -len(kv[0][2]), -max(r.accuracy for r in kv[1]), kv[0])):
        rows.sort(key=lambda r: -r.accuracy)
        _compare(rows)
        clips = next((r.dataset_clips for r in rows if r.dataset_clips), None)
        groups.append(Group(dataset=name, fingerprint=fp, clips=clips, folds=folds, rows=rows,
                            fold_plan=plan, pretrained=pre))
    datasets = sorted({g.dataset for g in groups} | {a.dataset for a in audits})
    text = files("usbench").joinpath("data/reference_results.toml").read_text()
    references = [r for r in tomllib.loads(text)["reference"] if r["dataset"] in datasets]
    return Board(groups=groups, audits=audits, skipped_crashed=crashed,
                 skipped_partial=partial, datasets=datasets, references=references)


LEADERBOARD_EXPERIMENT = "leaderboard"


def leaderboard(uri: str, experiments: list[str] | None, out: Path,
                include_partial: bool = False) -> tuple[Board, Path, Path]:
    """Build the report from the runs at `uri`, write it into `out`, and log it as the
    artifacts of a run of kind ``leaderboard``: in the experiment it ranks when there is one,
    else in the ``leaderboard`` experiment.

    Returns:
        (board, leaderboard.md, leaderboard.html); ``board.run_id`` is the MLflow run (None
        when logging failed, with a warning).
    """
    from usbench import tracking

    runs, names = tracking.fetch_runs(uri, experiments)
    board = build(runs, include_partial=include_partial)
    if not board.rows and not board.audits:
        where = ", ".join(experiments or [n for n in names if n != "Default"]) or "the store"
        extra = (f" ({board.skipped_partial} partial-data run(s) left out: pass "
                 "--include-partial)" if board.skipped_partial else "")
        raise ConfigError(
            f"No finished runs in {where} at {redact(uri)}{extra}. Make some with `usbench run "
            "--model rf --features mfcc-stats` or `usbench sweep ...`."
        )
    out.mkdir(parents=True, exist_ok=True)
    images = plots(board, out / "leaderboard_files")
    md, page = out / "leaderboard.md", out / "leaderboard.html"
    md.write_text(to_markdown(board, images, out))
    page.write_text(to_html(board, images))
    (out / "leaderboard.json").write_text(json.dumps(
        [{k: v for k, v in r.__dict__.items() if k != "artifact_uri"} for r in board.rows],
        indent=1, default=str) + "\n")
    board = replace(board, run_id=_log_report(uri, out, board))
    return board, md, page


def _log_report(uri: str, out: Path, board: Board) -> str | None:
    """Log the written report (Markdown, HTML, JSON, plots) as one MLflow run."""
    import time

    from usbench import tracking
    from usbench.paths import results_dir

    ranked = sorted({r.experiment for r in board.rows} | {a.experiment for a in board.audits})
    experiment = ranked[0] if len(ranked) == 1 else LEADERBOARD_EXPERIMENT
    files = [out / n for n in ("leaderboard.md", "leaderboard.html", "leaderboard.json",
                               "leaderboard_files") if (out / n).exists()]
    now = int(time.time() * 1000)
    return tracking.log_run_or_warn(uri, results_dir() / "mlartifacts", tracking.RunLog(
        experiment=experiment, run_name=time.strftime("leaderboard-%Y%m%d-%H%M%S"),
        params={"experiments": ",".join(ranked), "rows": len(board.rows)},
        metrics={}, step_metrics={},
        tags={Tag.KIND: "leaderboard", Tag.DATASETS: ",".join(board.datasets),
              "mlflow.note.content": "The published leaderboard: leaderboard.html and .md "
                                     "are in this run's artifacts."},
        artifacts=out, artifact_files=tuple(files), start_ms=now, end_ms=now))
