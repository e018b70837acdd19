"""Agreement between predicted and observed BOLD, per parcel, and summaries.

Correlations are computed per parcel over the given (held-out) volumes, as NeuroBOLT reports
them, not pooled over parcels and time as SAMBA's public code did (pooling mixes differences
between parcel means into the score); :func:`pooled_spearman` gives the pooled number for
comparison with the paper.

Significance per parcel: the observed correlation against a phase-randomised null (Theiler et
al. 1992, Physica D 58:77; Prichard & Theiler 1994, PRL 73:951), which keeps the predicted
series' amplitude spectrum and hence its autocorrelation (BOLD samples are not independent,
so the parametric p of a correlation is too small). p-values are corrected over parcels with
Benjamini & Hochberg's false discovery rate (1995, JRSS B 57:289).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def pearson_r(a, b, *, omit_nan: bool = False, min_count: int = 3) -> np.ndarray:
    """Pearson r over the last axis, broadcasting the leading axes: the one implementation.

    Parameters
    ----------
    a, b : array-like, shape (..., T)
        Series (for example parcels x volumes); leading axes broadcast.
    omit_nan : bool
        Leave out, per series, the samples where either is not finite (the report's figures
        score series with gaps); then a series with fewer than ``min_count`` valid samples
        gives NaN.
    min_count : int
        With ``omit_nan``, the fewest valid samples that give an r.

    Returns
    -------
    ndarray, shape (...)
        r in [-1, 1]; NaN for a constant series.

    Notes
    -----
    The sample Pearson correlation, as ``scipy.stats.pearsonr`` (tested against it), vectorised
    over series. The training loss has its own differentiable torch version
    (:func:`samba_bids.model.losses.pearson_r`), which adds an epsilon for gradients.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if omit_nan:
        keep = np.isfinite(a) & np.isfinite(b)
        n = keep.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(keep, a, 0.0)
            b = np.where(keep, b, 0.0)
            a = np.where(keep, a - (a.sum(axis=-1) / n)[..., None], 0.0)
            b = np.where(keep, b - (b.sum(axis=-1) / n)[..., None], 0.0)
    else:
        a = a - a.mean(axis=-1, keepdims=True)
        b = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a**2).sum(axis=-1) * (b**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=-1) / denominator
    valid = denominator > 0
    if omit_nan:
        valid = valid & (n >= min_count)
    return np.clip(np.where(valid, r, np.nan), -1.0, 1.0)


