"""Stimulus decoding across groups: known answers on synthetic windows, the permutation null,
the chance level, no leakage across groups, windowing and input errors."""

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.utils.validation import check_is_fitted

from samba_bids.decoding import (
    TABLE_COLUMNS,
    DecodingResult,
    TemplateMatcher,
    _permuter,
    decode_stimulus,
    decoding_column_docs,
    decoding_table,
    default_classifier,
    window_features,
)

FILMS = np.array(["film-a", "film-b", "film-c", "film-d"])


def _participants(seed, signal, *, n_groups=5, per_block=6, n_features=10):
    """4 films x ``n_groups`` participants, each film one block of ``per_block`` windows in a
    random order per participant; features = signal x film pattern + participant offset +
    unit noise."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(FILMS.size, n_features))
    codes, groups = [], []
    for group in range(n_groups):
        for film in rng.permutation(FILMS.size):
            codes += [film] * per_block
            groups += [f"sub-{group + 1:02d}"] * per_block
    codes = np.asarray(codes)
    offsets = 0.5 * rng.normal(size=(n_groups, n_features))
    group_index = np.repeat(np.arange(n_groups), FILMS.size * per_block)
    X = (signal * patterns[codes] + offsets[group_index]
         + rng.normal(size=(codes.size, n_features)))
    return X, FILMS[codes], np.asarray(groups)


def _runs(seed, signal, *, runs_per_film=3, per_run=8, n_features=6):
    """One film per run (labels constant within groups): 4 films x ``runs_per_film`` runs."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(FILMS.size, n_features))
    run_film = np.repeat(np.arange(FILMS.size), runs_per_film)
    codes = np.repeat(run_film, per_run)
    groups = np.repeat([f"run-{r + 1:02d}" for r in range(run_film.size)], per_run)
    X = signal * patterns[codes] + rng.normal(size=(codes.size, n_features))
    return X, FILMS[codes], groups


# -- known answers ---------------------------------------------------------------------------

def test_strong_signal_is_decoded_perfectly_with_smallest_p():
    X, labels, groups = _participants(seed=0, signal=3.0)
    result = decode_stimulus(X, labels, groups, n_permutations=99, seed=0)
    assert isinstance(result, DecodingResult)
    assert result.accuracy >= 0.95
    assert result.n_windows == 120 and result.folds == 5 and result.n_classes == 4
    assert result.permutation == "blocks"
    assert result.chance == pytest.approx(0.25)
    assert result.p_value == pytest.approx(1 / 100)
    assert np.mean(result.predictions == labels) == pytest.approx(result.accuracy)
    assert set(result.predictions) <= set(FILMS)
    # the null sits at chance
    assert result.null_accuracies.shape == (99,)
    assert abs(result.null_mean_accuracy - 0.25) < 0.05


def test_weak_real_signal_is_above_chance_and_significant():
    X, labels, groups = _participants(seed=1, signal=0.45)
    result = decode_stimulus(X, labels, groups, n_permutations=99, seed=0)
    assert result.accuracy < 0.9                      # weak indeed
    assert result.ci_low > result.chance
    assert result.p_value < 0.05


def test_shuffled_labels_score_at_chance():
    X, labels, groups = _participants(seed=2, signal=3.0)
    shuffled = np.random.default_rng(12).permutation(labels)   # signal destroyed
    result = decode_stimulus(X, shuffled, groups, n_permutations=99, seed=0)
    # within the 99 % binomial interval of a 1-in-4 guess (18 to 43 of 120)
    low, high = stats.binom.interval(0.99, result.n_windows, 0.25)
    assert low <= result.n_correct <= high
    assert abs(result.null_mean_accuracy - 0.25) < 0.05
    assert result.p_value > 0.05


def test_confidence_interval_is_clopper_pearson():
    X, labels, groups = _participants(seed=3, signal=0.45)
    for confidence in (0.95, 0.9):
        result = decode_stimulus(X, labels, groups, n_permutations=0, confidence=confidence)
        expected = stats.binomtest(result.n_correct, result.n_windows).proportion_ci(
            confidence_level=confidence, method="exact")
        assert result.ci_low == pytest.approx(expected.low, abs=1e-12)
        assert result.ci_high == pytest.approx(expected.high, abs=1e-12)
        assert result.ci_low <= result.accuracy <= result.ci_high
        assert result.confidence == confidence
    assert np.isnan(result.p_value) and np.isnan(result.null_mean_accuracy)
    assert result.null_accuracies.shape == (0,)


