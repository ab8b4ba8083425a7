"""The device a run trains on: the first GPU TensorFlow sees for the Keras families, else the CPU.

``training_device(spec)`` answers once per process and model family; only a family that
trains on a GPU (``ModelSpec.gpu``), with a TensorFlow that can use one, imports TensorFlow
to ask. The label is printed in the
run's header line and recorded as the run's tag ``usbench.device``.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from functools import cache

log = logging.getLogger("usbench")


@dataclass(frozen=True)
class Device:
    """Where training runs.

    Attributes:
        kind: ``GPU`` or ``CPU``.
        label: for people and the run's tag, e.g. ``GPU: NVIDIA H100 80GB HBM3`` or
            ``CPU (2 cores)``.
    """

    kind: str
    label: str

    @property
    def gpu(self) -> bool:
        return self.kind == "GPU"


def cpu() -> Device:
    """The CPU, with the cores this process may use (affinity and container quotas)."""
    from joblib import cpu_count

    cores = cpu_count()
    return Device("CPU", f"CPU ({cores} core{'s' if cores != 1 else ''})")


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow sees, in its order (imports TensorFlow)."""
    from usbench.models.keras_training import import_keras

    _, tf = import_keras()
    return [tf.config.experimental.get_device_details(d).get("device_name", d.name)
            for d in tf.config.list_physical_devices("GPU")]


def cuda_packages_installed() -> bool:
    """Whether NVIDIA's CUDA libraries are installed as Python packages (``usbench[gpu]``)."""
    try:
        return importlib.util.find_spec("nvidia.cudnn") is not None
    except ImportError:  # no ``nvidia`` namespace at all
        return False


def tensorflow_installed() -> bool:
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except ImportError:
        return False


def check_tensorflow(model: str) -> None:
    """Refuse a Keras family when TensorFlow is not installed (an install without extras)."""
    if not tensorflow_installed():
        from usbench.errors import ConfigError

        raise ConfigError(
            f"Model '{model}' needs TensorFlow, which is not installed. Install it: pip "
            "install 'usbench[cpu]', or 'usbench[gpu]' on a Linux machine with an NVIDIA GPU."
        )


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


def both_tensorflows() -> bool:
    """Whether the distributions tensorflow and tensorflow-cpu are both installed: they
    write the same files, so whichever was installed last half-replaced the other."""
    return _installed("tensorflow") and _installed("tensorflow-cpu")


def cpu_only_build() -> bool:
    """Whether the TensorFlow installed is tensorflow-cpu alone (``usbench[cpu]``), which
    sees no GPU: then nobody needs to import it to know."""
    return _installed("tensorflow-cpu") and not _installed("tensorflow")


def training_device(spec) -> Device:
    """The device `spec`'s family trains on here: the first GPU TensorFlow sees (Keras uses
    one GPU), else the CPU. With the GPU packages installed but no GPU visible, says once that
    training falls back to the CPU."""
    return _device(bool(spec.gpu))


@cache
def _device(uses_gpu: bool) -> Device:
    if not uses_gpu or cpu_only_build():
        return cpu()
    if both_tensorflows():
        log.warning("tensorflow and tensorflow-cpu are both installed and overwrite each "
                    "other's files: pip uninstall -y tensorflow tensorflow-cpu, then install "
                    "usbench[gpu] or usbench[cpu] again")
    names = gpu_names()
    if names:
        more = f" (first of {len(names)})" if len(names) > 1 else ""
        return Device("GPU", f"GPU: {names[0]}{more}")
    if cuda_packages_installed():
        log.info("no GPU found: training on the CPU (TF_CPP_MIN_LOG_LEVEL=0 shows "
                 "TensorFlow's reason)")
    return cpu()
