"""Scale-out: several `usbench sweep` processes sharing one PostgreSQL-backed Optuna study.

The suite starts its own PostgreSQL server (Debian's `postgresql` package, installed by
.ci/run) on a free loopback port; it skips only where the server binaries are absent, and
fails there under CI.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import optuna
import pytest

from tests.conftest import missing_tool
from tests.test_sweep import three_folds  # noqa: F401  (fixture)


def _pg_bin(name):
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if isinstance(found, list) and found else found or None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PASSWORD = "Pg-Test-Pw-9"


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        missing_tool("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's "
                    "postgresql package")
    as_user = []
    home = tempfile.mkdtemp(prefix="usbench-pg-", dir="/tmp")
    pwfile = os.path.join(home, "pw")
    with open(pwfile, "w") as fh:
        fh.write(PASSWORD + "\n")
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        for path in (home, pwfile):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(home, "data"), _free_port()
    run = dict(check=True, capture_output=True, text=True)
    # Password authentication, as on a shared server.
    subprocess.run([*as_user, initdb, "-D", data, "-U", "usbench", "--auth=scram-sha-256",
                    f"--pwfile={pwfile}"], **run)
    subprocess.run([*as_user, pg_ctl, "-D", data, "-l", os.path.join(home, "log"), "-w",
                    "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"], **run)
    try:
        subprocess.run([*as_user, _pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "usbench", "optuna"], **run,
                       env={**os.environ, "PGPASSWORD": PASSWORD})
        yield f"postgresql+psycopg2://usbench:{PASSWORD}@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_hosts_share_one_postgresql_study(postgres_url, three_folds, tmp_path):  # noqa: F811
    cmd = [sys.executable, "-m", "usbench", "sweep", "--model", "logreg", "--features",
           "mfcc-mean", "--data", str(three_folds), "--allow-missing", "--trials", "8",
           "--storage", postgres_url, "--study", "shared", "--jobs", "1"]
    env = {**os.environ, "USBENCH_CACHE": str(tmp_path / "cache")}
    subprocess.run(cmd[:-6] + ["--trials", "1", "--storage", postgres_url, "--study", "warm",
                               "--jobs", "1"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)  # fills the feature cache once
    hosts = []
    for i in range(2):
        cwd = tmp_path / f"host{i}"
        cwd.mkdir()
        hosts.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [h.communicate(timeout=300)[0] for h in hosts]
    assert [h.returncode for h in hosts] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 8 <= len(finished) <= 9  # each host stops once the study holds 8 finished trials
    assert len({t.number for t in study.trials}) == len(study.trials)
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2, "both hosts should have contributed trials"
    # The password of --storage is masked in what the hosts printed and wrote.
    assert all("usbench:***@127.0.0.1" in out and PASSWORD not in out for out in outputs)
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaks == []


@pytest.mark.slow
def test_a_url_without_password_takes_it_from_pgpassword(postgres_url, monkeypatch):
    from usbench.errors import ConfigError
    from usbench.study import open_storage

    bare = postgres_url.replace(f":{PASSWORD}@", "@")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    with pytest.raises(ConfigError, match="no password supplied"):
        open_storage(bare)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert open_storage(bare).get_all_studies() is not None


@pytest.mark.slow
def test_workers_on_postgresql_run_exactly_the_requested_trials(postgres_url, three_folds,  # noqa: F811
                                                                tmp_path, monkeypatch):
    from usbench.config import DataConfig, SweepConfig
    from usbench.sweep import sweep

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USBENCH_CACHE", str(tmp_path / "cache"))
    cfg = SweepConfig(data=DataConfig(root=str(three_folds), allow_missing=True),
                      model="logreg", features="mfcc-mean", trials=5, workers=2, jobs=1,
                      storage=postgres_url, study="workers")
    sweep(cfg, progress=False)
    study = optuna.load_study(study_name="workers", storage=postgres_url)
    assert len(study.trials) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
