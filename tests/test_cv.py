"""Protocol tests of the leave-one-fold-out engine: no test-fold row ever reaches a fit."""

import numpy as np
import pytest

from usbench.cv import check_folds, leave_one_fold_out
from usbench.errors import FoldError
from usbench.metrics import score

N_CLASSES = 4


class Spy:
    """Records every row it is fitted on; predicts the training prior."""

    fitted: list[np.ndarray] = []

    def __init__(self):
        self.history_ = {}

    def fit(self, X, y, groups=None, folds=None, variants=None):
        Spy.fitted.append(X[:, 0].copy())  # column 0 holds the row's global index
        self.groups, self.folds = groups, folds
        self.prior = np.bincount(y, minlength=N_CLASSES) / len(y)
        return self

    def predict_proba(self, X):
        return np.tile(self.prior, (len(X), 1))


def _data(folds=range(1, 11), per_fold=8):
    rng = np.random.default_rng(0)
    fold = np.repeat(list(folds), per_fold)
    n = fold.size
    X = np.column_stack([np.arange(n), rng.standard_normal((n, 3))]).astype(np.float32)
    y = rng.integers(0, N_CLASSES, n)
    rec = fold * 100 + np.arange(n) % 3
    return X, y, fold, rec


def test_no_test_fold_row_reaches_a_fit():
    Spy.fitted = []
    X, y, fold, rec = _data()
    results = leave_one_fold_out(lambda f: Spy(), X, y, fold, rec, N_CLASSES)
    assert [r.fold for r in results] == list(range(1, 11))
    for r, seen in zip(results, Spy.fitted, strict=True):
        test_rows = set(r.test_index)
        assert not test_rows & set(seen.astype(int))
        assert set(seen.astype(int)) | test_rows == set(range(len(X)))  # all other folds
        assert set(fold[r.test_index]) == {r.fold}


