"""Dataset card: ``urbansound8k``.

- Source: J. Salamon, C. Jacoby and J. P. Bello, "A Dataset and Taxonomy for Urban Sound
  Research", ACM Multimedia 2014. https://urbansounddataset.weebly.com/urbansound8k.html
- Content: 8,732 labelled slices (<= 4 s) of field recordings from freesound.org, 10 classes:
  air_conditioner, car_horn, children_playing, dog_bark, drilling, engine_idling, gun_shot,
  jackhammer, siren, street_music.
- Fold protocol: the 10 predefined folds, evaluated leave-one-fold-out; slices of one
  recording (fsID) are meant to stay in one fold. Never reshuffle: random splits inflate
  accuracy.
- Layout: ``metadata/UrbanSound8K.csv`` (slice_file_name, fsID, start, end, salience, fold,
  classID, class) and ``audio/fold<N>/<slice_file_name>``.
- Formats: 8-192 kHz, 8/16/24-bit PCM and 32-bit float, mono and stereo.
- Licence: CC BY-NC 3.0. Cite the paper above.
"""

from pathlib import Path

from usbench.datasets.base import METADATA, Dataset, open_root
from usbench.datasets.spec import DatasetSpec

# By classID.
CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
           "engine_idling", "gun_shot", "jackhammer", "siren", "street_music")

SPEC = DatasetSpec(
    name="urbansound8k",
    summary="UrbanSound8K: 8,732 urban sound slices, 10 classes, 10 official folds",
    card_module=__name__,
    opener=f"{__name__}:open_urbansound8k",
    marker=str(METADATA),
)


def open_urbansound8k(root: Path, cfg) -> Dataset:
    return open_root("urbansound8k", root, allow_missing=cfg.allow_missing)
