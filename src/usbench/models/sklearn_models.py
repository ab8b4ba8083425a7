"""scikit-learn families on vector features: ``logreg`` and ``rf``.

scikit-learn is imported by the builders and by ``fit``, never at module import.

``logreg`` parameters:
    C: inverse L2 regularisation strength (> 0). class_weight: none | balanced.
    max_iter: lbfgs iterations.
``rf`` parameters:
    n_estimators: trees. max_depth: 0 = grow until leaves are pure. max_features: features
    tried per split, sqrt | log2 | all. min_samples_leaf: rows per leaf.
    class_weight: none | balanced | balanced_subsample. max_samples: share of the training
    rows in each tree's bootstrap sample (1 = as many as there are rows, Breiman's forest).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from usbench.models.base import (
    BuildContext,
    ModelSpec,
    between,
    check_fit_inputs,
    check_predict_inputs,
    one_of,
)


class SklearnClassifier:
    """Adapts an unfitted scikit-learn classifier to the usbench estimator contract.

    ``fit`` ignores `groups` and `folds` and adds the audio variants of the rows, when given,
    as more training rows with the same labels; ``predict_proba`` spreads the fitted
    ``classes_`` columns over all ``ctx.n_classes`` columns, with zeros for classes absent
    from the training rows.

    Attributes:
        estimator: the unfitted template (cloned by each ``fit``).
        blas_threads: BLAS threads during ``fit`` (None: the library default).
        estimator_: the fitted clone.
        history_: always ``{}``.
    """

    def __init__(self, name: str, estimator: Any, ctx: BuildContext,
                 blas_threads: int | None = None):
        self.name = name
        self.estimator = estimator
        self.ctx = ctx
        self.blas_threads = blas_threads
        self.history_: dict = {}

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
            folds: np.ndarray | None = None, variants: np.ndarray | None = None):
        """Fit a clone of the template on (X, y) and the variants of those rows, if given.

        Args:
            variants: float32, shape (n, k, *input_shape), or None.
        """
        from sklearn.base import clone
        from threadpoolctl import threadpool_limits

        X, y, _ = check_fit_inputs(self.name, self.ctx, X, y, groups)
        if variants is not None and np.shape(variants)[1] > 0:
            k = np.shape(variants)[1]
            X = np.concatenate([X, np.asarray(variants, dtype=np.float32).reshape(
                len(X) * k, *X.shape[1:])])
            y = np.concatenate([y, np.repeat(y, k)])
        with threadpool_limits(limits=self.blas_threads, user_api="blas"):
            self.estimator_ = clone(self.estimator).fit(X.reshape(len(X), -1), y)
        self.history_ = {}
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities: float64, shape (n, n_classes); column j is class id j."""
        X = check_predict_inputs(self.name, self.ctx, X, hasattr(self, "estimator_"))
        proba = self.estimator_.predict_proba(X.reshape(len(X), -1))
        out = np.zeros((len(X), self.ctx.n_classes), dtype=np.float64)
        out[:, np.asarray(self.estimator_.classes_, dtype=np.int64)] = proba
        return out


def _class_weight(value: str) -> str | None:
    return None if value == "none" else value


def build_logreg(params: dict, ctx: BuildContext) -> SklearnClassifier:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # No penalty= (deprecated in scikit-learn 1.9): the default is L2, multinomial with lbfgs.
    clf = LogisticRegression(
        C=params["C"], class_weight=_class_weight(params["class_weight"]),
        max_iter=params["max_iter"], random_state=ctx.seed,
    )
    # lbfgs on UrbanSound8K-size data (8,732 x 140) is 5x faster with one BLAS thread than with
    # two fighting over small matrix products (benchmarks/bench_models.py); same result.
    return SklearnClassifier("logreg", make_pipeline(StandardScaler(), clf), ctx,
                             blas_threads=1)


def build_rf(params: dict, ctx: BuildContext) -> SklearnClassifier:
    from sklearn.ensemble import RandomForestClassifier

    max_features = params["max_features"]
    clf = RandomForestClassifier(
        n_estimators=params["n_estimators"],
        max_depth=params["max_depth"] or None,
        max_features=None if max_features == "all" else max_features,
        min_samples_leaf=params["min_samples_leaf"],
        class_weight=_class_weight(params["class_weight"]),
        max_samples=None if params["max_samples"] == 1 else params["max_samples"],
        n_jobs=ctx.n_jobs or -1,
        random_state=ctx.seed,
    )
    return SklearnClassifier("rf", clf, ctx)


def logreg_space(trial: Any) -> dict:
    return {
        "C": trial.suggest_float("C", 1e-3, 1e2, log=True),
        "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
    }


def rf_space(trial: Any) -> dict:
    return {
        # Forest accuracy plateaus by a few hundred trees while cost grows linearly with them.
        "n_estimators": trial.suggest_int("n_estimators", 50, 500, step=50),
        "max_depth": trial.suggest_categorical("max_depth", [0, 10, 20, 40]),
        "max_features": trial.suggest_categorical("max_features", ["sqrt", "log2"]),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 8, log=True),
        "class_weight": trial.suggest_categorical(
            "class_weight", ["none", "balanced", "balanced_subsample"]
        ),
    }


LOGREG = ModelSpec(
    name="logreg",
    input_kind="vector",
    summary="standardised multinomial logistic regression (scikit-learn, L2)",
    default_params={"C": 1.0, "class_weight": "none", "max_iter": 2000},
    builder=build_logreg,
    space=logreg_space,
    allowed={
        # scikit-learn's LogisticRegressionCV searches 1e-4..1e4.
        "C": between(1e-6, 1e6),
        "class_weight": one_of("none", "balanced"),
        "max_iter": between(1, 100_000),
    },
)

RF = ModelSpec(
    name="rf",
    input_kind="vector",
    summary="random forest, 300 trees (scikit-learn)",
    default_params={
        # 300 trees score as 500 did on us8k-dev (0.4885 against 0.4891, seeds 0-4; 250:
        # 0.484) in 60 % of the time (README, "Benchmarks").
        "n_estimators": 300,
        "max_depth": 0,
        "max_features": "sqrt",
        "min_samples_leaf": 1,
        "class_weight": "none",
        "max_samples": 1.0,
    },
    builder=build_rf,
    space=rf_space,
    allowed={
        # Accuracy plateaus by a few hundred trees; 10,000 is far past any real sweep.
        "n_estimators": between(1, 10_000),
        "max_depth": between(0, 1000),
        "max_features": one_of("sqrt", "log2", "all"),
        "min_samples_leaf": between(1, 10_000),
        "class_weight": one_of("none", "balanced", "balanced_subsample"),
        "max_samples": between(0, 1, low_open=True),
    },
)