def test_chance_is_the_training_majority_pooled_over_folds():
    # sub-a: [x, x, y]; sub-b and sub-c: [x, y, y]. Held out sub-a: training majority y (4
    # of 6), right once; held out sub-b (or sub-c): training tie x/y, first sorted label x,
    # right once. Chance = 3 / 9.
    labels = np.array(["x", "x", "y", "x", "y", "y", "x", "y", "y"])
    groups = np.repeat(["sub-a", "sub-b", "sub-c"], 3)
    X = np.random.default_rng(0).normal(size=(9, 3))
    result = decode_stimulus(X, labels, groups, n_permutations=0)
    assert result.chance == pytest.approx(1 / 3)
    assert result.n_classes == 2 and result.folds == 3


# -- the permutation -------------------------------------------------------------------------

def test_block_permutation_keeps_blocks_and_each_groups_labels():
    _, labels, groups = _participants(seed=4, signal=1.0, per_block=3)
    codes = np.unique(labels, return_inverse=True)[1]
    group_codes = np.unique(groups, return_inverse=True)[1]
    permute = _permuter(codes, group_codes, 5, "blocks")
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(20):
        permuted = permute(rng)
        for g in range(5):
            index = np.flatnonzero(group_codes == g)
            original, new = codes[index], permuted[index]
            assert sorted(new) == sorted(original)           # same labels, same counts
            for start in range(0, index.size, 3):            # blocks stay whole
                assert np.unique(new[start:start + 3]).size == 1
        changed += int(np.any(permuted != codes))
    assert changed >= 18


def test_group_permutation_shuffles_labels_across_groups():
    _, labels, groups = _runs(seed=0, signal=1.0)
    codes = np.unique(labels, return_inverse=True)[1]
    group_codes = np.unique(groups, return_inverse=True)[1]
    permute = _permuter(codes, group_codes, 12, "groups")
    rng = np.random.default_rng(0)
    permuted = [permute(rng) for _ in range(20)]
    for new in permuted:
        assert np.bincount(new).tolist() == np.bincount(codes).tolist()
        for g in range(12):
            assert np.unique(new[group_codes == g]).size == 1
    assert sum(np.any(new != codes) for new in permuted) >= 19


def test_labels_constant_within_groups_use_the_group_permutation():
    # permuting within groups (scikit-learn's permutation_test_score) would be a no-op here
    # and give p = 1
    X, labels, groups = _runs(seed=1, signal=3.0)
    result = decode_stimulus(X, labels, groups, n_permutations=49, seed=0)
    assert result.permutation == "groups"
    assert result.accuracy > 0.9
    assert result.p_value == pytest.approx(1 / 50)


def test_same_seed_same_p_and_jobs_do_not_change_it():
    X, labels, groups = _participants(seed=5, signal=0.3)
    one = decode_stimulus(X, labels, groups, n_permutations=19, seed=3)
    with parallel_config(backend="threading"):      # joblib's path without process start-up
        parallel = decode_stimulus(X, labels, groups, n_permutations=19, seed=3, n_jobs=2)
    other = decode_stimulus(X, labels, groups, n_permutations=19, seed=4)
    np.testing.assert_array_equal(one.null_accuracies, parallel.null_accuracies)
    assert one.p_value == parallel.p_value
    assert not np.array_equal(one.null_accuracies, other.null_accuracies)


# -- no leakage across groups ----------------------------------------------------------------

def test_group_identity_does_not_leak_across_groups():
    # One film per run; the features only identify the run (a random code per run), not the
    # film. A scheme that mixes windows of one run into training and test scores near 1;
    # leaving whole runs out must not.
    rng = np.random.default_rng(7)
    _, labels, groups = _runs(seed=2, signal=0.0)
    run_codes = np.unique(groups, return_inverse=True)[1]
    X = rng.normal(size=(12, 24))[run_codes] + 0.1 * rng.normal(size=(labels.size, 24))
    leaky = cross_val_score(clone(default_classifier()), X, labels,
                            cv=StratifiedKFold(4, shuffle=True, random_state=0)).mean()
    assert leaky > 0.9
    result = decode_stimulus(X, labels, groups, n_permutations=49, seed=0)
    assert result.accuracy < 0.5
    assert result.p_value > 0.05


