"""Write ``docs/benchmarks.md`` from the figures the benchmark scripts saved.

Reads ``results/benchmarks/*.json`` (written by the scripts in ``benchmarks/``) and renders one
section per benchmark: what it measures, a table of the figures that matter to a user, the
command that regenerates the JSON, and the date and machine the JSON records.

    python docs/make_benchmarks.py            # rewrite docs/benchmarks.md
    python docs/make_benchmarks.py --check    # exit 1 if docs/benchmarks.md is out of date

Standard library only; the same inputs always give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "results/benchmarks"
PAGE = "docs/benchmarks.md"
WIDTH = 100
# A placeholder for the dataset root in commands (never a real path).
DATA = "DIR"
DATA_NOTE = (f"`{DATA}` is an UrbanSound8K-layout root of real audio; these figures come from "
             "UrbanSound8K's development subset (1,745 real clips of folds 1-3).")
NONE = "—"  # an empty table cell
# Paths of the machine that measured (outside the repository) never reach the page; CI checks
# the page for anything else that does not belong in the product.
FORBIDDEN = re.compile(r"/root/|/home/|~/")


# --------------------------------------------------------------------------- formatting


def secs(x: float) -> str:
    """Seconds with about three significant figures."""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def times(x: float) -> str:
    """A speed-up or ratio, e.g. ``8.9×``."""
    return f"{x:.2f}×" if x < 2 else f"{x:.1f}×"


def acc(x: float) -> str:
    return f"{x:.3f}"


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def sci(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def count(n: int) -> str:
    return f"{n:,}"


def mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def para(text: str) -> str:
    """Wrap prose at WIDTH columns without breaking inside an inline code span."""
    protected = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\0"), text)
    lines = textwrap.wrap(protected, WIDTH, break_long_words=False, break_on_hyphens=False)
    return "\n".join(line.replace("\0", " ") for line in lines)


def bullets(items: Iterable[str]) -> str:
    out = []
    for item in items:
        lines = textwrap.wrap(re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\0"), item),
                              WIDTH, initial_indent="- ", subsequent_indent="  ",
                              break_long_words=False, break_on_hyphens=False)
        out.extend(line.replace("\0", " ") for line in lines)
    return "\n".join(out)


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` holds one of ``l``/``r`` per column (default: first left,
    the rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def command(*parts: str) -> str:
    """A fenced shell command, continued with backslashes past WIDTH columns (an option and
    its value stay on one line)."""
    words: list[str] = []
    for word in " ".join(parts).split(" "):
        if words and words[-1].startswith("--") and " " not in words[-1] \
                and not word.startswith("-"):
            words[-1] += " " + word
        else:
            words.append(word)
    lines, line = [], words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) > WIDTH - 2:
            lines.append(line + " \\")
            line = "    " + word
        else:
            line += " " + word
    lines.append(line)
    return "```bash\n" + "\n".join(lines) + "\n```"


def seeds_arg(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


# --------------------------------------------------------------------------- provenance


def load(name: str) -> dict | None:
    path = ROOT / RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recorded_date(name: str, data: dict) -> str:
    for key in ("date", "created"):
        if isinstance(data.get(key), str):
            return data[key][:10]
    return "not recorded"


def machine(data: dict) -> str:
    """'2 CPUs, `platform`, Python 3.12.1' from whichever fields the JSON has."""
    m = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    cpus = m.get("cpu_count", data.get("cpus", data.get("cpu_count")))
    platform = m.get("platform", data.get("platform"))
    parts = []
    if cpus:
        parts.append(f"{cpus} CPUs")
    if platform:
        parts.append(f"`{platform}`")
    if m.get("python"):
        parts.append(f"Python {m['python']}")
    return ", ".join(parts) or "machine not recorded"


def versions(data: dict) -> str:
    v = data.get("versions") or {}
    return ", ".join(f"{k} {val}" for k, val in v.items())


def provenance(*files: tuple[str, dict]) -> list[str]:
    """'Measured DATE on a machine with ...' paragraphs, one per distinct date and machine."""
    groups: dict[str, list[str]] = {}
    for name, data in files:
        text = f"Measured {recorded_date(name, data)} on a machine with {machine(data)}"
        if versions(data):
            text += f"; versions: {versions(data)}"
        groups.setdefault(text, []).append(f"`{RESULTS}/{name}`")
    return [para(f"{text}. Saved in {' and '.join(names)}.") for text, names in groups.items()]


# --------------------------------------------------------------------------- sections


def features() -> list[str] | None:
    name = "features.json"
    d = load(name)
    if d is None:
        return None
    cfg = d.get("config", {})
    rows = [[r["label"], count(r["n_files"]), secs(r["serial_s"]), secs(r["usbench_s"]),
             times(r["speed_up"]), f"{r['serial_files_per_s']:,.0f}",
             f"{r['usbench_files_per_s']:,.0f}"] for r in d["results"]]
    out = [
        "## Feature extraction: the serial librosa loop against usbench",
        para("Wall time to compute `mfcc-stats` (20 MFCCs and 7 statistics of each) for "
             f"{count(cfg.get('n', 0))} generated {cfg.get('duration_s', 4):g} s clips per audio "
             "format: the tutorials' serial loop (`librosa.load` and `librosa.feature.mfcc` in "
             "one process, after an untimed warm-up file) against `usbench`'s feature build "
             "from an empty cache (worker start-up and cache writes included). Both read the "
             "files from the OS page cache."),
        table(["Audio format", "Clips", "Serial loop (s)", "usbench (s)", "Speed-up",
               "Serial clips/s", "usbench clips/s"], rows),
    ]
    prof = d.get("profile") or {}
    if prof:
        labels = {"decoding": "Decoding", "mixdown": "Mixdown", "resampling": "Resampling",
                  "stft_mel": "STFT + mel", "db_dct_mfcc": "dB + DCT", "statistics": "Statistics",
                  "other": "Other"}
        label_of = {r["format"]: r["label"] for r in d["results"]}
        keys = list(next(iter(prof.values()))["buckets_ms_per_clip"])
        rows = [[label_of.get(fmt, fmt)]
                + [f"{p['buckets_ms_per_clip'][k]:.2f}" for k in keys]
                + [f"{1000 * p['total_s'] / p['n_clips']:.2f}"] for fmt, p in prof.items()]
        n = next(iter(prof.values()))["n_clips"]
        out += [
            para(f"Where usbench's time goes, in milliseconds per clip (a profile of {n} clips "
                 "per format in one process, one BLAS thread):"),
            table(["Audio format", *(labels.get(k, k) for k in keys), "Total"], rows),
        ]
    jobs = f" --jobs {cfg['jobs']}" if "jobs" in cfg else ""
    out += [
        para("Regenerate (generates the audio into a temporary folder; `--jobs 0` uses the "
             "default build's threads instead of worker processes):"),
        command(f"python benchmarks/bench_features.py --n {cfg.get('n', 1000)}{jobs}"),
        *provenance((name, d)),
    ]
    return out


def features_real() -> list[str] | None:
    name = "features_real.json"
    d = load(name)
    if d is None:
        return None
    results = d["results"]
    everything = max(r["n_clips"] for r in results if r["distinct_clips"] == r["n_clips"])
    sizes: list[str] = []
    for r in results:
        size = "all" if r["n_clips"] == everything else str(r["n_clips"])
        if size not in sizes:
            sizes.append(size)
    feats = list(dict.fromkeys(r["feature"] for r in results))
    repeat = len(results[0].get("serial_runs_s", [])) or 3
    rows = []
    for r in sorted(results, key=lambda r: r["n_clips"]):
        clips = count(r["n_clips"])
        if r["distinct_clips"] != r["n_clips"]:
            clips += f" ({count(r['distinct_clips'])} distinct)"
        pairs = r.get("pair_speed_ups") or [r["speed_up"]]
        rows.append([f"`{r['feature']}`", clips, secs(r["serial_s"]), secs(r["usbench_s"]),
                     times(r["speed_up"]), f"{min(pairs):.1f}-{max(pairs):.1f}×",
                     sci(r["max_rel_diff"])])
    return [
        "## Feature extraction on real audio",
        para("The same comparison on real UrbanSound8K clips, whole process against whole "
             "process: a fresh Python process running the tutorials' loop against a fresh "
             "`usbench features build` with an empty feature cache, each timed from start to "
             "exit (interpreter start-up and imports included). Serial and usbench runs "
             f"alternate, {repeat} pairs per row; the table gives the median of each, the ratio "
             "of the medians, the range of the pairs' ratios, and the largest relative "
             "difference between the two feature matrices. A row with more clips than the "
             "folder holds repeats clips under new names."),
        table(["Features", "Clips", "Serial (s)", "usbench (s)", "Speed-up",
               "Pair speed-ups", "Max rel. difference"], rows),
        para("Regenerate:"),
        command(f"python benchmarks/bench_features.py --data {DATA} --sizes {','.join(sizes)}",
                f"--features {','.join(feats)} --repeat {repeat}"),
        para(DATA_NOTE),
        *provenance((name, d)),
    ]


def encoders() -> list[str] | None:
    name = "encoders.json"
    d = load(name)
    if d is None:
        return None
    loop = d["loop"]
    rows = [[f"Plain loop, {k} interpreter thread{'s' if k != '1' else ''}", secs(v["seconds"]),
             f"{v['ms_per_window']:.1f}", times(d["speedup_over_loop"][k]),
             sci(v["max_abs_difference"])] for k, v in loop.items()]
    rows.append(["usbench feature build", secs(d["usbench_seconds"]),
                 f"{d['usbench_ms_per_window']:.1f}", NONE, NONE])
    peak = d["matmul_peak"]
    best = max(peak["numpy_gflops"], peak["tensorflow_gflops"])
    # --n takes the first n/10 present clips of each class (rounded up).
    n_arg = -(-d["clips"] // 10) * 10
    return [
        f"## Pretrained encoder extraction (`{d['encoder']}`)",
        para(f"Embedding {count(d['clips'])} real clips ({count(d['windows'])} windows of 3 s) "
             f"with the `{d['encoder']}` encoder: a plain loop that feeds one window at a time "
             "to one TFLite interpreter (what BirdNET's own analyzer does) against usbench's "
             "feature build from an empty cache, which includes opening the model, decoding, "
             "resampling and writing the cache. \"usbench faster by\" is the loop's time over "
             "usbench's; the last column is the largest difference between the two sets of "
             "embeddings."),
        table(["Method", "Wall time (s)", "ms per window", "usbench faster by",
               "Max abs. difference"], rows),
        para(f"The model costs {d['macs_per_window'] / 1e6:.1f} M multiply-adds a window. At "
             f"the machine's measured float32 matrix-product peak ({best:.0f} GFLOP/s) the "
             f"windows would take {secs(d['seconds_at_peak'])} s, so the build runs at "
             f"{pct(d['fraction_of_peak'])} of the arithmetic peak."),
        para("Regenerate (without `--data` it uses the embedded synthetic dataset):"),
        command(f"python benchmarks/bench_encoders.py --data {DATA} --n {n_arg}"),
        para(f"`{DATA}` is an UrbanSound8K-layout root of real audio; `--n` asks for that many "
             "clips, the same number of each class as far as the folder holds them."),
        *provenance((name, d)),
    ]


def models() -> list[str] | None:
    name = "models.json"
    d = load(name)
    if d is None:
        return None
    rows = []
    for model, m in d["models"].items():
        if "wall_seconds" not in m:
            continue
        per_epoch = secs(m["seconds_per_epoch"]) if "seconds_per_epoch" in m else NONE
        rows.append([f"`{model}`", secs(m["wall_seconds"]), secs(mean(m["fit_seconds"])),
                     str(m.get("fold_jobs", 1)), per_epoch,
                     f"{acc(m['accuracy'])} ± {acc(m['accuracy_std'])}"])
    out = [
        "## Model families at UrbanSound8K size",
        para(f"10-fold leave-one-fold-out wall time of each model family with its default "
             f"parameters, on `{d['features']}` features of {count(d['clips'])} generated clips "
             "(about UrbanSound8K's size), as `usbench run` trains them but without MLflow. "
             "\"Folds at once\" is the number of worker processes training folds side by side. "
             "The accuracies are on generated noise-and-tone clips and say nothing about real "
             "sound; see the real-audio recipes below."),
        table(["Model", "10 folds (s)", "Fit per fold (s)", "Folds at once", "s per epoch",
               "Accuracy"], rows),
    ]
    cnn = d["models"].get("cnn")
    if cnn:
        peak = cnn["matmul_peak"]
        out += [
            para(f"The CNN (on `logmel`) is timed for {cnn['epochs']} epochs of one fold's "
                 f"training ({count(cnn['train_rows'])} rows) and set against the multiply-adds "
                 "of an epoch at the machine's measured float32 matrix-product peak:"),
            table(["Training rows", "s per epoch", "s per epoch at peak", "Fraction of peak",
                   "Peak, numpy (GFLOP/s)", "Peak, TensorFlow (GFLOP/s)"],
                  [[count(cnn["train_rows"]), secs(cnn["seconds_per_epoch"]),
                    secs(cnn["seconds_per_epoch_at_peak"]), pct(cnn["fraction_of_peak"]),
                    f"{peak['numpy_gflops']:.0f}", f"{peak['tensorflow_gflops']:.0f}"]]),
        ]
    out += [
        para("Regenerate (the synthetic set is generated once into the usbench cache):"),
        command(f"python benchmarks/bench_models.py --models {','.join(d['models'])}"),
        *provenance((name, d)),
    ]
    return out


MLP_VARIANTS = ["models_mlp_b32.json", "models_mlp_b128.json", "models_mlp_fold_jobs2.json",
                "models_mlp_one_process.json", "models_mlp_default.json"]


def mlp_variants() -> list[str] | None:
    found = [(n, d) for n in MLP_VARIANTS if (d := load(n)) is not None]
    if not found:
        return None
    default = {}
    if (d := load("models.json")) is not None:
        default = d["models"].get("mlp", {}).get("params", {})
    machines: dict[str, str] = {}
    rows, commands = [], []
    for n, d in found:
        m = d["models"]["mlp"]
        p = m["params"]
        label = machines.setdefault(machine(d), "ABCDEFGH"[len(machines)])
        jobs = m.get("fold_jobs", 1)
        rows.append([f"`{n}`", str(p["batch_size"]), f"{p['learning_rate']:g}", str(jobs),
                     secs(m["wall_seconds"]), secs(m["seconds_per_epoch"]),
                     f"{acc(m['accuracy'])} ± {acc(m['accuracy_std'])}",
                     f"{recorded_date(n, d)[:10]}, machine {label}"])
        sets = [f"--set mlp.{k}={p[k]:g}" for k in ("batch_size", "learning_rate")
                if default and k in p and p[k] != default.get(k)]
        jobs_arg = "" if n == "models_mlp_default.json" else f" --fold-jobs {jobs}"
        commands.append(" ".join(["python benchmarks/bench_models.py --models mlp", *sets])
                        + jobs_arg + f" --out {RESULTS}/{n}")
    legend = [f"Machine {label}: {desc}." for desc, label in machines.items()]
    vers = sorted({versions(d) for _, d in found})
    legend += [f"Versions: {v}." for v in vers if v]
    if not any(isinstance(d.get(k), str) for _, d in found for k in ("date", "created")):
        legend.append("These files record no date: each date is that of the file's last "
                      "commit.")
    return [
        "## The MLP's batch size and parallel folds",
        para("The MLP's 10-fold wall time on the same UrbanSound8K-size set as above, with "
             "the tutorials' batch of 32 rows against usbench's 128, and with its folds trained "
             "one after another (1 at once) or by 2 worker processes side by side. Seconds per "
             "epoch are per fold's network. Compare times only between rows measured on the "
             "same machine."),
        table(["File", "Batch", "Learning rate", "Folds at once", "10 folds (s)",
               "s per epoch", "Accuracy", "Measured"], rows, "lrrrrrrl"),
        bullets(legend),
        para("Regenerate each file:"),
        *(command(c) for c in commands),
    ]


def parallel_folds() -> list[str] | None:
    names = ["parallel_folds.json", "parallel_folds_e70.json"]
    found = [(n, d) for n in names if (d := load(n)) is not None]
    if not found:
        return None
    rows, commands = [], []
    for n, d in found:
        folds = d["folds"]
        rows.append([f"`{n}`", f"`{d['model']}`", str(d["params"].get("epochs", "")),
                     str(d["jobs"]), secs(d["wall_seconds"]),
                     secs(mean(f["fit_seconds"] for f in folds)),
                     acc(mean(f["accuracy"] for f in folds)),
                     "yes" if d.get("fold1_bit_identical") else "no"])
        epochs = d["params"].get("epochs")
        sets = "" if epochs in (None, 100) else f" --set {d['model']}.epochs={epochs}"
        out = "" if n == "parallel_folds.json" else f" --out {RESULTS}/{n}"
        commands.append(f"python benchmarks/bench_parallel_folds.py --jobs {d['jobs']}"
                        f"{sets}{out}")
    return [
        "## Folds in parallel worker processes",
        para("What `usbench run --fold-jobs N` does: the 10 folds of the UrbanSound8K-size "
             "synthetic set trained by N worker processes side by side. After the run, the "
             "first fold is trained once more in the main process and its class probabilities "
             "are compared with the worker's bit for bit."),
        table(["File", "Model", "Epochs", "Workers", "10 folds (s)", "Fit per fold (s)",
               "Mean accuracy", "Fold 1 bit-identical"], rows, "llrrrrrl"),
        para("Regenerate:"),
        *(command(c) for c in commands),
        *provenance(*found),
    ]


def fold_stacking() -> list[str] | None:
    name = "fold_stacking.json"
    d = load(name)
    if d is None:
        return None
    cfg = d["config"]
    k = cfg["folds"]
    single = d["projected_single_100_epochs_all_folds_s"]
    stacked = d["projected_stacked_100_epochs_s"]
    rows = [
        ["One fold's network", secs(d["single_epoch_s"]), secs(single)],
        [f"{k} networks stacked in one graph", secs(d["stacked_epoch_s"]), secs(stacked)],
    ]
    return [
        "## Training every fold's MLP in one graph",
        para(f"A measurement for a design choice, not a usbench code path: the {k} folds' MLP "
             "networks stacked in one TensorFlow graph (each step trains all of them) against "
             f"one fold's network, on {count(cfg['rows'])} random rows of the default MLP's "
             f"shapes in batches of {cfg['batch']}. The projection is {k} folds of 100 epochs: "
             f"stacking would be {times(single / stacked)} faster."),
        table(["Training", "s per epoch", f"{k} folds × 100 epochs (s)"], rows),
        para("Regenerate:"),
        command(f"python benchmarks/bench_fold_stacking.py --folds {k} --rows {cfg['rows']}",
                f"--batch {cfg['batch']} --epochs {cfg['epochs']}"),
        *provenance((name, d)),
    ]


def keras() -> list[str] | None:
    name = "keras.json"
    d = load(name)
    if d is None:
        return None

    def settings(cmd: str, common: str = "") -> str:
        cmd = cmd.removeprefix("usbench run ")
        cmd = re.sub(r" --data \S+ --allow-missing( --seed \S+)?$", "", cmd)
        cmd = cmd.removeprefix(common).strip()
        return f"`{cmd}`" if cmd else "(defaults)"

    runs = d.get("runs", {})
    rows = []
    for run, r in runs.items():
        folds = len(r.get("fold_accuracy", []))
        per_epoch = secs(r["seconds_per_epoch"]) if "seconds_per_epoch" in r else NONE
        rows.append([f"`{run}`", settings(r["command"]),
                     f"{acc(r['accuracy'])} ± {acc(r['accuracy_std'])}", acc(r["macro_f1"]),
                     secs(r["wall_seconds"]), per_epoch])
    folds = {len(r.get("fold_accuracy", [])) for r in runs.values()}
    nfolds = folds.pop() if len(folds) == 1 else None
    out = [
        "## Default recipes on real audio",
        para("Accuracy and time of each recipe run as a user runs it (`usbench run ... --data "
             f"{DATA} --allow-missing`), on real UrbanSound8K clips"
             + (f", {nfolds}-fold leave-one-fold-out" if nfolds else "")
             + ". Accuracy is the mean ± standard deviation over the tested folds; the wall time "
             "is the whole command's. The `cnn-no-*` rows switch one training-only part of the "
             "CNN off, to show what it buys."),
        table(["Run", "Settings", "Accuracy", "Macro-F1", "Wall time (s)", "s per epoch"], rows,
              "llrrrr"),
    ]
    seed_runs = d.get("seed_runs", {})
    if seed_runs:
        rows = []
        groups: dict[str, list[str]] = {}
        found = {m.group(1) if m else "" for m in
                 (re.match(r"usbench run (--model \S+ --features \S+)", r["command"])
                  for r in seed_runs.values())}
        base = found.pop() if len(found) == 1 else ""
        for run, r in seed_runs.items():
            rows.append([f"`{run}`", settings(r["command"], base), str(len(r["seeds"])),
                         f"{acc(r['mean_accuracy'])} ± {acc(r['std_accuracy'])}",
                         acc(r["mean_macro_f1"]), secs(r["median_wall_seconds"])])
            groups.setdefault(seeds_arg(r["seeds"]), []).append(run)
        same = [(a, b) for i, a in enumerate(seed_runs) for b in list(seed_runs)[i + 1:]
                if seed_runs[a]["accuracy"] == seed_runs[b]["accuracy"]]
        out += [
            para(f"One {f'{nfolds}-fold ' if nfolds else ''}run moves by about 0.01 accuracy "
                 "from seed to seed, as much as most recipe changes, so the MLP's recipes are "
                 "compared over seeds (`--seed S`): mean ± standard deviation of accuracy over "
                 "the seeds, mean macro-F1 and median wall time."
                 + (f" Every recipe runs `{base}`; the settings column shows what it adds."
                    if base else "")
                 + "".join(f" `{a}` and `{b}` give identical figures: they are the same recipe."
                           for a, b in same)),
            table(["Recipe", "Settings", "Seeds", "Accuracy", "Macro-F1", "Wall time (s)"],
                  rows, "llrrrr"),
        ]
    out += [para("Regenerate:"),
            command(f"python benchmarks/bench_keras.py --data {DATA} --only {','.join(runs)}")]
    if seed_runs:
        out += [command(f"python benchmarks/bench_keras.py --data {DATA} --only "
                        f"{','.join(names)} --seeds {seeds}")
                for seeds, names in groups.items()]
    out += [para(DATA_NOTE), *provenance((name, d))]
    return out


def sweep() -> list[str] | None:
    name = "sweep.json"
    d = load(name)
    if d is None:
        return None
    rows = []
    for key, r in d["runs"].items():
        workers = key.removeprefix("workers=")
        rows.append([workers, str(r["complete"]), str(r["pruned"]), str(r["failed"]),
                     secs(r["wall_seconds"]), f"{r['trials_per_minute']:.2f}",
                     acc(r["best_accuracy"])])
    workers = ",".join(k.removeprefix("workers=") for k in d["runs"])
    timeout = d.get("timeout")
    limit = (f" and stops starting trials after {timeout:g} s" if timeout else "")
    return [
        "## Hyper-parameter sweep",
        para(f"A pruned `{d['model']}` sweep (Optuna, median pruner, MLflow logging included) "
             "on the UrbanSound8K-size synthetic set, with 1 worker against 2. Each setting "
             f"asks for {d['trials']} trials{limit}; the table gives the trials finished, "
             "pruned and failed, the wall time, trials per minute and the best trial's "
             "accuracy."),
        table(["Workers", "Complete", "Pruned", "Failed", "Wall time (s)", "Trials per minute",
               "Best accuracy"], rows),
        para("Regenerate:"),
        command(f"python -m benchmarks.bench_sweep --model {d['model']} --trials {d['trials']}",
                f"--workers {workers}" + (f" --timeout {timeout:g}" if timeout else "")),
        *provenance((name, d)),
    ]


SECTIONS: list[Callable[[], list[str] | None]] = [
    features, features_real, encoders, models, mlp_variants, parallel_folds, fold_stacking,
    keras, sweep,
]


def render() -> str:
    blocks = [
        "# Benchmarks",
        para("The figures below were measured on the machine named in each section, by the "
             "scripts in `benchmarks/`, which save them in `results/benchmarks/*.json`. "
             "`python docs/make_benchmarks.py` regenerates this page from those files (do not "
             "edit it by hand)."),
    ]
    for section in SECTIONS:
        blocks.extend(section() or [])
    text = "\n\n".join(blocks) + "\n"
    bad = FORBIDDEN.search(text)
    if bad:
        sys.exit(f"make_benchmarks: refusing to write {bad.group(0)!r} into {PAGE}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 if {PAGE} differs from what would be written")
    args = parser.parse_args()
    text = render()
    page = ROOT / PAGE
    if args.check:
        current = page.read_text(encoding="utf-8") if page.is_file() else None
        if current != text:
            print(f"{PAGE} is out of date with {RESULTS}/*.json: run "
                  "`python docs/make_benchmarks.py`")
            sys.exit(1)
        return
    page.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
