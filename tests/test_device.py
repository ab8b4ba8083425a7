"""The training device: what a run says and records, the GPU seen through TensorFlow (faked
here: no GPU on the test machines), fold workers on a GPU, and a missing TensorFlow."""

import importlib.util
import logging

import pytest

from usbench import device
from usbench.errors import ConfigError
from usbench.models import get_model

H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture(autouse=True)
def fresh_answer():
    device._device.cache_clear()
    yield
    device._device.cache_clear()


@pytest.fixture
def gpu_build(monkeypatch):
    """TensorFlow as ``usbench[gpu]`` installs it (this venv has tensorflow-cpu)."""
    monkeypatch.setattr(device, "cpu_only_build", lambda: False)


def fake_gpus(monkeypatch, names):
    """TensorFlow's device list as a machine with these GPUs would give it."""
    _, tf = device_tf()
    gpus = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU")
            for i in range(len(names))]
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else real(kind))
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda d: {"device_name": names[int(d.name.rsplit(":", 1)[1])],
                                   "compute_capability": (9, 0)})


def device_tf():
    from usbench.models.keras_training import import_keras

    return import_keras()


def test_scikit_learn_families_train_on_the_cpu_without_asking_tensorflow(monkeypatch):
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda: 2)
    monkeypatch.setattr(device, "gpu_names", lambda: pytest.fail("asked TensorFlow"))
    found = device.training_device(get_model("logreg"))
    assert (found.kind, found.label, found.gpu) == ("CPU", "CPU (2 cores)", False)


def test_tensorflow_cpu_is_not_asked_for_a_gpu(monkeypatch):
    import importlib.metadata as md

    versions = {"tensorflow-cpu": "2.21.0"}

    def version(name):
        if name not in versions:
            raise md.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(md, "version", version)
    monkeypatch.setattr(device, "gpu_names", lambda: pytest.fail("imported TensorFlow"))
    assert device.cpu_only_build() and not device.training_device(get_model("cnn")).gpu
    versions["tensorflow"] = "2.21.0"
    assert not device.cpu_only_build() and device.both_tensorflows()


@pytest.mark.usefixtures("gpu_build")
def test_the_first_gpu_tensorflow_sees_is_the_device(monkeypatch):
    fake_gpus(monkeypatch, [H100])
    assert device.gpu_names() == [H100]
    found = device.training_device(get_model("cnn"))
    assert found.gpu and found.label == f"GPU: {H100}"
    device._device.cache_clear()
    fake_gpus(monkeypatch, [H100, H100])
    assert device.training_device(get_model("mlp")).label == f"GPU: {H100} (first of 2)"


@pytest.mark.usefixtures("gpu_build")
def test_gpu_packages_without_a_gpu_train_on_the_cpu_and_say_so(monkeypatch, caplog):
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda: 1)
    monkeypatch.setattr(device, "gpu_names", lambda: [])
    monkeypatch.setattr(device, "both_tensorflows", lambda: False)
    caplog.set_level(logging.INFO, logger="usbench")
    monkeypatch.setattr(device, "cuda_packages_installed", lambda: True)
    assert device.training_device(get_model("cnn")).label == "CPU (1 core)"
    device.training_device(get_model("mlp"))  # answered once per process
    assert [r.getMessage() for r in caplog.records] == [
        "no GPU found: training on the CPU (TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's reason)"]
    caplog.clear()
    device._device.cache_clear()
    monkeypatch.setattr(device, "cuda_packages_installed", lambda: False)
    assert not device.training_device(get_model("cnn")).gpu and not caplog.records


def test_both_tensorflow_distributions_are_named_with_the_fix(monkeypatch, caplog):
    import importlib.metadata as md

    monkeypatch.setattr(md, "version", lambda name: "2.21.0")
    assert device.both_tensorflows() and not device.cpu_only_build()
    monkeypatch.setattr(device, "gpu_names", lambda: [])
    caplog.set_level(logging.WARNING, logger="usbench")
    device.training_device(get_model("mlp"))
    assert "pip uninstall -y tensorflow tensorflow-cpu" in caplog.records[0].getMessage()


def test_this_install_has_one_tensorflow():
    assert not device.both_tensorflows()


def test_folds_run_one_at_a_time_on_a_gpu(monkeypatch):
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda: 4)
    mlp = get_model("mlp")
    assert mlp.gpu and get_model("cnn").gpu and not get_model("rf").gpu
    assert mlp.fold_jobs(None, 10) == 4 and mlp.fold_jobs(None, 10, on_gpu=True) == 1
    assert mlp.fold_jobs(2, 10, on_gpu=True) == 2  # asked for: what is asked runs


def test_a_keras_family_without_tensorflow_is_refused_before_any_work(monkeypatch):
    from usbench.runner import check_model

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"Model 'cnn' needs TensorFlow, which is not "
                                          r"installed. Install it: pip install 'usbench\[cpu\]'"):
        check_model("cnn", "logmel")
    check_model("logreg", "mfcc-stats")  # scikit-learn families need no TensorFlow


@pytest.mark.slow
def test_the_gpu_check_runs_here_at_tiny_size(tmp_path):
    """benchmarks/bench_gpu.py --quick on whatever device this machine has: its figures."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_gpu.py"), "--quick",
                           "--epochs", "1", "--out", str(out)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["device"] == device.training_device(get_model("cnn")).label
    assert figures["clips"] == 120 and figures["train_rows"] == 108
    assert {"epoch_seconds", "fixed_seconds_per_fit", "full_run_seconds_extrapolated"} <= set(
        figures)
    assert figures["peak_rss_mb"] >= figures["rss_before_fit_mb"] > 0
    assert "EXTRAPOLATED" in done.stdout
    assert figures["dtype_policy"] == "float32" and figures["xla_jit"] is False  # usbench's
