"""Saved models (``--save-model``): the bundle of the estimator fitted on every present fold
(``bundle``), its MLflow ``pyfunc`` flavour (``flavour``: audio in, classes out), what it reads
(``inputs``: content, allowed folders, limits), and its logging to and loading from the
tracking store (``store``). Tracking itself knows nothing of models: the runner logs one into
the run it has just written.
"""
