"""Dataset card: ``esc10``.

- Source: K. J. Piczak, "ESC: Dataset for Environmental Sound Classification", ACM
  Multimedia 2015. https://github.com/karolpiczak/ESC-50
- Content: the ESC-10 subset of ESC-50 (rows with ``esc10 == True`` in ``meta/esc50.csv``):
  400 clips of 5 s, 10 classes of 40 clips.
- Classes: renumbered 0-9 in the order of their ESC-50 target: dog (0), rooster (1),
  rain (10), sea_waves (11), crackling_fire (12), crying_baby (20), sneezing (21),
  clock_tick (38), helicopter (40), chainsaw (41).
- Fold protocol: ESC-50's 5 predefined folds, leave-one-fold-out; ``src_file`` is the
  recording id.
- Layout: an ESC-50 root (``meta/esc50.csv`` + ``audio/``); pass ``--dataset esc10`` (an
  ESC-50 root is detected as ``esc50``).
- Licence: CC BY. Cite the paper above.
"""

from usbench.datasets.spec import DatasetSpec

SPEC = DatasetSpec(
    name="esc10",
    summary="ESC-10: the 400-clip, 10-class subset of ESC-50, its 5 official folds",
    card_module=__name__,
    opener="usbench.datasets.esc50:open_esc10",
)
