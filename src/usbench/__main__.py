"""`python -m usbench` entry point."""

from usbench.cli import entry

entry()
