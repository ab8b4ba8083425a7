"""Save screenshots of the MLflow UI for the README: the runs table, one run's artifacts, and
the leaderboard HTML, taken with headless Chromium against a running ``mlflow ui``.

    python docs/screenshots.py [--store results/mlflow.db] [--leaderboard results/leaderboard.html]
                               [--out docs/img]

Writes ``runs.png``, ``run-artifacts.png`` and ``leaderboard.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shoot(browser: str, url: str, png: Path, profile: Path, size=(1600, 1000)) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--hide-scrollbars", f"--user-data-dir={profile}",
                    f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=15000",
                    f"--screenshot={png}", url], check=True, capture_output=True, timeout=180)
    print(f"{png}  <-  {url}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="results/mlflow.db", help="MLflow sqlite store")
    ap.add_argument("--leaderboard", default="results/leaderboard.html")
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("Chromium not found: install Debian's chromium package.")
    store = Path(args.store).resolve()
    if not store.is_file():
        sys.exit(f"No MLflow store at {store}: run `usbench run ...` first, or pass --store.")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{store}"
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.`usbench.kind` = 'run'", order_by=["metrics.accuracy DESC"])
    if not runs:
        sys.exit(f"No usbench runs in {store}.")
    # The best run with a saved model (its artifacts show the estimator), else the best.
    run = next((r for r in runs if r.outputs and r.outputs.model_outputs), runs[0])
    exp = run.info.experiment_id
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                           "--host", "127.0.0.1", "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with tempfile.TemporaryDirectory() as profile:
            _shoot(browser, f"{base}/#/experiments/{exp}/runs", out / "runs.png", Path(profile))
            _shoot(browser, f"{base}/#/experiments/{exp}/runs/{run.info.run_id}/artifacts",
                   out / "run-artifacts.png", Path(profile))
            board = Path(args.leaderboard).resolve()
            if board.is_file():
                _shoot(browser, board.as_uri(), out / "leaderboard.png", Path(profile),
                       size=(1400, 1400))
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
