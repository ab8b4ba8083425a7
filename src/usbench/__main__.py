"""`python -m usbench` entry point."""

from usbench.cli import main

raise SystemExit(main())
