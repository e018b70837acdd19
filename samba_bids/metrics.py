"""Agreement between predicted and observed BOLD, per parcel, and summaries.

Correlations are computed per parcel over the given (held-out) volumes, as NeuroBOLT reports
them, not pooled over parcels and time as SAMBA's public code did (pooling mixes differences
between parcel means into the score).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def _rowwise_pearson(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a**2).sum(axis=1) * (b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / denominator
    r = np.where(denominator > 0, r, np.nan)
    return np.clip(r, -1.0, 1.0)


def parcel_metrics(predicted, observed, volumes, names) -> pd.DataFrame:
    """Pearson and Spearman correlation of predicted and observed BOLD per parcel.

    Parameters
    ----------
    predicted, observed : ndarray, shape (M, V)
        Parcel time series over the whole run.
    volumes : array_like of int
        Volume indices to score (e.g. ``split.test``).
    names : sequence of str, length M
        Parcel names.

    Returns
    -------
    pandas.DataFrame
        One row per parcel: ``parcel``, ``pearson_r``, ``spearman_rho`` (scipy.stats
        definitions; Spearman = Pearson of average ranks) and ``n_volumes``. A correlation is
        NaN where either series is constant over ``volumes``.

    Raises
    ------
    ValueError
        If shapes disagree, fewer than 3 volumes are given, or an index is out of range.
    """
    predicted = np.asarray(predicted, dtype=float)
    observed = np.asarray(observed, dtype=float)
    volumes = np.asarray(volumes, dtype=np.int64).ravel()
    names = [str(n) for n in names]
    if predicted.shape != observed.shape or predicted.ndim != 2:
        raise ValueError(f"predicted {predicted.shape} and observed {observed.shape} must be "
                         "equal (parcels, volumes) arrays.")
    if len(names) != predicted.shape[0]:
        raise ValueError(f"{len(names)} names for {predicted.shape[0]} parcels.")
    if volumes.size < 3:
        raise ValueError(f"at least 3 volumes are needed for a correlation; got {volumes.size}.")
    if volumes.min() < 0 or volumes.max() >= predicted.shape[1]:
        raise ValueError(f"volume indices must lie in 0..{predicted.shape[1] - 1}.")
    pred = predicted[:, volumes]
    obs = observed[:, volumes]
    pearson = _rowwise_pearson(pred, obs)
    spearman = _rowwise_pearson(stats.rankdata(pred, axis=1), stats.rankdata(obs, axis=1))
    return pd.DataFrame({"parcel": names, "pearson_r": pearson, "spearman_rho": spearman,
                         "n_volumes": volumes.size})


def summarise(df: pd.DataFrame) -> dict:
    """Summary statistics of :func:`parcel_metrics` output.

    Returns
    -------
    dict
        For ``pearson_r`` and ``spearman_rho``: ``median_*``, ``mean_*``, ``q25_*``, ``q75_*``,
        ``min_*``, ``max_*``, ``fraction_positive_*`` (over parcels, NaNs ignored); plus
        ``n_parcels`` and ``n_parcels_nan``. Plain Python floats and ints (JSON-ready); NaN
        where no parcel has a finite value.
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
    return out
