"""A HEAR-API module made for the tests (TensorFlow tensors in and out).

Its 'weights file' holds one number, the gain applied before the statistics. A clip shorter
than MIN_SAMPLES cannot be embedded (get_scene_embeddings raises), as a real module may refuse
an input it cannot take.
"""

import tensorflow as tf

__version__ = "0.1"
PRETRAINING = "nothing (a test module)"
LICENCE = "MIT"
MIN_SAMPLES = 100  # 0.025 s


class Model(tf.Module):
    sample_rate = 4000
    scene_embedding_size = 3

    def __init__(self, gain: float):
        super().__init__()
        self.gain = gain


def load_model(model_file_path: str = "") -> Model:
    gain = float(open(model_file_path).read()) if model_file_path else 1.0
    return Model(gain)


def get_scene_embeddings(audio, model: Model):
    if not isinstance(audio, tf.Tensor) or audio.shape.rank != 2:
        raise TypeError(f"audio must be a 2-d tf.Tensor, got {type(audio).__name__}")
    if audio.shape[1] < MIN_SAMPLES:
        raise ValueError(f"clips of {audio.shape[1]} samples are shorter than 0.025 s")
    x = audio * model.gain
    return tf.stack([tf.reduce_mean(x, 1), tf.math.reduce_std(x, 1),
                     tf.reduce_max(tf.abs(x), 1)], axis=1)


def get_timestamp_embeddings(audio, model: Model):
    raise NotImplementedError("scene embeddings only")