def test_each_fold_gets_a_fresh_estimator_and_training_groups():
    made = []

    def make(f):
        made.append(Spy())
        return made[-1]

    X, y, fold, rec = _data()
    results = leave_one_fold_out(make, X, y, fold, rec, N_CLASSES, test_folds=[2, 7])
    assert len(made) == 2 and made[0] is not made[1]
    for est, r in zip(made, results, strict=True):
        assert r.fold not in set(est.groups // 100)


def test_selected_folds_only():
    X, y, fold, rec = _data()
    results = leave_one_fold_out(lambda f: Spy(), X, y, fold, rec, N_CLASSES, test_folds=[10, 1])
    assert [r.fold for r in results] == [1, 10]
    assert results[0].n_train == 72


def test_accuracy_is_the_mean_over_folds_not_pooled():
    X, y, fold, rec = _data(per_fold=8)
    keep = np.r_[np.flatnonzero(fold != 2), np.flatnonzero(fold == 2)[:2]]  # fold 2: 2 clips
    X, y, fold, rec = X[keep], y[keep], fold[keep], rec[keep]
    results = leave_one_fold_out(lambda f: Spy(), X, y, fold, rec, N_CLASSES)
    s = score(results, tuple("abcd"))
    per_fold = [r.accuracy for r in results]
    assert s.accuracy == pytest.approx(np.mean(per_fold))
    assert s.accuracy_std == pytest.approx(np.std(per_fold))
    assert s.confusion.sum() == len(y) and s.confusion.shape == (N_CLASSES, N_CLASSES)


def test_fold_without_clips_is_refused():
    _, _, fold, _ = _data(folds=[1, 2, 3])
    with pytest.raises(FoldError) as err:
        check_folds(fold, [3, 4])
    assert str(err.value) == "--folds names fold 4, which has no clips. Folds with clips: 1, 2, 3."


def test_only_one_fold_present_leaves_no_training_data():
    _, _, fold, _ = _data(folds=[3])
    with pytest.raises(FoldError) as err:
        check_folds(fold, [3])
    assert str(err.value).startswith("Testing fold 3 leaves no training data: it is the only "
                                     "fold with clips.")


def test_macro_f1_leaves_out_classes_absent_from_a_fold():
    from usbench.cv import FoldResult

    y = np.array([0, 0, 1, 2])  # class 3 has no clip in this fold
    perfect = FoldResult(fold=1, test_index=np.arange(4), proba=np.eye(N_CLASSES)[y], y_true=y,
                         n_train=10, fit_seconds=0.0, predict_seconds=0.0, history={})
    assert score([perfect], tuple("abcd")).macro_f1 == 1.0  # counting class 3 as 0 gives 0.75
    wrong = FoldResult(fold=2, test_index=np.arange(4), proba=np.eye(N_CLASSES)[[0, 0, 1, 3]],
                       y_true=y, n_train=10, fit_seconds=0.0, predict_seconds=0.0, history={})
    # Predicting the absent class 3 for a clip of class 2 still costs: F1 of class 2 is 0.
    assert score([wrong], tuple("abcd")).macro_f1 == pytest.approx(2 / 3)


class RowSpy(Spy):
    """Reports, through its history, the rows it was fitted on and the process it ran in."""

    def fit(self, X, y, groups=None, folds=None, variants=None):
        import os

        super().fit(X, y, groups, folds, variants)
        self.history_ = {"seen": X[:, 0].astype(int).tolist(), "pid": os.getpid()}
        return self


@pytest.mark.slow
def test_folds_in_worker_processes_see_only_their_training_rows_and_arrive_in_order():
    import os

    X, y, fold, rec = _data()
    arrived = []
    results = leave_one_fold_out(lambda f: RowSpy(), X, y, fold, rec, N_CLASSES, n_jobs=2,
                                 on_fold=lambda r: arrived.append(r.fold))
    assert [r.fold for r in results] == arrived == list(range(1, 11))
    assert os.getpid() not in {r.history["pid"] for r in results}
    for r in results:
        seen, test_rows = set(r.history["seen"]), set(r.test_index)
        assert not seen & test_rows
        assert seen | test_rows == set(range(len(X)))
        assert r.n_train == len(seen)


@pytest.mark.slow
def test_folds_in_worker_processes_give_the_results_of_one_process():
    from usbench.models import get_model
    from usbench.models.base import BuildContext

    rng = np.random.default_rng(1)
    X, y, fold, rec = _data(per_fold=12)
    X = (X + rng.standard_normal(X.shape) * y[:, None]).astype(np.float32)
    spec = get_model("logreg")
    ctx = BuildContext(n_classes=N_CLASSES, input_shape=X.shape[1:], seed=0)
    runs = [leave_one_fold_out(lambda f: spec.build(spec.params({}), ctx), X, y, fold, rec,
                               N_CLASSES, test_folds=[1, 4, 9], n_jobs=jobs)
            for jobs in (1, 2)]
    for one, other in zip(*runs, strict=True):
        assert one.fold == other.fold and one.n_train == other.n_train
        np.testing.assert_array_equal(one.proba, other.proba)


@pytest.mark.slow
def test_an_error_in_on_fold_stops_the_workers_folds(tmp_path):
    log = tmp_path / "fits.txt"

    class Slow(Spy):
        def fit(self, X, y, groups=None, folds=None, variants=None):
            import time

            time.sleep(0.3)
            with open(log, "a") as fh:
                fh.write("fit\n")
            return super().fit(X, y, groups, folds, variants)

    def stop(result):
        raise KeyboardInterrupt

    X, y, fold, rec = _data()
    with pytest.raises(KeyboardInterrupt):
        leave_one_fold_out(lambda f: Slow(), X, y, fold, rec, N_CLASSES, n_jobs=2, on_fold=stop)
    import time

    time.sleep(1.5)  # what was running finishes; nothing else starts
    assert len(log.read_text().splitlines()) < 10
