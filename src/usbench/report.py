"""The leaderboard's report: per-fold and confusion plots, the Markdown page and the
self-contained HTML page (images embedded), with the notes that explain them."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from usbench.leaderboard import Board, Group, Row


def fold_span(folds: tuple[int, ...]) -> str:
    """``1-10`` for a run of three or more consecutive folds, else ``1,2,10``."""
    if folds and list(folds) == list(range(folds[0], folds[-1] + 1)) and len(folds) > 2:
        return f"{folds[0]}-{folds[-1]}"
    return ",".join(map(str, folds))


def _confusion_csv(row: Row) -> Path | None:
    uri = row.artifact_uri
    if not uri.startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(uri).path)) / "confusion_matrix.csv"
    return path if path.is_file() else None


def plots(board: Board, folder: Path, top: int = 3) -> dict[str, Path]:
    """Per-fold accuracy of every entry and the confusion matrices of the top entries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from usbench.features import short_label
    from usbench.outputs import plot_confusion

    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    if board.rows:
        fig, ax = plt.subplots(figsize=(9, 0.5 * len(board.rows) + 1.8), layout="constrained")
        for i, r in enumerate(board.rows):
            folds = sorted(r.fold_accuracy)
            vals = [r.fold_accuracy[f] for f in folds]
            ax.scatter(vals, [i] * len(vals), s=28, alpha=0.7, zorder=2)
            for f, v in zip(folds, vals, strict=True):
                ax.annotate(str(f), (v, i), xytext=(0, 6), textcoords="offset points",
                            ha="center", fontsize=6, color="0.4")
            ax.plot([r.accuracy], [i], marker="|", markersize=18, color="black", zorder=3)
        several = len(board.groups) > 1
        ax.set_yticks(range(len(board.rows)), [
            f"{r.model} / {short_label(r.features)} ({r.selection})"
            + (f" [{r.dataset}, folds {fold_span(r.folds)}]" if several else "")
            for r in board.rows])
        ax.invert_yaxis()
        ax.set_xlabel("accuracy per test fold (numbers: fold; bar: mean)")
        ax.grid(axis="x", alpha=0.3)
        made["per_fold"] = folder / "per_fold_accuracy.png"
        fig.savefig(made["per_fold"], dpi=110)
        plt.close(fig)
    for i, r in enumerate(board.rows[:top]):
        csv = _confusion_csv(r)
        if csv is None:
            continue
        cm = pd.read_csv(csv, index_col=0)
        path = folder / f"confusion_{i + 1}.png"
        plot_confusion(cm.to_numpy(), tuple(cm.columns),
                       path, f"#{i + 1} {r.model} on {short_label(r.features)}: "
                       f"{r.accuracy:.3f}")
        made[f"confusion_{i + 1}"] = path
    return made


def _fmt_p(p: float | None, why: str) -> str:
    if p is None:
        return why
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _table(group: Group) -> tuple[list[str], list[list[str]]]:
    head = ["#", "model", "features", "hyper-parameters", "accuracy (mean ± std)", "95 % CI",
            "macro-F1", "per-fold accuracy", "selection", "data", "augment", "fit s",
            "p (corrected t)", "p (Wilcoxon)", "vs best", "run"]
    body = []
    for i, r in enumerate(group.rows, start=1):
        folds = " ".join(f"{r.fold_accuracy[f]:.2f}" for f in sorted(r.fold_accuracy))
        verdict = ("best" if i == 1 else "" if r.distinguishable is None
                   else "worse (p < 0.05)" if r.distinguishable else "not distinguishable")
        ci = "" if r.ci95[0] != r.ci95[0] else f"[{r.ci95[0]:.3f}, {r.ci95[1]:.3f}]"
        body.append([str(i), r.model, r.features, r.key_params,
                     f"{r.accuracy:.3f} ± {r.accuracy_std:.3f}", ci, f"{r.macro_f1:.3f}",
                     folds, r.selection, "partial" if r.partial else "complete",
                     "yes" if r.augment else "no", f"{r.fit_seconds:.0f}",
                     "" if i == 1 else _fmt_p(r.p_ttest, r.why_no_ttest),
                     "" if i == 1 else _fmt_p(r.p_wilcoxon, r.why_no_wilcoxon), verdict,
                     r.run_id[:8]])
    return head, body


