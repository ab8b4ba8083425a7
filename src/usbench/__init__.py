"""usbench: honest leave-one-fold-out benchmarks for environmental sound classification."""

__version__ = "0.1.0"
