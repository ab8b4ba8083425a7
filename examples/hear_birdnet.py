"""A HEAR-API module around BirdNET v2.4's TFLite file: a template for wrapping an encoder.

    usbench run --model logreg --features hear:hear_birdnet --weights BirdNET.tflite \\
        --data DIR            # with this folder on PYTHONPATH

``load_model(path)`` opens the model file with ai-edge-litert; ``get_scene_embeddings``
takes audio (n_sounds, n_samples) at 48 kHz, cuts each sound into 3 s windows (the last one
zero-padded), and returns the mean of the windows' 1,024-d embeddings (the tensor
``model/GLOBAL_AVG_POOL/Mean``). Unlike the built-in ``birdnet`` card, every tail gets a
window, however short.
"""

import warnings

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from usbench.native import quiet_native_stderr

SR = 48000
WINDOW = 3 * SR
BATCH = 8  # windows per invoke: one input shape, allocated once
EMBEDDING = "model/GLOBAL_AVG_POOL/Mean"


class BirdNET:
    sample_rate = SR
    scene_embedding_size = 1024

    def __init__(self, path: str):
        # The embedding is an inner tensor: readable only when all tensors are kept (the
        # runtime warns that this is for debugging, and announces its CPU delegate).
        with warnings.catch_warnings(), quiet_native_stderr():
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(model_path=path, num_threads=2,
                                           experimental_preserve_all_tensors=True)
            self.input = self.interpreter.get_input_details()[0]["index"]
            self.interpreter.resize_tensor_input(self.input, [BATCH, WINDOW])
            self.interpreter.allocate_tensors()
        self.embedding = next(d["index"] for d in self.interpreter.get_tensor_details()
                              if d["name"] == EMBEDDING)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        out = []
        for a in range(0, len(windows), BATCH):
            batch = np.zeros((BATCH, WINDOW), np.float32)
            batch[:len(windows[a:a + BATCH])] = windows[a:a + BATCH]
            self.interpreter.set_tensor(self.input, batch)
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.embedding).reshape(BATCH, -1))
        return np.concatenate(out)[:len(windows)]


def load_model(model_file_path: str = "") -> BirdNET:
    if not model_file_path:
        raise ValueError("pass BirdNET's .tflite file with --weights")
    return BirdNET(model_file_path)


def get_scene_embeddings(audio, model: BirdNET) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    n = max(1, -(-audio.shape[1] // WINDOW))
    padded = np.zeros((audio.shape[0], n * WINDOW), np.float32)
    padded[:, :audio.shape[1]] = audio
    windows = padded.reshape(audio.shape[0] * n, WINDOW)
    return model.embed(windows).reshape(audio.shape[0], n, -1).mean(axis=1)


def get_timestamp_embeddings(audio, model: BirdNET):
    raise NotImplementedError("scene embeddings only")