def test_feature_constant_within_groups_scores_exactly_chance():
    # each participant watched every film; a feature that only differs between participants
    # gives one prediction per held-out participant, right for 1 film in 4
    _, labels, groups = _participants(seed=6, signal=0.0)
    group_codes = np.unique(groups, return_inverse=True)[1]
    X = np.random.default_rng(8).normal(size=(5, 4))[group_codes]
    result = decode_stimulus(X, labels, groups, n_permutations=49, seed=0)
    assert result.accuracy == pytest.approx(0.25)
    assert result.accuracy == pytest.approx(result.chance)
    assert result.p_value == 1.0


def test_classifier_is_cloned_per_fold():
    X, labels, groups = _participants(seed=9, signal=2.0)
    classifier = default_classifier(C=0.1)
    result = decode_stimulus(X, labels, groups, n_permutations=0, classifier=classifier)
    with pytest.raises(NotFittedError):
        check_is_fitted(classifier)
    assert result.accuracy > 0.5


# -- windows ---------------------------------------------------------------------------------

def test_window_features_hand_computed():
    series = np.arange(14, dtype=float).reshape(2, 7)       # 2 features x 7 volumes
    X, starts = window_features(series, 3)                  # volume 6 is a partial window
    np.testing.assert_array_equal(starts, [0, 3])
    np.testing.assert_allclose(X, [[1.0, 8.0], [4.0, 11.0]])
    X, starts = window_features(series, 3, summary="flatten")
    np.testing.assert_allclose(X, [[0, 1, 2, 7, 8, 9], [3, 4, 5, 10, 11, 12]])
    X, starts = window_features(series, 3, step=2)
    np.testing.assert_array_equal(starts, [0, 2, 4])
    np.testing.assert_allclose(X[:, 0], [1.0, 3.0, 5.0])
    X, starts = window_features(series, 7)
    assert X.shape == (1, 2) and starts.tolist() == [0]


@pytest.mark.parametrize("kwargs, match", [
    ({"series": np.zeros((2, 4)), "window_volumes": 5}, "fewer than one window"),
    ({"series": np.zeros(8), "window_volumes": 2}, "n_features, n_volumes"),
    ({"series": np.zeros((2, 8)), "window_volumes": 0}, "at least 1"),
    ({"series": np.zeros((2, 8)), "window_volumes": 2, "summary": "max"}, "summary"),
    ({"series": np.array([[0.0, np.nan, 1.0, 2.0]]), "window_volumes": 2}, "non-finite"),
])
def test_window_features_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        window_features(**kwargs)


# -- table -----------------------------------------------------------------------------------

def test_decoding_table_and_sidecar_docs():
    X, labels, groups = _participants(seed=10, signal=2.0)
    results = {"samba_latent": decode_stimulus(X, labels, groups, n_permutations=9),
               "observed_bold": decode_stimulus(X[:, :2], labels, groups, n_permutations=0)}
    table = decoding_table(results)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table.columns[:10]) == ["feature_set", "accuracy", "ci_low", "ci_high",
                                        "chance", "n_classes", "n_windows", "n_correct",
                                        "p_value", "n_permutations"]
    assert table["feature_set"].tolist() == ["samba_latent", "observed_bold"]
    row = table.iloc[0]
    result = results["samba_latent"]
    assert row["accuracy"] == result.accuracy and row["n_correct"] == result.n_correct
    assert row["n_permutations"] == 9 and np.isnan(table.iloc[1]["p_value"])
    docs = decoding_column_docs()
    assert set(docs) == set(TABLE_COLUMNS)
    assert all(set(doc) == {"Description", "Units"} for doc in docs.values())
    assert all(column == column.lower() and " " not in column for column in TABLE_COLUMNS)
    assert isinstance(table, pd.DataFrame)