def _notes(board: Board) -> list[str]:
    notes = [
        "One table per dataset (by fingerprint) and set of tested folds; rows are compared "
        "only within a table.",
        "Accuracy is the mean over the tested folds of leave-one-fold-out on the dataset's own "
        "folds. The 95 % interval is a t-interval over folds whose standard error carries "
        "Nadeau & Bengio's correction for overlapping training sets (times sqrt(1 + J n_test / "
        "n_train), J folds, n_test / n_train from each fold's clip counts), clipped to [0, 1].",
        "\"selected on CV\": the best of a sweep, chosen on the same folds that score it "
        "(optimistic). \"nested\": parameters chosen on inner folds only (unbiased).",
        "p-values compare each row with the top row of its table on their folds: corrected "
        "resampled t-test (Nadeau & Bengio 2003; needs 3 folds and differences that vary) and "
        "Wilcoxon signed-rank (needs 6 non-zero differences to be able to reach p < 0.05).",
        "Macro-F1 averages, per fold, the classes present in that fold's test clips.",
    ]
    if any(g.fold_plan.startswith("generated") for g in board.groups):
        notes.append("\"generated folds\": folds usbench made for data without any (stratified, "
                     "grouped by recording when recording ids are known; the assignment is in "
                     "each run's folds.csv). They are not an official protocol: compare such "
                     "rows only with rows on the same folds, never with published figures.")
    if any(g.pretrained for g in board.groups):
        notes.append("\"with pretrained encoders\": features from a frozen network trained on "
                     "other data (nothing of it is fitted on any fold). Such entries saw extra "
                     "data, so they are ranked only among themselves.")
        overlaps: dict[str, set[str]] = {}  # one note per text, naming its encoders
        for g in board.groups:
            for r in g.rows if g.pretrained else []:
                if r.overlap:
                    overlaps.setdefault(r.overlap, set()).add(r.encoder)
        notes += [f"Pretraining overlap, {', '.join(sorted(encs))}: {text}"
                  for text, encs in sorted(overlaps.items(), key=lambda kv: sorted(kv[1]))]
    if board.skipped_crashed:
        notes.append(f"{board.skipped_crashed} run(s) without metrics (crashed) were skipped.")
    if board.skipped_partial:
        notes.append(f"{board.skipped_partial} partial-data run(s) left out "
                     "(--include-partial shows them).")
    return notes


def _reference_tables(board: Board) -> list[tuple[str, list[dict]]]:
    """Published results: trained from scratch, then probes on pretrained encoders (shown
    when the board has entries of that kind)."""
    scratch = [r for r in board.references if not r.get("pretrained")]
    probes = [r for r in board.references if r.get("pretrained")]
    tables = [("Published results (reference, not re-run by usbench)", scratch)] if scratch \
        else []
    if probes and any(g.pretrained for g in board.groups):
        tables.append(("Published results with pretrained encoders (linear probes; reference, "
                       "not re-run by usbench)", probes))
    return tables


def to_markdown(board: Board, images: dict[str, Path], out: Path) -> str:
    lines = ["# usbench leaderboard", "",
             f"Datasets: {', '.join(board.datasets) or 'none'}", ""]
    for group in board.groups:
        head, body = _table(group)
        lines += [f"## {group.title}", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
        lines.append("")
    lines += [f"- {n}" for n in _notes(board)] + [""]
    for title, refs in _reference_tables(board):
        lines += [f"## {title}", "",
                  "| dataset | model | features | accuracy | citation |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['model']} | {r['features']} | {r['accuracy']:.3f} | "
                  f"{r['citation']} |" for r in refs]
        lines.append("")
    if board.audits:
        lines += ["## Leakage audits", "",
                  "| model | features | fold protocol | random split | inflation | recordings "
                  "in several folds | run |", "|---|---|---|---|---|---|---|"]
        for a in board.audits:
            lines.append(f"| {a.model} | {a.features} | {a.accuracy:.3f} | "
                         f"{a.audit.get('random_split_accuracy', float('nan')):.3f} | "
                         f"{100 * a.audit.get('inflation', float('nan')):+.1f} points | "
                         f"{int(a.audit.get('leaky_recordings', 0))} | {a.run_id[:8]} |")
        lines.append("")
    if images:
        lines += ["## Plots", ""]
        lines += [f"![{name}]({path.relative_to(out)})" for name, path in images.items()]
    return "\n".join(lines) + "\n"


def to_html(board: Board, images: dict[str, Path]) -> str:
    esc = html.escape

    def table(h, rows):
        return ("<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in h)
                + "</tr></thead><tbody>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
                          for r in rows) + "</tbody></table>")

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>usbench leaderboard"
             "</title><style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             "th{background:#f0f3f7}tr:nth-child(even){background:#fafafa}"
             "section{margin-bottom:2em}img{max-width:100%;border:1px solid #eee}"
             ".ref td{color:#555;font-style:italic}</style></head><body>",
             "<h1>usbench leaderboard</h1>",
             f"<p>Datasets: {esc(', '.join(board.datasets) or 'none')}</p>",
             "<section id='entries'><h2>Entries</h2>"]
    for group in board.groups:
        parts += [f"<h3>{esc(group.title)}</h3>", table(*_table(group))]
    parts += ["<ul>" + "".join(f"<li>{esc(n)}</li>" for n in _notes(board)) + "</ul></section>"]
    for i, (title, refs) in enumerate(_reference_tables(board)):
        parts += [f"<section id='references{'-pretrained' if i else ''}' class='ref'>"
                  f"<h2>{esc(title)}</h2>",
                  table(["dataset", "model", "features", "accuracy", "citation"],
                        [[r["dataset"], r["model"], r["features"], f"{r['accuracy']:.3f}",
                          r["citation"]] for r in refs]), "</section>"]
    if board.audits:
        parts += ["<section id='audits'><h2>Leakage audits</h2>",
                  table(["model", "features", "fold protocol", "random split", "inflation",
                         "recordings in several folds", "run"],
                        [[a.model, a.features, f"{a.accuracy:.3f}",
                          f"{a.audit.get('random_split_accuracy', float('nan')):.3f}",
                          f"{100 * a.audit.get('inflation', float('nan')):+.1f} points",
                          str(int(a.audit.get("leaky_recordings", 0))), a.run_id[:8]]
                         for a in board.audits]), "</section>"]
    if images:
        parts.append("<section id='plots'><h2>Plots</h2>")
        for name, path in images.items():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f"<figure><img alt='{esc(name)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(name)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