def pearson_matrix(a, b) -> np.ndarray:
    """Pearson r between every row of ``b`` and every row of ``a`` (a correlation matrix).

    Parameters
    ----------
    a : ndarray, shape (N, T)
    b : ndarray, shape (M, T)

    Returns
    -------
    ndarray, shape (M, N)
        ``r[m, n]``; 0 where a row is constant (the graphs use it as an edge weight).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)

    def _z(x):
        x = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)

    return _z(b) @ _z(a).T


def _check_series(predicted, observed, volumes):
    predicted = np.asarray(predicted, dtype=float)
    observed = np.asarray(observed, dtype=float)
    volumes = np.asarray(volumes, dtype=np.int64).ravel()
    if predicted.shape != observed.shape or predicted.ndim != 2:
        raise ValueError(f"predicted {predicted.shape} and observed {observed.shape} must be "
                         "equal (parcels, volumes) arrays.")
    if volumes.size < 3:
        raise ValueError(f"at least 3 volumes are needed for a correlation; got {volumes.size}.")
    if volumes.min() < 0 or volumes.max() >= predicted.shape[1]:
        raise ValueError(f"volume indices must lie in 0..{predicted.shape[1] - 1}.")
    return predicted[:, volumes], observed[:, volumes], volumes


def phase_randomize(x, n: int, rng=None) -> np.ndarray:
    """Phase-randomised surrogates: same amplitude spectrum, uniformly random phases.

    Parameters
    ----------
    x : ndarray, shape (..., T)
        Series (each one along the last axis).
    n : int
        Surrogates per series.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    ndarray, shape (n, ..., T)
        Real surrogates. Their ``|rfft|`` equals that of ``x`` (the mean, i.e. the zero
        frequency, and for even ``T`` the Nyquist coefficient are kept as they are, since
        their phase must stay real), hence the same mean, variance and autocorrelation
        (circular). Phases are drawn independently for every series and surrogate.

    Raises
    ------
    ValueError
        If ``n < 1`` or ``T < 2``.
    """
    x = np.asarray(x, dtype=float)
    if int(n) < 1:
        raise ValueError(f"n must be at least 1; got {n}.")
    length = x.shape[-1]
    if length < 2:
        raise ValueError(f"series need at least 2 samples; got {length}.")
    rng = np.random.default_rng(rng)
    spectrum = np.fft.rfft(x, axis=-1)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(int(n),) + spectrum.shape)
    phases[..., 0] = 0.0
    if length % 2 == 0:
        phases[..., -1] = 0.0
    return np.fft.irfft(spectrum * np.exp(1j * phases), n=length, axis=-1)


def null_pvalues(predicted, observed, volumes, *, n_null: int = 1000, seed=0,
                 chunk_elements: int = 2_000_000) -> np.ndarray:
    """Two-sided p-value of each parcel's Pearson r against a phase-randomised null.

    Parameters
    ----------
    predicted, observed : ndarray, shape (M, V)
        Parcel time series over the whole run.
    volumes : array_like of int
        Volumes scored (e.g. ``split.test``); the surrogates are made from the predicted
        series over these volumes only.
    n_null : int
        Surrogates per parcel.
    seed : int, numpy.random.Generator or None
        Seed of the surrogates (the same seed gives the same p-values).
    chunk_elements : int
        Surrogate values held at once (memory bound); does not change the result.

    Returns
    -------
    ndarray, shape (M,)
        ``p = (1 + #{|r_null| >= |r|}) / (1 + n_null)`` (Phipson & Smyth 2010: never 0; the
        smallest possible value is ``1 / (1 + n_null)``); NaN where r is NaN.
    """
    pred, obs, _ = _check_series(predicted, observed, volumes)
    n_null = int(n_null)
    if n_null < 1:
        raise ValueError(f"n_null must be at least 1; got {n_null}.")
    rng = np.random.default_rng(seed)
    r = np.abs(pearson_r(pred, obs))
    exceed = np.zeros(pred.shape[0], dtype=np.int64)
    per_chunk = max(1, int(chunk_elements) // pred.size)
    done = 0
    while done < n_null:
        count = min(per_chunk, n_null - done)
        r_null = np.abs(pearson_r(phase_randomize(pred, count, rng), obs[None]))
        with np.errstate(invalid="ignore"):
            exceed += (r_null >= r[None] - 1e-12).sum(axis=0)
        done += count
    p = (1.0 + exceed) / (1.0 + n_null)
    return np.where(np.isfinite(r), p, np.nan)


def fdr_bh(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaNs are left out of the family and kept NaN.

    Parameters
    ----------
    p_values : array_like, shape (M,)

    Returns
    -------
    ndarray, shape (M,)
        ``scipy.stats.false_discovery_control(p, method="bh")`` on the finite entries.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = stats.false_discovery_control(p[finite], method="bh")
    return out


def parcel_metrics(predicted, observed, volumes, names, *, n_null: int = 0, seed=0,
                   fdr_alpha: float = 0.05) -> pd.DataFrame:
    """Pearson and Spearman correlation of predicted and observed BOLD per parcel.

    Parameters
    ----------
    predicted, observed : ndarray, shape (M, V)
        Parcel time series over the whole run.
    volumes : array_like of int
        Volume indices to score (e.g. ``split.test``).
    names : sequence of str, length M
        Parcel names.
    n_null : int
        Phase-randomised surrogates for the p-values (:func:`null_pvalues`; 1000 is a good
        value); 0 (default, for backward compatibility) computes no p-values.
    seed : int
        Seed of the surrogates.
    fdr_alpha : float
        False discovery rate for ``significant``.

    Returns
    -------
    pandas.DataFrame
        One row per parcel: ``parcel``, ``pearson_r``, ``spearman_rho`` (scipy.stats
        definitions; Spearman = Pearson of average ranks) and ``n_volumes``. A correlation is
        NaN where either series is constant over ``volumes``. With ``n_null > 0`` also
        ``p_value`` (of ``pearson_r``, two-sided, phase-randomised null), ``p_fdr``
        (Benjamini-Hochberg over the parcels, :func:`fdr_bh`) and ``significant``
        (``p_fdr < fdr_alpha``; False where the p-value is NaN).

    Raises
    ------
    ValueError
        If shapes disagree, fewer than 3 volumes are given, or an index is out of range.
    """
    names = [str(n) for n in names]
    pred, obs, volumes = _check_series(predicted, observed, volumes)
    if len(names) != pred.shape[0]:
        raise ValueError(f"{len(names)} names for {pred.shape[0]} parcels.")
    pearson = pearson_r(pred, obs)
    spearman = pearson_r(stats.rankdata(pred, axis=1), stats.rankdata(obs, axis=1))
    frame = pd.DataFrame({"parcel": names, "pearson_r": pearson, "spearman_rho": spearman,
                          "n_volumes": volumes.size})
    if n_null:
        if not 0 < fdr_alpha < 1:
            raise ValueError(f"fdr_alpha must lie between 0 and 1; got {fdr_alpha}.")
        p = null_pvalues(pred, obs, np.arange(volumes.size), n_null=n_null, seed=seed)
        p_fdr = fdr_bh(p)
        frame["p_value"] = p
        frame["p_fdr"] = p_fdr
        frame["significant"] = np.nan_to_num(p_fdr, nan=1.0) < fdr_alpha
    return frame


def pooled_spearman(predicted, observed, volumes, *, zscore: bool = False) -> float:
    """Spearman rho over all (parcel, volume) pairs pooled, as SAMBA's public code reports.

    Parameters
    ----------
    predicted, observed : ndarray, shape (M, V)
    volumes : array_like of int
        Volumes scored.
    zscore : bool
        False (default, as the paper's number: SAMBA_NOTES.md, "pooled over parcels and time
        in the authors' code", with no per-parcel normalisation described): the raw values
        are ranked together, so differences between parcel means and scales count as
        "prediction" too. True: z-score each parcel's predicted and observed series over
        ``volumes`` first, which removes that between-parcel part.

    Returns
    -------
    float
        ``scipy.stats.spearmanr`` of the flattened ``(M * n_volumes,)`` arrays (average ranks
        for ties); NaN if either is constant.
    """
    pred, obs, _ = _check_series(predicted, observed, volumes)
    if zscore:
        def _z(x):
            sd = x.std(axis=1, keepdims=True)
            return (x - x.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
        pred, obs = _z(pred), _z(obs)
    return float(pearson_r(stats.rankdata(pred.ravel()), stats.rankdata(obs.ravel())))


def windowed_pooled_spearman(predicted, observed, volumes, window: int, *,
                             zscore: bool = False) -> float:
    """:func:`pooled_spearman` on consecutive windows of ``window`` volumes, averaged.

    SAMBA's paper scores predictions of 30-s windows (15 TRs at TR 2 s) and of 1-minute
    windows this way (``SAMBA_NOTES.md``): within each window the (parcel, volume) pairs are
    ranked together.

    Parameters
    ----------
    predicted, observed : ndarray, shape (M, V)
    volumes : array_like of int
        Volumes scored, in order; cut into windows from the first (a trailing partial window
        is dropped).
    window : int
        Volumes per window.
    zscore : bool
        As :func:`pooled_spearman`, within each window.

    Returns
    -------
    float
        Mean over windows; NaN when ``volumes`` holds no whole window.

    Raises
    ------
    ValueError
        If ``window`` is below 2, or as :func:`pooled_spearman`.
    """
    if int(window) < 2:
        raise ValueError(f"window must be at least 2 volumes; got {window}.")
    volumes = np.asarray(volumes, dtype=int)
    n_windows = len(volumes) // int(window)
    scores = [pooled_spearman(predicted, observed, volumes[i * window:(i + 1) * window],
                              zscore=zscore) for i in range(n_windows)]
    return float(np.nanmean(scores)) if scores else float("nan")


def intersubject_correlation(series) -> tuple[np.ndarray, np.ndarray]:
    """Inter-subject correlation of the same stimulus's BOLD in several people.

    Parameters
    ----------
    series : ndarray, shape (P, M, V)
        P people, M parcels, V volumes on one stimulus-time grid.

    Returns
    -------
    leave_one_out : ndarray, shape (M,)
        Mean over people of the Pearson r between a person and the mean of the others
        (Nastase et al. 2019, Soc Cogn Affect Neurosci 14:667).
    pairwise : ndarray, shape (M,)
        Mean Pearson r over all pairs of people.

    Raises
    ------
    ValueError
        With fewer than two people.
    """
    series = np.asarray(series, dtype=float)
    if series.ndim != 3 or series.shape[0] < 2:
        raise ValueError(f"series must be (P >= 2, M, V); got {series.shape}.")
    n_people = series.shape[0]
    total = series.sum(axis=0)
    loo = np.mean([pearson_r(series[p], (total - series[p]) / (n_people - 1))
                   for p in range(n_people)], axis=0)
    pairs = [pearson_r(series[a], series[b]) for a in range(n_people)
             for b in range(a + 1, n_people)]
    return loo, np.mean(pairs, axis=0)


def group_mean_ceiling(pairwise_isc, n_people: int) -> np.ndarray:
    """The highest Pearson r a perfect model of the shared (stimulus-driven) response can
    reach against the mean BOLD of ``n_people`` people.

    With each person's series ``s + e_p`` (a shared response and independent noise of equal
    variance), the pairwise ISC estimates ``rho = var(s) / var(s + e)`` and the mean of P
    people correlates with ``s`` at ``sqrt(P rho / (1 + (P - 1) rho))`` (the square root of
    the Spearman-Brown reliability of the mean).

    Parameters
    ----------
    pairwise_isc : array_like, shape (M,)
    n_people : int

    Returns
    -------
    ndarray, shape (M,)
        NaN where the ISC is not positive.
    """
    rho = np.asarray(pairwise_isc, dtype=float)
    reliability = n_people * rho / (1.0 + (n_people - 1) * rho)
    with np.errstate(invalid="ignore"):
        return np.where(rho > 0, np.sqrt(np.clip(reliability, 0, 1)), np.nan)


def hrf_recovery(learned_frame: pd.DataFrame, truth_frame: pd.DataFrame) -> pd.DataFrame:
    """Learned against planted HRF time to peak, per BOLD parcel.

    Parameters
    ----------
    learned_frame : pandas.DataFrame
        ``ParcelHRF.parameters_frame(names)``: ``parcel`` and ``time_to_peak_s`` columns.
    truth_frame : pandas.DataFrame
        The planted HRFs: ``time_to_peak_s`` and, ideally, ``parcel``. With ``parcel`` in
        both, rows are matched by name (every learned parcel must be in the truth);
        otherwise by position (same number of rows).

    Returns
    -------
    pandas.DataFrame
        One row per learned parcel, in its order: ``parcel``, ``learned_time_to_peak_s``,
        ``true_time_to_peak_s``, ``abs_error_s``. ``df.attrs["median_abs_error_s"]`` holds
        the median absolute error (also :func:`hrf_recovery_summary`).

    Raises
    ------
    ValueError
        If a column is missing, a parcel has no truth, or the row counts differ.
    """
    for label, frame in (("learned_frame", learned_frame), ("truth_frame", truth_frame)):
        if "time_to_peak_s" not in frame.columns:
            raise ValueError(f"{label} has no time_to_peak_s column.")
    if "parcel" in learned_frame.columns and "parcel" in truth_frame.columns:
        truth = truth_frame.set_index(truth_frame["parcel"].astype(str))["time_to_peak_s"]
        names = learned_frame["parcel"].astype(str)
        missing = sorted(set(names) - set(truth.index))
        if missing:
            raise ValueError(f"no planted HRF for parcel(s) {', '.join(missing[:5])}.")
        true_ttp = truth.loc[names].to_numpy(dtype=float)
    else:
        if len(learned_frame) != len(truth_frame):
            raise ValueError(f"{len(learned_frame)} learned and {len(truth_frame)} planted "
                             "HRFs; give both a parcel column to match them by name.")
        names = (learned_frame["parcel"].astype(str) if "parcel" in learned_frame.columns
                 else pd.Series([str(i) for i in range(len(learned_frame))]))
        true_ttp = truth_frame["time_to_peak_s"].to_numpy(dtype=float)
    learned = learned_frame["time_to_peak_s"].to_numpy(dtype=float)
    frame = pd.DataFrame({"parcel": names.to_numpy(), "learned_time_to_peak_s": learned,
                          "true_time_to_peak_s": true_ttp,
                          "abs_error_s": np.abs(learned - true_ttp)})
    frame.attrs["median_abs_error_s"] = float(np.median(frame["abs_error_s"]))
    return frame


def hrf_recovery_summary(frame: pd.DataFrame) -> dict:
    """Summary of :func:`hrf_recovery`: ``median_abs_error_s``, ``mean_abs_error_s``,
    ``spearman_time_to_peak`` (is the order of the parcels recovered; NaN if constant) and
    ``n_parcels``, as plain Python numbers."""
    errors = frame["abs_error_s"].to_numpy(dtype=float)
    learned = frame["learned_time_to_peak_s"].to_numpy(dtype=float)
    true = frame["true_time_to_peak_s"].to_numpy(dtype=float)
    rho = (float(pearson_r(stats.rankdata(learned), stats.rankdata(true)))
           if len(frame) >= 2 else float("nan"))
    return {"median_abs_error_s": float(np.median(errors)),
            "mean_abs_error_s": float(np.mean(errors)),
            "spearman_time_to_peak": rho, "n_parcels": int(len(frame))}


def summarise(df: pd.DataFrame) -> dict:
    """Summary statistics of :func:`parcel_metrics` output.

    Returns
    -------
    dict
        For ``pearson_r`` and ``spearman_rho``: ``median_*``, ``mean_*``, ``q25_*``, ``q75_*``,
        ``min_*``, ``max_*``, ``fraction_positive_*`` (over parcels, NaNs ignored); plus
        ``n_parcels`` and ``n_parcels_nan``. When ``df`` has a ``significant`` column
        (``parcel_metrics(..., n_null=...)``): ``n_significant`` and ``fraction_significant``
        (parcels significant after FDR over the parcels with a finite p-value). Plain Python
        floats and ints (JSON-ready); NaN where no parcel has a finite value.
    """
    out = {"n_parcels": int(len(df))}
    for column in ("pearson_r", "spearman_rho"):
        values = df[column].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if column == "pearson_r":
            out["n_parcels_nan"] = int(values.size - finite.size)
        if finite.size == 0:
            stats_ = dict.fromkeys(("median", "mean", "q25", "q75", "min", "max",
                                    "fraction_positive"), float("nan"))
        else:
            stats_ = {
                "median": float(np.median(finite)),
                "mean": float(np.mean(finite)),
                "q25": float(np.percentile(finite, 25)),
                "q75": float(np.percentile(finite, 75)),
                "min": float(np.min(finite)),
                "max": float(np.max(finite)),
                "fraction_positive": float(np.mean(finite > 0)),
            }
        out.update({f"{key}_{column}": value for key, value in stats_.items()})
    if "significant" in df.columns:
        tested = (np.isfinite(df["p_value"].to_numpy(dtype=float)) if "p_value" in df.columns
                  else np.ones(len(df), dtype=bool))
        significant = df["significant"].to_numpy(dtype=bool) & tested
        out["n_significant"] = int(significant.sum())
        out["fraction_significant"] = (float(significant.sum() / tested.sum()) if tested.any()
                                       else float("nan"))
    return out


def group_parcel_summary(frames, column: str, *, participants=None) -> pd.DataFrame:
    """Mean and spread of a per-parcel value across participants.

    Runs of one participant are averaged first, so a participant with several runs counts
    once; then the mean, the SD (``ddof=1``; NaN with one participant) and the number of
    participants with a finite value are taken per parcel.

    Parameters
    ----------
    frames : sequence of pandas.DataFrame
        One per run, each with a ``parcel`` column and ``column`` (e.g. the participant
        level's ``desc-samba_metrics.tsv`` with ``pearson_r``, or ``desc-samba_hrf.tsv`` with
        ``time_to_peak_s``).
    column : str
        The value to summarise.
    participants : sequence of str, optional
        Participant of each frame (default: each frame is its own participant).

    Returns
    -------
    pandas.DataFrame
        One row per parcel, in the first frame's order (parcels missing from it appended):
        ``parcel``, ``mean_<column>``, ``sd_<column>``, ``n_<column>``.

    Raises
    ------
    ValueError
        If no frame is given, a frame lacks ``parcel`` or ``column``, or ``participants`` has
        another length.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("group_parcel_summary needs at least one frame.")
    participants = (list(range(len(frames))) if participants is None else list(participants))
    if len(participants) != len(frames):
        raise ValueError(f"{len(participants)} participants given for {len(frames)} frames.")
    long = []
    for who, frame in zip(participants, frames):
        missing = {"parcel", column} - set(frame.columns)
        if missing:
            raise ValueError(f"a frame lacks the column(s) {sorted(missing)}.")
        long.append(pd.DataFrame({"participant": str(who), "parcel": frame["parcel"].astype(str),
                                  "value": pd.to_numeric(frame[column], errors="coerce")}))
    data = pd.concat(long, ignore_index=True)
    per_participant = data.groupby(["parcel", "participant"], sort=False)["value"].mean()
    grouped = per_participant.groupby(level="parcel", sort=False)
    out = pd.DataFrame({
        f"mean_{column}": grouped.mean(),
        f"sd_{column}": grouped.std(ddof=1),
        f"n_{column}": grouped.count(),
    })
    order = list(dict.fromkeys(list(frames[0]["parcel"].astype(str)) + list(out.index)))
    out = out.reindex(order)
    out.index.name = "parcel"
    return out.reset_index()