# -- errors ----------------------------------------------------------------------------------

def test_errors():
    X, labels, groups = _participants(seed=11, signal=1.0)
    with pytest.raises(ValueError, match="at least 2 groups"):
        decode_stimulus(X, labels, np.full(labels.size, "sub-01"), n_permutations=0)
    with pytest.raises(ValueError, match="at least 2 stimulus labels"):
        decode_stimulus(X, np.full(labels.size, "film-a"), groups, n_permutations=0)
    only_here = labels.copy()
    only_here[(groups == "sub-02") & (labels == "film-a")] = "film-e"
    with pytest.raises(ValueError, match=r"'film-e' \(only in group 'sub-02'\)"):
        decode_stimulus(X, only_here, groups, n_permutations=0)
    with pytest.raises(ValueError, match="one entry per window"):
        decode_stimulus(X, labels[:-1], groups, n_permutations=0)
    with pytest.raises(ValueError, match="one entry per window"):
        decode_stimulus(X, labels, groups[:-1], n_permutations=0)
    bad = X.copy()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        decode_stimulus(bad, labels, groups, n_permutations=0)
    missing = labels.astype(object)
    missing[0] = None
    with pytest.raises(ValueError, match="missing"):
        decode_stimulus(X, missing, groups, n_permutations=0)
    with pytest.raises(ValueError, match="confidence"):
        decode_stimulus(X, labels, groups, n_permutations=0, confidence=95)
    with pytest.raises(ValueError, match="permutation='blocks'"):
        decode_stimulus(X, labels, groups, n_permutations=0, permutation="groups")
    X_runs, run_labels, runs = _runs(seed=3, signal=1.0)
    with pytest.raises(ValueError, match="permutation='groups'"):
        decode_stimulus(X_runs, run_labels, runs, n_permutations=0, permutation="blocks")


# -- between-subject time-segment classification (TemplateMatcher) --------------------------

def test_template_matcher_picks_the_best_correlated_mean_pattern():
    X = np.array([[1.0, 0.0, 0.0], [3.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 0.0, 4.0]])
    matcher = TemplateMatcher().fit(X, ["w1", "w1", "w2", "w2"])
    assert list(matcher.classes_) == ["w1", "w2"]
    # templates: row means per label, standardised across features
    mean = np.array([2.0, 0.5, 0.0])
    np.testing.assert_allclose(matcher.templates_[0], (mean - mean.mean()) / mean.std())
    # correlation ignores a row's offset and scale
    assert list(matcher.predict([[10.0, 5.0, 4.0], [-7.0, -6.0, 3.0]])) == ["w1", "w2"]
    assert list(matcher.predict(5.0 * X + 2.0)) == ["w1", "w1", "w2", "w2"]


def test_window_of_the_film_decoded_across_participants_even_when_centred():
    """Every participant sees the same 12 windows (shared pattern per window + noise); each
    participant's windows are centred, so no window differs from the others in its mean
    over the film. Which window is identified across participants; shuffled labels are not."""
    rng = np.random.default_rng(4)
    n_groups, n_windows, n_features = 5, 12, 30
    shared = rng.normal(size=(n_windows, n_features))
    X, labels, groups = [], [], []
    for group in range(n_groups):
        own = shared + rng.normal(size=(n_windows, n_features))
        X.append(own - own.mean(axis=0))  # centred over the film, per feature
        labels += [f"w{k:02d}" for k in range(n_windows)]
        groups += [f"sub-{group + 1:02d}"] * n_windows
    X = np.concatenate(X)
    result = decode_stimulus(X, labels, groups, n_permutations=99, seed=0,
                             classifier=TemplateMatcher())
    assert result.n_classes == n_windows and result.permutation == "blocks"
    assert result.accuracy > 0.9 and result.p_value == pytest.approx(0.01)
    assert result.null_mean_accuracy < 3 / n_windows
    shuffled = np.concatenate([rng.permutation(labels[:n_windows]) for _ in range(n_groups)])
    null = decode_stimulus(X, shuffled, groups, n_permutations=99, seed=0,
                           classifier=TemplateMatcher())
    assert null.p_value > 0.05 and null.ci_low <= 1 / n_windows
