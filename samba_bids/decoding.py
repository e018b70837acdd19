"""Which stimulus is this window? Cross-validated decoding of labels from windowed features.

The SAMBA paper reports how well the film a person watched can be classified from SAMBA's
latent space, against baselines (+10.54 % accuracy). This module gives the one procedure used
for every feature set (SAMBA's neural drive, band power, observed BOLD, ridge predictions), so
that the numbers compare:

1. :func:`window_features` cuts a (features x volumes) series into windows and summarises
   each one (the mean pattern per window, as in naturalistic-viewing decoding).
2. :func:`decode_stimulus` trains a linear classifier (scikit-learn; by default
   ``StandardScaler`` + multinomial ``LogisticRegression``) with leave-one-group-out
   cross-validation (groups are participants or runs: train on the others, test on the
   held-out one), and reports the accuracy with an exact binomial (Clopper & Pearson 1934,
   Biometrika 26:404) confidence interval, a chance level and a permutation p-value (Ojala &
   Garriga 2010, JMLR 11:1833; p never 0 as in Phipson & Smyth 2010, SAGMB 9:39).
3. :func:`decoding_table` and :func:`decoding_column_docs` give the ``_desc-decoding_metrics``
   table and its JSON sidecar entries.

Why the permutation is not scikit-learn's ``permutation_test_score``: with ``groups`` it
shuffles labels window by window *within* each group. Where the label is constant within a
group (one film per run) that is a no-op, so every permuted score equals the observed one and
p = 1; where it varies within a group it breaks up the contiguous blocks of windows from one
stimulus, whose windows are not independent (slow BOLD, shared stimulus history), so the null
is too narrow. Here whole blocks are permuted instead (see :func:`decode_stimulus`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

logger = logging.getLogger(__name__)

#: Permutation schemes of :func:`decode_stimulus`.
PERMUTATIONS = ("auto", "blocks", "groups")

#: Columns of :func:`decoding_table`, in order.
TABLE_COLUMNS = ("feature_set", "accuracy", "ci_low", "ci_high", "chance", "n_classes",
                 "n_windows", "n_correct", "p_value", "n_permutations", "null_mean_accuracy",
                 "confidence_level", "n_folds", "permutation")


def window_features(series, window_volumes: int, *, step: int | None = None,
                    summary: str = "mean"):
    """Cut a series into windows of whole volumes and give one feature vector per window.

    Parameters
    ----------
    series : array_like, shape (n_features, n_volumes)
        One value per feature and volume (BOLD sample, one TR): for example SAMBA's neural
        drive per BOLD parcel, band power per parcel and band flattened to features, or BOLD
        per parcel. Any units; they are kept.
    window_volumes : int
        Volumes per window (a window spans ``window_volumes * TR`` s).
    step : int or None
        Volumes between the starts of consecutive windows; None (default) is
        ``window_volumes``: consecutive, non-overlapping windows. A smaller step gives
        overlapping windows, which share volumes (keep them in one cross-validation group).
    summary : {"mean", "flatten"}
        ``"mean"`` (default, the usual pattern for naturalistic decoding): the mean over the
        window's volumes of each feature. ``"flatten"``: the window's values, feature-major
        (``X[w, f * window_volumes + t]`` is feature ``f`` at volume ``t`` of window ``w``),
        which keeps the time course within the window.

    Returns
    -------
    X : ndarray, shape (n_windows, n_features) or (n_windows, n_features * window_volumes)
        One row per window, in the series' units; ``n_windows = (n_volumes - window_volumes)
        // step + 1``.
    window_starts : ndarray of int, shape (n_windows,)
        First volume (0-based) of each window; window ``w`` covers volumes
        ``window_starts[w]`` to ``window_starts[w] + window_volumes - 1``. A trailing window
        with fewer than ``window_volumes`` volumes is dropped.

    Raises
    ------
    ValueError
        If ``series`` is not 2-D or has non-finite values, ``window_volumes`` or ``step`` is
        below 1, the series is shorter than one window, or ``summary`` is unknown.
    """
    series = np.asarray(series, dtype=float)
    if series.ndim != 2:
        raise ValueError(f"series must be a (n_features, n_volumes) array; got shape "
                         f"{series.shape}.")
    window_volumes = int(window_volumes)
    step = window_volumes if step is None else int(step)
    if window_volumes < 1 or step < 1:
        raise ValueError(f"window_volumes and step must be at least 1 volume; got "
                         f"{window_volumes} and {step}.")
    if summary not in ("mean", "flatten"):
        raise ValueError(f"summary must be 'mean' or 'flatten'; got {summary!r}.")
    n_features, n_volumes = series.shape
    if n_volumes < window_volumes:
        raise ValueError(f"the series has {n_volumes} volumes, fewer than one window of "
                         f"{window_volumes}; use shorter windows.")
    bad = int(np.size(series) - np.isfinite(series).sum())
    if bad:
        raise ValueError(f"series has {bad} non-finite values; interpolate or drop those "
                         "volumes (for example censored ones) before windowing.")
    windows = np.lib.stride_tricks.sliding_window_view(series, window_volumes, axis=1)
    windows = windows[:, ::step]                       # (n_features, n_windows, window)
    window_starts = np.arange(windows.shape[1], dtype=np.int64) * step
    if summary == "mean":
        X = windows.mean(axis=2).T
    else:
        X = windows.transpose(1, 0, 2).reshape(windows.shape[1], n_features * window_volumes)
    return np.ascontiguousarray(X), window_starts


def default_classifier(C: float = 1.0):
    """The default decoder: ``StandardScaler`` then multinomial ``LogisticRegression``.

    Parameters
    ----------
    C : float
        Inverse L2 penalty of the logistic regression (scikit-learn's ``C``).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; :func:`decode_stimulus` clones and fits it once per fold, so the
        standardisation uses the training windows of that fold only.
    """
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))


class TemplateMatcher(ClassifierMixin, BaseEstimator):
    """Nearest class template by Pearson correlation: between-subject time-segment
    classification.

    ``fit`` averages the training rows of each label into a template; ``predict`` gives each
    row the label of the template it correlates with best (Pearson r across features).
    With one label per window of a film and the participants as groups, this is the
    between-subject time-segment classification of naturalistic imaging (Haxby et al. 2011,
    Neuron 72:404): which window of the film is a held-out person watching, judged by how
    well their pattern matches the other people's mean pattern of each window. Unlike a
    classifier of whole segments on window means, it does not need the segments to differ in
    their mean, which BOLD, centred per run, never does.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The labels, sorted.
    templates_ : ndarray, shape (n_classes, n_features)
        Mean training row of each label, standardised across features (mean 0, SD 1).
    """

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        sums = np.zeros((self.classes_.size, X.shape[1]))
        np.add.at(sums, codes.ravel(), X)
        counts = np.bincount(codes.ravel(), minlength=self.classes_.size)[:, None]
        self.templates_ = _standardise_rows(sums / counts)
        return self

    def predict(self, X):
        scores = _standardise_rows(np.asarray(X, dtype=float)) @ self.templates_.T
        return self.classes_[np.argmax(scores, axis=1)]


def _standardise_rows(X):
    """Rows minus their mean, over their SD (a constant row stays 0)."""
    X = X - X.mean(axis=1, keepdims=True)
    sd = X.std(axis=1, keepdims=True)
    return X / np.where(sd > 0, sd, 1.0)


@dataclass(frozen=True)
class DecodingResult:
    """Cross-validated decoding of stimulus labels (:func:`decode_stimulus`).

    Attributes
    ----------
    accuracy : float
        Fraction of held-out windows classified correctly, pooled over folds
        (``n_correct / n_windows``).
    n_correct, n_windows : int
        Correct held-out predictions and windows (every window is held out once).
    ci_low, ci_high : float
        Exact (Clopper-Pearson) confidence interval of ``accuracy`` as a binomial proportion,
        at ``confidence``.
    chance : float
        Accuracy of always predicting the most frequent label of each fold's training windows
        (ties: the first label in sorted order), pooled over folds like ``accuracy``.
    n_classes : int
        Distinct labels.
    p_value : float
        Permutation p of ``accuracy``; NaN with ``n_permutations == 0``.
    n_permutations : int
        Permutations of the labels behind ``p_value``.
    null_mean_accuracy : float
        Mean accuracy over the permutations: the chance level the classifier actually reaches
        without information (NaN with no permutations).
    folds : int
        Cross-validation folds (one per group).
    permutation : str
        Permutation scheme used: ``"blocks"`` or ``"groups"``.
    confidence : float
        Confidence level of ``ci_low`` and ``ci_high``.
    classes : ndarray, shape (n_classes,)
        The labels, sorted.
    predictions : ndarray, shape (n_windows,)
        Out-of-fold predicted label of each window, in the input order.
    null_accuracies : ndarray, shape (n_permutations,)
        Accuracy of each permutation.
    """

    accuracy: float
    n_correct: int
    n_windows: int
    ci_low: float
    ci_high: float
    chance: float
    n_classes: int
    p_value: float
    n_permutations: int
    null_mean_accuracy: float
    folds: int
    permutation: str
    confidence: float
    classes: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)
    null_accuracies: np.ndarray = field(repr=False)


def _check_labels(name, values, n_windows):
    values = np.asarray(values)
    if values.ndim != 1 or values.shape[0] != n_windows:
        raise ValueError(f"{name} must have one entry per window ({n_windows}); got shape "
                         f"{values.shape}.")
    missing = pd.isna(values)
    if np.any(missing):
        raise ValueError(f"{name} has {int(np.sum(missing))} missing (NaN/None) entries; "
                         "drop those windows.")
    try:
        unique, codes = np.unique(values, return_inverse=True)
    except TypeError as error:
        raise ValueError(f"{name} mixes types that cannot be sorted ({error}); use one type, "
                         "for example strings.") from error
    return unique, codes.ravel()


def _check_design(class_codes, group_codes, classes, group_names):
    if group_names.size < 2:
        raise ValueError(f"decoding across groups needs at least 2 groups; got "
                         f"{group_names.size} ('{group_names[0]}'). Give the participant or "
                         "run of each window as groups.")
    if classes.size < 2:
        raise ValueError(f"decoding needs at least 2 stimulus labels; got {classes.size} "
                         f"('{classes[0]}').")
    present = np.zeros((group_names.size, classes.size), dtype=bool)
    present[group_codes, class_codes] = True
    in_groups = present.sum(axis=0)
    only_one = np.flatnonzero(in_groups < 2)
    if only_one.size:
        lines = [f"'{classes[c]}' (only in group '{group_names[present[:, c]][0]}')"
                 for c in only_one[:5]]
        raise ValueError(
            f"label(s) {', '.join(lines)} occur in a single group, so the classifier trained "
            "on the other groups never sees them and cannot predict them when that group is "
            "held out. Drop those windows, or group so that every label occurs in at least 2 "
            "groups (for example participants who all watched the same films).")
    return present


def _blocks(class_codes, group_codes, n_groups):
    """Blocks of consecutive windows (input order) with the same group and label."""
    block = np.empty(class_codes.size, dtype=np.int64)
    block_group, block_class = [], []
    offset = 0
    for g in range(n_groups):
        index = np.flatnonzero(group_codes == g)
        codes = class_codes[index]
        start = np.r_[True, codes[1:] != codes[:-1]]
        block[index] = offset + np.cumsum(start) - 1
        block_group.extend([g] * int(start.sum()))
        block_class.extend(codes[start].tolist())
        offset += int(start.sum())
    return block, np.asarray(block_group), np.asarray(block_class)


def _permuter(class_codes, group_codes, n_groups, scheme):
    """A function ``rng -> permuted class codes`` for ``scheme`` ("blocks" or "groups")."""
    if scheme == "groups":
        group_class = np.zeros(n_groups, dtype=np.int64)
        group_class[group_codes] = class_codes

        def permute(rng):
            return rng.permutation(group_class)[group_codes]

        return permute
    block, block_group, block_class = _blocks(class_codes, group_codes, n_groups)
    members = [np.flatnonzero(block_group == g) for g in range(n_groups)]

    def permute(rng):
        shuffled = block_class.copy()
        for index in members:
            shuffled[index] = rng.permutation(block_class[index])
        return shuffled[block]

    return permute


def _cross_validated(estimator, X, y, splits):
    """Out-of-fold predictions of ``estimator`` (cloned and fitted per fold)."""
    predicted = np.empty_like(y)
    for train, test in splits:
        predicted[test] = clone(estimator).fit(X[train], y[train]).predict(X[test])
    return predicted


def decode_stimulus(X, labels, groups, *, n_permutations: int = 1000, seed=0,
                    classifier=None, confidence: float = 0.95, permutation: str = "auto",
                    n_jobs: int | None = None) -> DecodingResult:
    """Classify the stimulus of each window across groups; accuracy, CI, chance and p-value.

    Parameters
    ----------
    X : array_like, shape (n_windows, n_features)
        One feature vector per window (:func:`window_features`), any units. Windows of a
        group are expected in temporal order (the permutation keeps neighbours together).
    labels : array_like, shape (n_windows,)
        Stimulus of each window (for example the film), any sortable type.
    groups : array_like, shape (n_windows,)
        Cross-validation group of each window: participant (train on the other participants,
        test on the held-out one) or run. Every label must occur in at least 2 groups.
    n_permutations : int
        Label permutations for the p-value; 0 skips the test (p is NaN).
    seed : int, numpy.random.Generator or None
        Seed of the permutations (the same seed gives the same p-value). The default
        classifier is deterministic.
    classifier : sklearn estimator or None
        Any scikit-learn classifier (``fit``/``predict``), cloned and fitted once per fold;
        None uses :func:`default_classifier` (``StandardScaler`` + multinomial
        ``LogisticRegression(C=1.0)``), so features are standardised with each fold's training
        windows only (no information from the held-out group).
    confidence : float
        Confidence level of the Clopper-Pearson interval, in (0, 1).
    permutation : {"auto", "blocks", "groups"}
        How the labels are permuted for the null (see Notes). ``"auto"``: ``"groups"`` where
        every group has a single label, otherwise ``"blocks"``.
    n_jobs : int or None
        Processes for the permutations (joblib; None or 1: none). The result does not depend
        on it.

    Returns
    -------
    DecodingResult
        ``accuracy``, ``n_correct``, ``n_windows``, ``ci_low``, ``ci_high``, ``chance``,
        ``n_classes``, ``p_value``, ``null_mean_accuracy``, out-of-fold ``predictions`` and
        ``folds``; accuracies and ``chance`` are fractions in [0, 1].

    Raises
    ------
    ValueError
        If ``X`` is not 2-D, has non-finite values or a row count unlike ``labels`` and
        ``groups``; labels or groups are missing; there are fewer than 2 groups or 2 labels;
        a label occurs in one group only (held out, it never appears in training: regroup or
        drop it); ``confidence``, ``n_permutations`` or ``permutation`` is invalid, or
        ``permutation`` does not fit the design.

    Notes
    -----
    Cross-validation is :class:`sklearn.model_selection.LeaveOneGroupOut`; the accuracy is
    pooled over all held-out windows (not averaged over folds), so that it is a binomial
    proportion with ``scipy.stats.binomtest(n_correct, n_windows).proportion_ci(confidence,
    method="exact")`` as its interval.

    **Chance** is the accuracy of :class:`sklearn.dummy.DummyClassifier`
    (``strategy="most_frequent"``) in the same folds, pooled the same way: 1 / n_classes for
    balanced labels within each group (0.25 for 4 films). It is the score of a rule that
    ignores the features, but the training folds' label frequencies can make it differ from
    what a classifier without information reaches: with one label per group and balanced
    groups, the held-out group's label is always the rarest in training and this chance is
    0. ``null_mean_accuracy``, the mean over permutations, is the empirical chance level
    under the null; the p-value, not ``chance``, is the test.

    **Permutation null**: "the features carry no information about the label", with the
    dependence between neighbouring windows kept. Each permutation reassigns labels to whole
    units, reruns the same cross-validation (classifier refitted in every fold) and scores
    against the permuted labels; ``p = (1 + #{permuted n_correct >= n_correct}) / (1 +
    n_permutations)``.

    - ``"blocks"`` (labels vary within groups, e.g. participants who each watched every
      film): a block is a maximal run of consecutive windows of one group with one label.
      Within each group the blocks' labels are shuffled, so each group keeps its labels and,
      for one block per film, gets a random relabelling of its films. Windows of one block
      stay together (their dependence is kept), and the held-out group's labels are still in
      training. Shuffling single windows, as ``permutation_test_score(groups=...)`` does,
      treats dependent neighbours as independent and gives too small p-values.
    - ``"groups"`` (one label per group, e.g. one film per run): the groups' labels are
      shuffled across groups. Shuffling within groups would change nothing.

    Labels that are confounded with something else the features carry (the films always in
    the same order, so a label also codes time in the session) are decodable under this
    test too; counterbalance the order or regress such confounds out first.

    The number of distinct permutations limits the smallest reachable p (few groups with
    few blocks give few); with ``n_permutations`` larger than that, repeated
    permutations are drawn.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be a (n_windows, n_features) array; got shape {X.shape}.")
    bad = int(X.size - np.isfinite(X).sum())
    if bad:
        raise ValueError(f"X has {bad} non-finite values; drop or interpolate those windows "
                         "or features first.")
    n_windows = X.shape[0]
    classes, class_codes = _check_labels("labels", labels, n_windows)
    group_names, group_codes = _check_labels("groups", groups, n_windows)
    present = _check_design(class_codes, group_codes, classes, group_names)
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie between 0 and 1; got {confidence}.")
    n_permutations = int(n_permutations)
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be 0 or more; got {n_permutations}.")
    if permutation not in PERMUTATIONS:
        raise ValueError(f"permutation must be one of {PERMUTATIONS}; got {permutation!r}.")
    constant = bool(np.all(present.sum(axis=1) == 1))
    if permutation == "auto":
        permutation = "groups" if constant else "blocks"
    elif permutation == "blocks" and constant:
        raise ValueError("every group has a single label, so shuffling blocks within groups "
                         "changes nothing; use permutation='groups'.")
    elif permutation == "groups" and not constant:
        raise ValueError("labels vary within groups, so groups have no single label to "
                         "shuffle; use permutation='blocks'.")

    estimator = default_classifier() if classifier is None else classifier
    splits = list(LeaveOneGroupOut().split(X, class_codes, group_codes))
    predicted = _cross_validated(estimator, X, class_codes, splits)
    n_correct = int(np.sum(predicted == class_codes))
    chance_predicted = _cross_validated(DummyClassifier(strategy="most_frequent"), X,
                                        class_codes, splits)
    chance = float(np.mean(chance_predicted == class_codes))
    interval = stats.binomtest(n_correct, n_windows).proportion_ci(
        confidence_level=float(confidence), method="exact")

    null_correct = np.zeros(n_permutations, dtype=np.int64)
    if n_permutations:
        permute = _permuter(class_codes, group_codes, group_names.size, permutation)
        rng = np.random.default_rng(seed)
        permuted = [permute(rng) for _ in range(n_permutations)]

        def score(y):
            return int(np.sum(_cross_validated(estimator, X, y, splits) == y))

        if n_jobs in (None, 1):
            null_correct[:] = [score(y) for y in permuted]
        else:
            from joblib import Parallel, delayed

            null_correct[:] = Parallel(n_jobs=n_jobs)(delayed(score)(y) for y in permuted)
        p_value = float((1 + np.sum(null_correct >= n_correct)) / (1 + n_permutations))
        null_mean = float(null_correct.mean() / n_windows)
    else:
        p_value = null_mean = float("nan")
    accuracy = n_correct / n_windows
    logger.info("decoding %d labels from %d windows x %d features, %d folds: accuracy %.3f "
                "(chance %.3f, null mean %.3f), p = %.4g", classes.size, n_windows, X.shape[1],
                len(splits), accuracy, chance, null_mean, p_value)
    return DecodingResult(
        accuracy=float(accuracy), n_correct=n_correct, n_windows=int(n_windows),
        ci_low=float(interval.low), ci_high=float(interval.high), chance=chance,
        n_classes=int(classes.size), p_value=p_value, n_permutations=n_permutations,
        null_mean_accuracy=null_mean, folds=len(splits), permutation=permutation,
        confidence=float(confidence), classes=classes, predictions=classes[predicted],
        null_accuracies=null_correct / n_windows)


def decoding_table(results: dict[str, DecodingResult]) -> pd.DataFrame:
    """One row per feature set: the ``_desc-decoding_metrics.tsv`` table.

    Parameters
    ----------
    results : dict of str to DecodingResult
        Feature set name (for example ``"samba_latent"``, ``"band_power"``,
        ``"observed_bold"``, ``"ridge_prediction"``) to its :func:`decode_stimulus` result.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS` (``feature_set``, ``accuracy``, ``ci_low``,
        ``ci_high``, ``chance``, ``n_classes``, ``n_windows``, ``n_correct``, ``p_value``,
        ``n_permutations``, then ``null_mean_accuracy``, ``confidence_level``, ``n_folds``,
        ``permutation``), rows in the order of ``results``; described by
        :func:`decoding_column_docs`.
    """
    rows = [{"feature_set": str(name), "accuracy": r.accuracy, "ci_low": r.ci_low,
             "ci_high": r.ci_high, "chance": r.chance, "n_classes": r.n_classes,
             "n_windows": r.n_windows, "n_correct": r.n_correct, "p_value": r.p_value,
             "n_permutations": r.n_permutations, "null_mean_accuracy": r.null_mean_accuracy,
             "confidence_level": r.confidence, "n_folds": r.folds,
             "permutation": r.permutation}
            for name, r in results.items()]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def decoding_column_docs() -> dict:
    """Sidecar entries (``Description``, ``Units``) of the :func:`decoding_table` columns.

    Returns
    -------
    dict
        Column name to ``{"Description": str, "Units": str}``, for every column of
        :data:`TABLE_COLUMNS`; ``"fraction"`` marks a proportion in [0, 1], ``"count"`` a
        number of items, ``"n/a"`` a name.
    """
    fraction, count, name = "fraction", "count", "n/a"
    docs = {
        "feature_set": ("Features the stimulus was decoded from", name),
        "accuracy": (("Fraction of held-out windows whose stimulus was classified correctly, "
                      "pooled over leave-one-group-out folds"), fraction),
        "ci_low": (("Lower bound of the exact (Clopper-Pearson) binomial confidence interval "
                    "of accuracy, at confidence_level"), fraction),
        "ci_high": (("Upper bound of the exact (Clopper-Pearson) binomial confidence interval "
                     "of accuracy, at confidence_level"), fraction),
        "chance": (("Accuracy of always predicting the most frequent label of each fold's "
                    "training windows, pooled over folds"), fraction),
        "n_classes": ("Distinct stimulus labels", count),
        "n_windows": ("Windows classified (each held out once)", count),
        "n_correct": ("Held-out windows classified correctly", count),
        "p_value": (("Permutation p of accuracy: (1 + permutations scoring at least as well) / "
                     "(1 + n_permutations), labels permuted in whole blocks within groups or "
                     "across groups (see permutation)"), fraction),
        "n_permutations": ("Label permutations behind p_value", count),
        "null_mean_accuracy": (("Mean accuracy over the label permutations (empirical chance "
                                "level)"), fraction),
        "confidence_level": ("Confidence level of ci_low and ci_high", fraction),
        "n_folds": ("Cross-validation folds (leave one group out)", count),
        "permutation": (("Permutation scheme: blocks (runs of windows with one label shuffled "
                         "within each group) or groups (group labels shuffled across groups)"),
                        name),
    }
    return {column: {"Description": text, "Units": unit}
            for column, (text, unit) in docs.items()}
