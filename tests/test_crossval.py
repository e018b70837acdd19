"""Cross-validation of a participant's model across runs (samba_bids.training.crossval) and
the ridge baseline on several runs."""

import numpy as np
import pytest

from samba_bids.errors import UsageError
from samba_bids.training import concatenate_runs, resolve_cv, run_folds


def test_auto_cross_validates_by_run_from_three_runs():
    assert [resolve_cv("auto", n) for n in (1, 2, 3, 6)] == ["blocks", "blocks", "runs", "runs"]
    assert resolve_cv("blocks", 5) == "blocks" and resolve_cv("runs", 2) == "runs"
    with pytest.raises(UsageError, match="--cv runs needs at least 2 paired runs"):
        resolve_cv("runs", 1, who="sub-01")
    with pytest.raises(UsageError, match="cv must be one of"):
        resolve_cv("loso", 3)


def test_each_run_is_held_out_once():
    folds = run_folds(4, "runs")
    assert [f.test_run for f in folds] == [0, 1, 2, 3]
    for fold in folds:
        assert fold.test_run not in fold.train_runs
        assert sorted(fold.train_runs + (fold.test_run,)) == [0, 1, 2, 3]
    (blocks,) = run_folds(4, "blocks")
    assert blocks.train_runs == (0, 1, 2, 3) and blocks.test_run is None


def test_ridge_convolution_restarts_at_each_run():
    """On runs concatenated by concatenate_runs, the ridge's regressors are each run's own:
    the HRF convolution never carries one run's band power into the next."""
    from samba_bids.alignment import blocked_split
    from samba_bids.model.baselines import fit_ridge_baseline

    rng = np.random.default_rng(0)
    runs = []
    for n_volumes in (90, 110):
        features = rng.normal(size=(4, n_volumes, 2, 3))
        bold = rng.normal(size=(5, n_volumes))
        runs.append((features, bold, blocked_split(n_volumes, 2.0, hrf_support_s=20.0)))
    features, bold, split = concatenate_runs(runs)
    ridge = fit_ridge_baseline(features, bold, split, tr_s=2.0, hrf_support_s=20.0)
    joint = ridge.regressors(features)  # one convolution over the whole axis (predict-time)
    from samba_bids.model.baselines import _regressors

    restarted = _regressors(features[..., 0], ridge.feature_mean, ridge.feature_std,
                            ridge.kernel, ridge.regressor_mean, ridge.regressor_std,
                            offsets=split.offsets)
    second = slice(90, 90 + len(ridge.kernel) - 1)  # the second run's first K volumes
    np.testing.assert_allclose(restarted[:90], joint[:90])
    np.testing.assert_allclose(restarted[90:], ridge.regressors(features[:, 90:]))
    assert not np.allclose(restarted[second], joint[second])


def test_reverse_windows_never_look_into_the_next_run():
    """Reverse-direction windows on concatenated runs: targets and the K volumes ahead of
    them stay in the window's own run; ahead of a run's last volume they are absent (-1)."""
    from samba_bids.alignment import fitting_split
    from samba_bids.training import reverse_windows, split_reverse_windows

    rng = np.random.default_rng(0)
    lengths, window, lookahead = (90, 110), 8, 10
    runs = [(rng.normal(size=(4, n, 2, 3)), rng.normal(size=(5, n)),
             fitting_split(n, 2.0, hrf_support_s=20.0, window_trs=window)) for n in lengths]
    _, _, split = concatenate_runs(runs)
    for name in ("train", "validation"):
        windows = split_reverse_windows(split, name, lookahead, window, sum(lengths))
        run_of = np.where(windows >= 0, (windows >= lengths[0]).astype(int), -1)
        for row in run_of:
            assert len(set(row[row >= 0])) == 1, name  # one run per window
        # the same windows as each run alone, shifted to the concatenated axis
        first = reverse_windows(runs[0][2].train if name == "train" else
                                runs[0][2].validation, lookahead, window, lengths[0])
        np.testing.assert_array_equal(windows[:len(first)], first)
    last = split_reverse_windows(split, "validation", lookahead, window, sum(lengths))
    ends_first_run = last[(last[:, :window] >= 0).all(axis=1)
                          & (last[:, window - 1] == lengths[0] - 1)]
    assert len(ends_first_run) and (ends_first_run[:, window:] == -1).all()
