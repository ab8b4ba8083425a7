"""What training every fold's MLP in one TensorFlow graph would cost (the MLP's 10 folds in 60 s).

A measurement for a decision, not usbench's code path. The MLP's 10-fold run at UrbanSound8K
size spends its time in TensorFlow's cost per training step (0.7-0.9 ms for 32 rows of a 91 k
multiply-add network), once per fold; if that cost were a fixed toll per step, stacking would
share it. Here the K fold networks are stacked: each layer holds K kernels (``EinsumDense``,
kernel (K, d_in, d_out)) and every step takes one batch of each fold, so one step's ops train
all K networks. The folds' losses are summed, so each network's gradient is its own (Adam is
per weight).

Both are timed in this process, alternately, on random rows of the default MLP's shapes
(``mfcc-stats``: 140 values, 200 and 300 ReLU units with dropout 0.5, L2 3e-3, Adam, 10
classes; each epoch one compiled call, as ``usbench.models.keras_training`` trains): one fold's
network, and K networks stacked. The default ``--batch 32`` is the tutorials' batch, where the
cost of a step weighs most (usbench's MLP trains in batches of 128). Accuracy is not
measured: the initialisation of the stacked kernels is not per fold here, and the rows are
random.

    python benchmarks/bench_fold_stacking.py [--folds 10] [--rows 7859] [--batch 32]

Prints seconds per epoch of each, and the 100-epoch, K-fold projections. Saved to
``results/benchmarks/fold_stacking.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

FEATURES, HIDDEN, CLASSES = 140, (200, 300), 10


def network(keras, k: int | None, l2: float = 3e-3, dropout: float = 0.5):
    """The default MLP; with `k`, k of them stacked on a fold axis: (rows, k, features)."""
    layers, reg = keras.layers, keras.regularizers.L2(l2)
    if k is None:
        stack = [keras.Input(shape=(FEATURES,))]
        for units in HIDDEN:
            stack += [layers.Dense(units, activation="relu", kernel_regularizer=reg),
                      layers.Dropout(dropout)]
        stack.append(layers.Dense(CLASSES, activation="softmax"))
        return keras.Sequential(stack)
    stack = [keras.Input(shape=(k, FEATURES))]
    for units in HIDDEN:
        stack += [layers.EinsumDense("bki,kio->bko", output_shape=(k, units), bias_axes="ko",
                                     kernel_regularizer=reg, activation="relu"),
                  layers.Dropout(dropout)]
    stack.append(layers.EinsumDense("bki,kio->bko", output_shape=(k, CLASSES), bias_axes="ko",
                                    activation="softmax"))
    return keras.Sequential(stack)


def epoch_timer(keras, tf, k: int | None, rows: int, batch: int, seed: int = 0):
    """A compiled network and a function that trains it one epoch, returning seconds."""
    keras.utils.set_random_seed(seed)
    model = network(keras, k)
    folds = 1 if k is None else k

    def loss(y_true, y_pred):  # the sum over folds of each fold's mean loss
        return folds * keras.losses.categorical_crossentropy(y_true, y_pred)

    steps = -(-rows // batch)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, steps_per_execution=steps)
    rng = np.random.default_rng(seed)
    shape = (rows,) if k is None else (rows, k)
    X = rng.standard_normal((*shape, FEATURES), dtype=np.float32)
    Y = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, shape)]

    def one_epoch() -> float:
        start = time.perf_counter()
        # Each fold's rows in its own order, as separate trainings would draw them.
        order = rng.permutation(rows) if k is None else \
            np.stack([rng.permutation(rows) for _ in range(k)], axis=1)
        if k is None:
            x, y = X[order], Y[order]
        else:
            x = np.take_along_axis(X, order[..., None], axis=0)
            y = np.take_along_axis(Y, order[..., None], axis=0)
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
        model.fit(data, epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - start

    return one_epoch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=7859,
                        help="training rows per fold (UrbanSound8K: 8,732 x 9/10)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs of each")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/fold_stacking.json"))
    args = parser.parse_args(argv)
    if min(args.folds, args.rows, args.batch, args.epochs) < 1:
        parser.error("--folds, --rows, --batch and --epochs must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    single = epoch_timer(keras, tf, None, args.rows, args.batch)
    stacked = epoch_timer(keras, tf, args.folds, args.rows, args.batch)
    single(), stacked()  # compile
    times: dict[str, list[float]] = {"single": [], "stacked": []}
    for _ in range(args.epochs):  # alternately: the machine's speed drifts
        times["single"].append(single())
        times["stacked"].append(stacked())
    one, all_k = statistics.median(times["single"]), statistics.median(times["stacked"])
    steps = -(-args.rows // args.batch)
    print(f"{args.rows:,} rows a fold, batches of {args.batch} ({steps} steps an epoch), "
          f"medians of {args.epochs} epochs:")
    print(f"  one fold's network       {one:.3f} s an epoch ({1e3 * one / steps:.2f} ms a step)"
          f"; {args.folds} folds x 100 epochs: {100 * args.folds * one:.0f} s")
    print(f"  {args.folds} networks stacked     {all_k:.3f} s an epoch "
          f"({1e3 * all_k / steps:.2f} ms a step); 100 epochs: {100 * all_k:.0f} s "
          f"({args.folds * one / all_k:.1f}x)")
    result = {"benchmark": "fold-stacking", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "cpus": os.cpu_count(), "platform": platform.platform(),
              "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
              "config": vars(args) | {"out": str(args.out)}, "epoch_seconds": times,
              "single_epoch_s": one, "stacked_epoch_s": all_k,
              "projected_single_100_epochs_all_folds_s": 100 * args.folds * one,
              "projected_stacked_100_epochs_s": 100 * all_k}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"Saved {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
