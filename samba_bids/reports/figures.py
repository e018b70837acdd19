"""Figures of the participant and group reports, from plain arrays and data frames.

Every ``*_figure`` function takes arrays or frames and returns a :class:`matplotlib.figure.Figure`
made without :mod:`matplotlib.pyplot` (no global figure registry, no display needed), so each
can be tested alone and many can be made in one process without leaking memory.
:func:`figure_to_html` turns a figure into an inline ``<img>`` (base64 PNG) or ``<svg>`` element.

matplotlib and nilearn are imported inside the functions: importing this module writes nothing
(matplotlib creates its font cache in its configuration folder on first import; when that folder
is not writable, :func:`_matplotlib` points ``MPLCONFIGDIR`` at a private temporary folder
instead of letting matplotlib warn).

At about 780 lines this module is longer than the others on purpose: it is a flat list of
thirteen independent figure functions that share the colours, the parcel-name helpers and
:func:`figure_to_html`; both reports use most of them, so a split by report would only move
the shared helpers into a third module.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Colours of the train, validation and test blocks.
BLOCK_COLORS = {"train": "#4c72b0", "validation": "#dd8452", "test": "#55a868"}
OBSERVED_COLOR = "#222222"
PREDICTED_COLOR = "#c44e52"
RIDGE_COLOR = "#8172b3"


def _matplotlib():
    """Import matplotlib with a writable configuration folder and the Agg backend.

    The backend is set to Agg only when :mod:`matplotlib.pyplot` has not been imported yet (an
    interactive session keeps its own); the figures here never use pyplot's state anyway.
    """
    if "MPLCONFIGDIR" not in os.environ and "matplotlib" not in sys.modules:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        target = Path(base) / "matplotlib"
        probe = target if target.exists() else Path(base) if Path(base).exists() else Path.home()
        if not os.access(probe, os.W_OK):
            os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="samba-bids-mpl-")
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    return matplotlib


def _new_figure(width_in: float, height_in: float):
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def network_of(name: str) -> str:
    """Network of a Schaefer-style parcel name (the third ``_`` field).

    ``"7Networks_LH_Vis_1"`` -> ``"Vis"``; ``"7Networks_LH_Sphere3_2"`` -> ``"Sphere3"``. Names
    with fewer than four fields (no network field) give ``"all"``.
    """
    fields = str(name).split("_")
    return fields[2] if len(fields) >= 4 else "all"


def hemisphere_of(name: str) -> str:
    """Hemisphere field (``"LH"``/``"RH"``) of a Schaefer-style name, else ``""``."""
    fields = str(name).split("_")
    return fields[1] if len(fields) >= 4 and fields[1] in ("LH", "RH") else ""


def networks_in_order(names) -> list[str]:
    """Distinct networks of ``names`` in order of first appearance."""
    return list(dict.fromkeys(network_of(n) for n in names))


def parcel_test_r(observed, predicted, test_volumes) -> np.ndarray:
    """Pearson r per parcel between observed and predicted BOLD over the test volumes.

    Parameters
    ----------
    observed, predicted : ndarray, shape (M, V)
        BOLD per parcel and volume. Non-finite samples are left out pairwise per parcel.
    test_volumes : array_like of int
        0-based volume indices of the test block.

    Returns
    -------
    ndarray, shape (M,)
        Pearson r; NaN where fewer than 3 finite pairs remain or a series is constant.
    """
    from ..metrics import pearson_r

    idx = np.asarray(test_volumes, dtype=int)
    return pearson_r(np.asarray(observed, dtype=float)[:, idx],
                     np.asarray(predicted, dtype=float)[:, idx], omit_nan=True, min_count=3)


def rank_parcels(r) -> dict[str, int]:
    """Indices of the best, median and worst parcel by ``r`` (NaNs left out).

    The median parcel is the upper median: position ``n // 2`` of the finite values sorted in
    ascending order (ties broken by parcel order).

    Raises
    ------
    ValueError
        If no value of ``r`` is finite.
    """
    r = np.asarray(r, dtype=float)
    finite = np.flatnonzero(np.isfinite(r))
    if finite.size == 0:
        raise ValueError("No parcel has a finite test correlation; nothing to rank.")
    ascending = finite[np.argsort(r[finite], kind="stable")]
    return {"best": int(ascending[-1]), "median": int(ascending[ascending.size // 2]),
            "worst": int(ascending[0])}


def timeseries_figure(observed, predicted, parcel_names, test_volumes, tr_s: float, *, r=None):
    """Observed and predicted BOLD on the test block for the best, median and worst parcel.

    Parameters
    ----------
    observed, predicted : ndarray, shape (M, V)
        z-scored BOLD per parcel; ``predicted`` may hold NaN where no prediction exists.
    parcel_names : list of str, length M
    test_volumes : array_like of int
        0-based volume indices of the test block.
    tr_s : float
        Repetition time, in s; the time axis is ``volume * tr_s`` (s from the run's start).
    r : array_like, shape (M,), optional
        Test Pearson r per parcel used to rank and title the panels; computed with
        :func:`parcel_test_r` when omitted.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes (best, median, worst) titled ``"<rank>: <parcel> (r = 0.xx)"``, each with an
        observed and a predicted line.

    Raises
    ------
    ValueError
        If shapes disagree, ``test_volumes`` is empty or out of range, or no r is finite.
    """
    observed = np.asarray(observed, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    test_volumes = np.asarray(test_volumes, dtype=int)
    if observed.shape != predicted.shape or observed.ndim != 2:
        raise ValueError(f"observed {observed.shape} and predicted {predicted.shape} must be "
                         "equal (M, V) arrays.")
    if len(parcel_names) != observed.shape[0]:
        raise ValueError(f"{len(parcel_names)} parcel names for {observed.shape[0]} parcels.")
    if test_volumes.size == 0 or test_volumes.min() < 0 or test_volumes.max() >= observed.shape[1]:
        raise ValueError("test_volumes is empty or outside the run's volumes.")
    r = parcel_test_r(observed, predicted, test_volumes) if r is None else np.asarray(r, float)
    ranks = rank_parcels(r)
    time_s = test_volumes * float(tr_s)
    fig = _new_figure(10, 6.2)
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (rank, index) in zip(axes, ranks.items()):
        ax.plot(time_s, observed[index, test_volumes], color=OBSERVED_COLOR, lw=1.2,
                label="observed")
        ax.plot(time_s, predicted[index, test_volumes], color=PREDICTED_COLOR, lw=1.2,
                label="SAMBA predicted")
        ax.set_title(f"{rank}: {parcel_names[index]} (r = {r[index]:.2f})", fontsize=10,
                     loc="left")
        ax.set_ylabel("BOLD (z)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncols=2)
    axes[-1].set_xlabel("time from the start of the run (s)")
    return fig


def split_figure(observed, predicted, tr_s: float, *, train_volumes=(), validation_volumes=(),
                 test_volumes=(), parcel_name: str = "mean over parcels"):
    """One series over the whole run with the train, validation and test blocks shaded.

    Parameters
    ----------
    observed, predicted : ndarray, shape (V,)
        Observed and predicted BOLD of one parcel (or a parcel average), per volume.
    tr_s : float
        Repetition time, in s.
    train_volumes, validation_volumes, test_volumes : array_like of int
        0-based volume indices of each block; each block's contiguous runs are shaded.
    parcel_name : str
        Named in the title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with two lines and one shaded span per contiguous run of each block (labelled
        ``train``, ``validation``, ``test``).
    """
    observed = np.asarray(observed, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    time_s = np.arange(observed.size) * float(tr_s)
    fig = _new_figure(10, 2.6)
    ax = fig.subplots()
    for block, volumes in (("train", train_volumes), ("validation", validation_volumes),
                           ("test", test_volumes)):
        volumes = np.unique(np.asarray(volumes, dtype=int))
        if volumes.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(volumes) > 1)
        starts = np.r_[volumes[0], volumes[breaks + 1]]
        stops = np.r_[volumes[breaks], volumes[-1]]
        for k, (start, stop) in enumerate(zip(starts, stops)):
            ax.axvspan(start * tr_s, (stop + 1) * tr_s, color=BLOCK_COLORS[block], alpha=0.15,
                       lw=0, label=block if k == 0 else None)
    ax.plot(time_s, observed, color=OBSERVED_COLOR, lw=0.9, label="observed")
    ax.plot(time_s, predicted, color=PREDICTED_COLOR, lw=0.9, label="SAMBA predicted")
    ax.set_xlim(0, max(time_s[-1] + tr_s, tr_s) if time_s.size else tr_s)
    ax.set_xlabel("time from the start of the run (s)")
    ax.set_ylabel("BOLD (z)")
    ax.set_title(f"Blocked split over the run ({parcel_name}); unshaded volumes are gaps",
                 fontsize=10, loc="left")
    fig.legend(loc="outside lower center", fontsize=8, ncols=5, frameon=False)
    return fig


def brain_markers_figure(values, centroids_mm, *, title: str = "", cmap: str = "RdBu_r",
                         vmin: float | None = None, vmax: float | None = None,
                         symmetric: bool = False, display_mode: str = "lzry"):
    """Parcel centroids on a glass brain, coloured by one value per parcel.

    Uses :func:`nilearn.plotting.plot_markers`, which works for every space the app writes
    (volumetric and surface parcellations alike have centroids in MNI-like mm).

    Parameters
    ----------
    values : array_like, shape (M,)
        One value per parcel; non-finite parcels are left out.
    centroids_mm : ndarray, shape (M, 3)
        Parcel centroids, in MNI-like mm.
    title : str
        Drawn on the glass brain.
    cmap : str
        matplotlib colour map.
    vmin, vmax : float, optional
        Colour range; from the finite values when omitted.
    symmetric : bool
        Centre the colour range on 0 (``±max|value|``), for correlations.
    display_mode : str
        nilearn display mode (``"lzry"``: left, top, right, back views).

    Returns
    -------
    matplotlib.figure.Figure
        The glass brain with a colour bar.

    Raises
    ------
    ValueError
        If shapes disagree or no value is finite.
    """
    values = np.asarray(values, dtype=float)
    centroids_mm = np.asarray(centroids_mm, dtype=float)
    if centroids_mm.shape != (values.size, 3):
        raise ValueError(f"centroids_mm has shape {centroids_mm.shape}; expected "
                         f"({values.size}, 3).")
    keep = np.isfinite(values) & np.isfinite(centroids_mm).all(axis=1)
    if not keep.any():
        raise ValueError("No parcel has a finite value to plot.")
    vals = values[keep]
    if symmetric:  # rounded up to a tenth, so the colour bar ends on round numbers
        bound = math.ceil(float(np.max(np.abs(vals))) * 10 - 1e-9) / 10 or 1.0
        vmin, vmax = (-bound if vmin is None else vmin), (bound if vmax is None else vmax)
    vmin = float(np.min(vals)) if vmin is None else float(vmin)
    vmax = float(np.max(vals)) if vmax is None else float(vmax)
    if vmax - vmin < 0.2:  # nilearn's colour bar fails on a range below its tick rounding
        centre = (vmax + vmin) / 2.0
        vmin, vmax = centre - 0.1, centre + 0.1
    fig = _new_figure(10, 3.0)
    fig.set_layout_engine(None)
    from nilearn import plotting

    n = int(keep.sum())
    plotting.plot_markers(vals, centroids_mm[keep], figure=fig, node_cmap=cmap, node_vmin=vmin,
                          node_vmax=vmax, node_size=max(12.0, min(60.0, 3000.0 / n)),
                          display_mode=display_mode, title=title or None, alpha=0.85,
                          colorbar=True)
    return fig


def hrf_network_figure(hrf_time_s, hrf_curves, parcel_names, *, canonical_hrf=None,
                       time_to_peak_s=None):
    """Learned HRFs per network: median curve and interquartile band; canonical HRF dashed.

    Parameters
    ----------
    hrf_time_s : ndarray, shape (T,)
        Times after the neural event, in s.
    hrf_curves : ndarray, shape (M, T)
        Each parcel's HRF (normalised to peak 1).
    parcel_names : list of str, length M
        Schaefer-style names; the network is the third ``_`` field (:func:`network_of`).
    canonical_hrf : ndarray, shape (T,), optional
        Drawn dashed (black) for reference.
    time_to_peak_s : array_like, shape (M,), optional
        When given, a second panel shows its distribution per network.

    Returns
    -------
    matplotlib.figure.Figure
        First axes: one median line labelled ``"<network> (n=k)"`` and one filled band per
        network, plus the canonical line labelled ``"canonical (SPM)"``.

    Raises
    ------
    ValueError
        If shapes disagree.
    """
    t = np.asarray(hrf_time_s, dtype=float)
    curves = np.asarray(hrf_curves, dtype=float)
    if curves.ndim != 2 or curves.shape != (len(parcel_names), t.size):
        raise ValueError(f"hrf_curves has shape {curves.shape}; expected "
                         f"({len(parcel_names)}, {t.size}).")
    networks = [network_of(n) for n in parcel_names]
    order = list(dict.fromkeys(networks))
    fig = _new_figure(10, 3.6)
    if time_to_peak_s is not None:
        ax, ax_ttp = fig.subplots(1, 2, width_ratios=[2.2, 1])
    else:
        ax, ax_ttp = fig.subplots(), None
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    for k, network in enumerate(order):
        rows = curves[np.array([n == network for n in networks])]
        color = palette(k % 10)
        q25, q50, q75 = np.nanpercentile(rows, [25, 50, 75], axis=0)
        ax.fill_between(t, q25, q75, color=color, alpha=0.2, lw=0)
        ax.plot(t, q50, color=color, lw=1.6, label=f"{network} (n={rows.shape[0]})")
    if canonical_hrf is not None:
        ax.plot(t, np.asarray(canonical_hrf, dtype=float), color="black", ls="--", lw=1.2,
                label="canonical (SPM)")
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlabel("time after neural event (s)")
    ax.set_ylabel("HRF (peak = 1)")
    ax.set_title("Learned HRFs per network: median and interquartile range", fontsize=10,
                 loc="left")
    ax.legend(fontsize=8, ncols=2 if len(order) > 4 else 1)
    ax.grid(alpha=0.3)
    if ax_ttp is not None:
        ttp = np.asarray(time_to_peak_s, dtype=float)
        data = [ttp[np.array([n == network for n in networks])] for network in order]
        data = [d[np.isfinite(d)] for d in data]
        positions = np.arange(len(order))
        nonempty = [i for i, d in enumerate(data) if d.size]
        if nonempty:
            ax_ttp.boxplot([data[i] for i in nonempty], positions=positions[nonempty],
                           widths=0.6, showfliers=False)
        rng = np.random.default_rng(0)
        for i, d in enumerate(data):
            ax_ttp.scatter(i + rng.uniform(-0.15, 0.15, d.size), d, s=8,
                           color=palette(i % 10), alpha=0.7, zorder=3)
        ax_ttp.set_xticks(positions, order, rotation=45 if len(order) > 4 else 0, fontsize=8)
        ax_ttp.set_xlim(-0.6, len(order) - 0.4)
        ax_ttp.set_ylabel("time to peak (s)")
        ax_ttp.set_title("Time to peak per network", fontsize=10, loc="left")
        ax_ttp.grid(alpha=0.3, axis="y")
    return fig


def _band_labels(band_names, band_ranges_hz):
    labels = []
    for k, name in enumerate(band_names):
        if band_ranges_hz is not None and k < len(band_ranges_hz):
            lo, hi = band_ranges_hz[k]
            labels.append(f"{name}\n{lo:g}–{hi:g} Hz")
        else:
            labels.append(str(name))
    return labels


def attention_figure(attention, band_names, band_ranges_hz=None, *, source_names=None):
    """Learned wavelet attention per band: mean over source parcels, and per source parcel.

    Parameters
    ----------
    attention : ndarray, shape (N_src, n_bands)
        Mean attention weight per source parcel and band (rows sum to 1).
    band_names : list of str, length n_bands
        E.g. ``["A3", "D3", "D2", "D1"]``.
    band_ranges_hz : list of (float, float), optional
        Frequency range of each band, in Hz; added to the band labels.
    source_names : list of str, optional
        Source parcel names; their networks label the heat map's rows when given.

    Returns
    -------
    matplotlib.figure.Figure
        Left axes: one bar per band (mean, error bar = SD over source parcels), chance level
        ``1 / n_bands`` dashed. Right axes: heat map source parcel x band.

    Raises
    ------
    ValueError
        If ``attention`` is not 2-D with one column per band.
    """
    attention = np.asarray(attention, dtype=float)
    if attention.ndim != 2 or attention.shape[1] != len(band_names):
        raise ValueError(f"attention has shape {attention.shape}; expected (N_src, "
                         f"{len(band_names)}).")
    labels = _band_labels(band_names, band_ranges_hz)
    fig = _new_figure(10, 3.6)
    ax_bar, ax_map = fig.subplots(1, 2, width_ratios=[1, 1.4])
    x = np.arange(len(band_names))
    ax_bar.bar(x, np.nanmean(attention, axis=0), yerr=np.nanstd(attention, axis=0),
               color="#4c72b0", alpha=0.85, capsize=3)
    ax_bar.axhline(1.0 / len(band_names), color="0.3", ls="--", lw=1, label="uniform")
    ax_bar.set_xticks(x, labels, fontsize=8)
    ax_bar.set_ylabel("attention weight")
    ax_bar.set_title("Mean over source parcels (± SD)", fontsize=10, loc="left")
    ax_bar.legend(fontsize=8)
    image = ax_map.imshow(attention, aspect="auto", interpolation="nearest", cmap="viridis",
                          vmin=0, vmax=max(float(np.nanmax(attention)), 1e-6))
    ax_map.set_xticks(x, labels, fontsize=8)
    ax_map.set_ylabel("source parcel")
    if source_names is not None and len(source_names) == attention.shape[0]:
        networks = [network_of(n) for n in source_names]
        starts = [i for i in range(len(networks)) if i == 0 or networks[i] != networks[i - 1]]
        if len(starts) <= 40:
            ax_map.set_yticks(starts, [networks[i] for i in starts], fontsize=7)
    ax_map.set_title("Per source parcel", fontsize=10, loc="left")
    fig.colorbar(image, ax=ax_map, label="attention weight")
    return fig


def loss_figure(history: pd.DataFrame, best_epoch: int | None = None):
    """Training and validation loss per epoch, the best epoch marked.

    Parameters
    ----------
    history : DataFrame
        Columns ``epoch``, ``train_loss``, ``val_loss`` (``val_loss`` may be absent or NaN).
    best_epoch : int, optional
        Epoch kept (early stopping); a vertical line labelled ``"best epoch <n>"``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``history`` lacks ``epoch`` or ``train_loss``.
    """
    missing = {"epoch", "train_loss"} - set(history.columns)
    if missing:
        raise ValueError(f"history lacks the columns {sorted(missing)}.")
    fig = _new_figure(7, 3.2)
    ax = fig.subplots()
    epoch = history["epoch"].to_numpy(dtype=float)
    ax.plot(epoch, history["train_loss"].to_numpy(dtype=float), color="#4c72b0",
            label="training")
    if "val_loss" in history.columns and np.isfinite(history["val_loss"].to_numpy(float)).any():
        ax.plot(epoch, history["val_loss"].to_numpy(dtype=float), color="#dd8452",
                label="validation")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="0.2", ls="--", lw=1, label=f"best epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training and validation loss", fontsize=10, loc="left")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def r_histogram_figure(samba_r, ridge_r=None, *, labels=("SAMBA", "ridge (canonical HRF)")):
    """Histograms of per-parcel test Pearson r for SAMBA and, optionally, the ridge baseline.

    Parameters
    ----------
    samba_r : array_like, shape (M,)
    ridge_r : array_like, shape (M,), optional
    labels : tuple of str
        Legend names of the two models.

    Returns
    -------
    matplotlib.figure.Figure
        One histogram per model and a dashed line at each model's median.
    """
    fig = _new_figure(7, 3.2)
    ax = fig.subplots()
    series = [(labels[0], np.asarray(samba_r, dtype=float), PREDICTED_COLOR)]
    if ridge_r is not None:
        series.append((labels[1], np.asarray(ridge_r, dtype=float), RIDGE_COLOR))
    finite_all = np.concatenate([s[np.isfinite(s)] for _, s, _ in series])
    lo, hi = ((float(finite_all.min()), float(finite_all.max())) if finite_all.size
              else (-1.0, 1.0))
    bins = np.linspace(min(lo, 0.0) - 0.02, max(hi, 0.0) + 0.02, 26)
    for label, values, color in series:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            continue
        median = float(np.median(finite))
        ax.hist(finite, bins=bins, color=color, alpha=0.5, label=f"{label} (median {median:.2f})")
        ax.axvline(median, color=color, ls="--", lw=1.2)
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel("test Pearson r per parcel")
    ax.set_ylabel("parcels")
    ax.set_title("Test correlation across parcels", fontsize=10, loc="left")
    ax.legend(fontsize=8)
    return fig


def reverse_figure(frame: pd.DataFrame, band_names=None, band_ranges_hz=None):
    """Reverse direction (BOLD -> band power): test Pearson r per band over source parcels.

    Parameters
    ----------
    frame : DataFrame
        One row per source parcel and band, with columns ``band`` and ``pearson_r``.
    band_names : list of str, optional
        Order of the bands; that of the frame when omitted.
    band_ranges_hz : list of (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        A box (over source parcels) per band.

    Raises
    ------
    ValueError
        If the frame lacks ``band`` or ``pearson_r``.
    """
    missing = {"band", "pearson_r"} - set(frame.columns)
    if missing:
        raise ValueError(f"The reverse metrics lack the columns {sorted(missing)}.")
    bands = list(band_names) if band_names else list(dict.fromkeys(frame["band"].astype(str)))
    data = [frame.loc[frame["band"].astype(str) == b, "pearson_r"].to_numpy(dtype=float)
            for b in bands]
    data = [d[np.isfinite(d)] for d in data]
    fig = _new_figure(7, 3.2)
    ax = fig.subplots()
    x = np.arange(len(bands))
    nonempty = [i for i, d in enumerate(data) if d.size]
    if nonempty:
        ax.boxplot([data[i] for i in nonempty], positions=x[nonempty], widths=0.6)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(x, _band_labels(bands, band_ranges_hz), fontsize=8)
    ax.set_ylabel("test Pearson r")
    ax.set_title("Reverse: predicted vs observed band power, over source parcels", fontsize=10,
                 loc="left")
    return fig


def distribution_figure(table: pd.DataFrame):
    """Group: distributions over participants and runs of the per-run summaries.

    Parameters
    ----------
    table : DataFrame
        One row per participant and run with ``median_pearson_r`` and optionally
        ``ridge_median_pearson_r``, ``fraction_significant``, ``median_time_to_peak_s``.

    Returns
    -------
    matplotlib.figure.Figure
        First axes: median test r per run (SAMBA and ridge, paired runs joined by a line). Then
        one axes each for the fraction of significant parcels and the median time to peak when
        present.

    Raises
    ------
    ValueError
        If ``median_pearson_r`` is missing.
    """
    if "median_pearson_r" not in table.columns:
        raise ValueError("The group table lacks median_pearson_r.")
    extra = [c for c in ("fraction_significant", "median_time_to_peak_s") if c in table.columns
             and np.isfinite(table[c].to_numpy(dtype=float)).any()]
    fig = _new_figure(10, 3.4)
    axes = np.atleast_1d(fig.subplots(1, 1 + len(extra), width_ratios=[1.6] + [1] * len(extra)))
    ax = axes[0]
    samba = table["median_pearson_r"].to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.08, 0.08, samba.size)
    columns = [("SAMBA", samba, PREDICTED_COLOR)]
    if "ridge_median_pearson_r" in table.columns:
        ridge = table["ridge_median_pearson_r"].to_numpy(dtype=float)
        if np.isfinite(ridge).any():
            columns.append(("ridge", ridge, RIDGE_COLOR))
            for k in range(samba.size):
                ax.plot([0 + jitter[k], 1 + jitter[k]], [samba[k], ridge[k]], color="0.7",
                        lw=0.7, zorder=1)
    for pos, (label, values, color) in enumerate(columns):
        finite = values[np.isfinite(values)]
        ax.scatter(pos + jitter, values, color=color, s=22, zorder=3, label=label)
        if finite.size:
            ax.hlines(np.median(finite), pos - 0.25, pos + 0.25, color=color, lw=2.5, zorder=4)
    ax.set_xticks(range(len(columns)), [c[0] for c in columns])
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_ylabel("median test Pearson r over parcels")
    ax.set_title(f"Per run (n = {samba.size}); bar = median", fontsize=10, loc="left")
    from matplotlib.ticker import MaxNLocator

    labels = {"fraction_significant": "fraction of parcels significant (FDR)",
              "median_time_to_peak_s": "median time to peak (s)"}
    for ax_extra, column in zip(axes[1:], extra):
        values = table[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        ax_extra.hist(values, bins=min(15, max(3, values.size)), color="#4c72b0", alpha=0.8)
        ax_extra.set_xlabel(labels[column])
        ax_extra.set_ylabel("runs")
        ax_extra.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def run_r_figure(runs: pd.DataFrame):
    """Participant: median test Pearson r per paired run, SAMBA and the ridge baseline.

    Parameters
    ----------
    runs : DataFrame
        One row per paired run with ``run`` (label) and ``median_pearson_r``, and optionally
        ``ridge_median_pearson_r`` (median over parcels of the test Pearson r of each model).

    Returns
    -------
    matplotlib.figure.Figure
        One axes of horizontal bars, one row per run (first run on top): a ``SAMBA`` bar and,
        when any ridge value is finite, a ``ridge`` bar; the run labels are the y tick labels.

    Raises
    ------
    ValueError
        If ``run`` or ``median_pearson_r`` is missing, or there is no run.
    """
    missing = {"run", "median_pearson_r"} - set(runs.columns)
    if missing:
        raise ValueError(f"The run table lacks the columns {sorted(missing)}.")
    if not len(runs):
        raise ValueError("The run table has no rows.")
    labels = runs["run"].astype(str).tolist()
    series = [("SAMBA", runs["median_pearson_r"].to_numpy(dtype=float), PREDICTED_COLOR)]
    if "ridge_median_pearson_r" in runs.columns:
        ridge = runs["ridge_median_pearson_r"].to_numpy(dtype=float)
        if np.isfinite(ridge).any():
            series.append(("ridge", ridge, RIDGE_COLOR))
    fig = _new_figure(8, 1.2 + 0.45 * len(labels) * len(series))
    ax = fig.subplots()
    y = np.arange(len(labels), dtype=float)
    height = 0.8 / len(series)
    for k, (label, values, color) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * height
        ax.barh(y + offset, values, height=height, color=color,
                alpha=0.85, label=label)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel("median test Pearson r over parcels")
    ax.set_title("Median test correlation per run", fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return fig


def predicted_timeseries_figure(predicted, parcel_names, tr_s: float, *, parcels=None):
    """Predicted BOLD over a whole run without observed BOLD, one panel per chosen parcel.

    Parameters
    ----------
    predicted : ndarray, shape (M, V)
        Predicted BOLD per parcel and volume, in z units; NaN where no prediction exists
        (drawn as gaps).
    parcel_names : list of str, length M
    tr_s : float
        Repetition time, in s; the time axis is ``volume * tr_s`` (s from the run's start).
    parcels : array_like of int, optional
        0-based parcel indices to show; the first, middle (``M // 2``) and last parcel (without
        repeats) by default.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per parcel, titled with the parcel's name, each with one line labelled
        ``"SAMBA predicted"``.

    Raises
    ------
    ValueError
        If ``predicted`` is not 2-D with one row per name, ``tr_s`` is not positive, or an
        index is out of range.
    """
    predicted = np.asarray(predicted, dtype=float)
    if predicted.ndim != 2 or predicted.shape[0] != len(parcel_names):
        raise ValueError(f"predicted has shape {predicted.shape}; expected "
                         f"({len(parcel_names)}, V).")
    if not tr_s > 0:
        raise ValueError(f"tr_s must be positive; got {tr_s}.")
    m = predicted.shape[0]
    if parcels is None:
        parcels = list(dict.fromkeys([0, m // 2, m - 1]))
    parcels = [int(i) for i in np.atleast_1d(np.asarray(parcels, dtype=int))]
    if not parcels or min(parcels) < 0 or max(parcels) >= m:
        raise ValueError(f"parcels {parcels} are empty or outside 0..{m - 1}.")
    time_s = np.arange(predicted.shape[1]) * float(tr_s)
    fig = _new_figure(10, 0.6 + 1.9 * len(parcels))
    axes = np.atleast_1d(fig.subplots(len(parcels), 1, sharex=True))
    for ax, index in zip(axes, parcels):
        ax.plot(time_s, predicted[index], color=PREDICTED_COLOR, lw=1.0, label="SAMBA predicted")
        ax.set_title(str(parcel_names[index]), fontsize=10, loc="left")
        ax.set_ylabel("BOLD (z)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time from the start of the run (s)")
    return fig


def figure_to_html(fig, *, alt: str = "", fmt: str = "png", dpi: int = 96) -> str:
    """Render a figure as an inline HTML element and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    alt : str
        Text alternative (escaped).
    fmt : {"png", "svg"}
        ``"png"``: ``<img src="data:image/png;base64,...">``; ``"svg"``: the ``<svg>`` element
        itself (XML header and DOCTYPE removed).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    str
        The HTML element.

    Raises
    ------
    ValueError
        If ``fmt`` is neither ``"png"`` nor ``"svg"``.
    """
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg'; got {fmt!r}.")
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=fmt, dpi=dpi, facecolor="white")
    finally:
        if "matplotlib.pyplot" in sys.modules:
            import matplotlib.pyplot as plt

            plt.close(fig)
        fig.clear()
    if fmt == "png":
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return (f'<img class="figure" src="data:image/png;base64,{data}" '
                f'alt="{html.escape(alt)}">')
    svg = buffer.getvalue().decode("utf-8")
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<svg ", f'<svg class="figure" role="img" aria-label="{html.escape(alt)}" ',
                 svg, count=1)
    return svg
