"""Compare SAMBA, its ablations and the ridge baseline on one split.

Every model is fitted on the training block, selected on the validation block (early stopping
for SAMBA and its ablations, the ridge penalty for the baseline) and scored on the test block
only (DESIGN.md, "The SAMBA model", "Baselines"). This is the table the participant level and
the evaluation command print.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from .metrics import hrf_recovery, parcel_metrics, pearson_r, pooled_spearman, summarise
from .model.baselines import DEFAULT_ALPHAS, fit_ridge_baseline
from .model.hrf import ParcelHRF
from .training import (
    ABLATIONS,
    ablation_configs,
    fit_graph_ridge,
    fit_samba,
    predict_run,
)

logger = logging.getLogger(__name__)

#: Model names :func:`compare_models` knows, in table order.
MODEL_NAMES = (*ABLATIONS, "ridge", "graph-ridge")

#: Columns of :func:`compare_models`' table (``median_ttp_abs_error_s`` only with a truth).
TABLE_COLUMNS = ("model", "median_pearson_r", "median_spearman_rho", "fraction_significant",
                 "pooled_spearman", "median_ttp_abs_error_s", "n_parameters", "best_epoch",
                 "fit_seconds")


def compare_models(features, bold, split, src_centroids_mm, bold_centroids_mm, config, *,
                   tr_s: float, names, truth_hrf: pd.DataFrame | None = None, models=None,
                   n_null: int = 1000, null_seed: int = 0, alphas=DEFAULT_ALPHAS,
                   progress: bool = False, details: dict | None = None):
    """Fit SAMBA, each ablation and the ridge baseline on the same split; score the test block.

    Parameters
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features of every volume
        (:func:`~samba_bids.model.wavelet.wavelet_band_features`).
    bold : ndarray, shape (M, V)
        Parcel BOLD, z-scored with training-block statistics.
    split : samba_bids.alignment.Split or similar
        ``train``, ``validation``, ``test`` and ``history`` (K).
    src_centroids_mm : ndarray, shape (N, 3)
    bold_centroids_mm : ndarray, shape (M, 3)
        Parcel centroids, in mm, one space.
    config : samba_bids.config.Config
        Shared model and training settings; the variants come from
        :func:`~samba_bids.training.ablation_configs` (its ablation flags are overridden).
    tr_s : float
        Repetition time, in s.
    names : sequence of str, length M
        BOLD parcel names.
    truth_hrf : pandas.DataFrame, optional
        Planted HRFs (``time_to_peak_s``, ideally ``parcel``), for the
        ``median_ttp_abs_error_s`` column (:func:`~samba_bids.metrics.hrf_recovery`).
    models : sequence of str, optional
        Subset of :data:`MODEL_NAMES` (default all: ``samba``, ``no-wavelet-attention``,
        ``no-graph``, ``fixed-hrf``, ``linear-path-only``, ``no-linear-path``, ``ridge``,
        ``graph-ridge``: the ridge restricted to SAMBA's bipartite graph, the start of its
        linear path).
    n_null : int
        Phase-randomised surrogates per parcel for the p-values (0: no significance column).
    null_seed : int
        Seed of the surrogates (the same for every model).
    alphas : array_like of float
        Ridge penalty grid.
    progress : bool
        tqdm bars during SAMBA training.
    details : dict, optional
        If given, filled with ``"fits"`` (name -> ``FitResult`` or ``RidgeBaseline``),
        ``"metrics"`` (name -> :func:`~samba_bids.metrics.parcel_metrics` frame) and, with a
        truth, ``"hrf_recovery"`` (name -> :func:`~samba_bids.metrics.hrf_recovery` frame).

    Returns
    -------
    table : pandas.DataFrame
        One row per model, in :data:`MODEL_NAMES` order: ``model``, ``median_pearson_r``,
        ``median_spearman_rho`` (medians over BOLD parcels of the test-block correlations),
        ``fraction_significant`` (parcels with FDR-corrected phase-randomisation p < 0.05),
        ``pooled_spearman`` (over all test (parcel, volume) pairs, as the SAMBA paper),
        ``median_ttp_abs_error_s`` (median |learned - planted| time to peak over parcels; only
        when ``truth_hrf`` is given; for the ridge baselines, which estimate no HRF, that of
        SPM's canonical HRF they use),
        ``n_parameters`` (trained weights), ``best_epoch`` (NaN for ridge), ``fit_seconds``.
    predictions : dict of str to ndarray, shape (M, V)
        Each model's prediction of the whole run.

    Raises
    ------
    ValueError
        If a model name is unknown, or as :func:`~samba_bids.training.fit_samba` and
        :func:`~samba_bids.model.baselines.fit_ridge_baseline`.
    """
    models = list(MODEL_NAMES if models is None else models)
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(MODEL_NAMES)}.")
    names = [str(n) for n in names]
    bold = np.asarray(bold, dtype=float)
    configs = ablation_configs(config)
    rows, predictions = [], {}
    fits, metrics_frames, recovery_frames = {}, {}, {}
    for name in (m for m in MODEL_NAMES if m in models):
        start = time.perf_counter()
        recovery = None
        if name in ("ridge", "graph-ridge"):
            if name == "ridge":
                fit = fit_ridge_baseline(features, bold, split, tr_s=tr_s, alphas=alphas,
                                         hrf_support_s=config.hrf_support_s)
            else:
                fit = fit_graph_ridge(features, bold, split, src_centroids_mm,
                                      bold_centroids_mm, config, tr_s=tr_s, alphas=alphas)
            predicted = fit.predict(features)
            n_parameters, best_epoch = fit.n_parameters, np.nan
            if truth_hrf is not None:  # the ridges convolve with SPM's canonical HRF
                recovery = hrf_recovery(ParcelHRF(len(names)).parameters_frame(names), truth_hrf)
        else:
            fit = fit_samba(features, bold, split, src_centroids_mm, bold_centroids_mm,
                            configs[name], tr_s=tr_s, progress=progress)
            predicted = predict_run(fit.model, features, history=split.history,
                                    window_trs=fit.window_trs, device=configs[name].device)
            n_parameters, best_epoch = fit.n_parameters, fit.best_epoch
            if truth_hrf is not None:
                recovery = hrf_recovery(fit.model.hrf.parameters_frame(names), truth_hrf)
        seconds = time.perf_counter() - start
        frame = parcel_metrics(predicted, bold, split.test, names, n_null=n_null,
                               seed=null_seed)
        summary = summarise(frame)
        row = {
            "model": name,
            "median_pearson_r": summary["median_pearson_r"],
            "median_spearman_rho": summary["median_spearman_rho"],
            "fraction_significant": summary.get("fraction_significant", np.nan),
            "pooled_spearman": pooled_spearman(predicted, bold, split.test),
            "median_ttp_abs_error_s": (recovery.attrs["median_abs_error_s"]
                                       if recovery is not None else np.nan),
            "n_parameters": int(n_parameters),
            "best_epoch": best_epoch,
            "fit_seconds": seconds,
        }
        rows.append(row)
        predictions[name] = predicted
        fits[name], metrics_frames[name] = fit, frame
        if recovery is not None:
            recovery_frames[name] = recovery
        logger.info("%s: median test r %.3f, pooled Spearman %.3f (%.1f s)", name,
                    row["median_pearson_r"], row["pooled_spearman"], seconds)
    columns = [c for c in TABLE_COLUMNS
               if truth_hrf is not None or c != "median_ttp_abs_error_s"]
    table = pd.DataFrame(rows, columns=columns)
    if details is not None:
        details.update(fits=fits, metrics=metrics_frames)
        if truth_hrf is not None:
            details["hrf_recovery"] = recovery_frames
    return table, predictions


def simulation_ceilings(noiseless, noisy, observed, volumes) -> dict:
    """What a perfect translator could score on simulated data, on the scored volumes.

    The simulator's noise ceiling (:func:`samba_bids.simulate.simulate_dataset`) is the Pearson
    correlation of the noiseless with the noisy parcel BOLD over the whole run. A model is
    scored on the test block only, and on the BOLD as the pipeline cleaned it (confound
    regression, detrending): on a short block of a slow signal, and after regressors that
    correlate with it by chance, even the noiseless BOLD itself scores lower. This gives the
    three figures, medians over parcels, so that test scores are read against the right one.

    Parameters
    ----------
    noiseless, noisy : ndarray, shape (M, V)
        The simulator's noiseless and noisy parcel BOLD (``derivatives/truth``), in the
        pipeline's parcel order.
    observed : ndarray, shape (M, V)
        The parcel BOLD the models are scored against (after the pipeline's cleaning).
    volumes : array_like of int
        The scored volumes (the test block), 0-based.

    Returns
    -------
    dict
        ``noise_ceiling_run``: noiseless vs noisy, all volumes (the simulator's figure);
        ``noise_ceiling_block``: noiseless vs noisy, on ``volumes``;
        ``perfect_model_block``: noiseless vs ``observed`` on ``volumes`` (the score of a
        model that predicts the noiseless BOLD exactly).

    Raises
    ------
    ValueError
        If the shapes differ or ``volumes`` holds fewer than 3 indices.
    """
    noiseless, noisy, observed = (np.asarray(a, dtype=float) for a in (noiseless, noisy,
                                                                         observed))
    if not noiseless.shape == noisy.shape == observed.shape or noiseless.ndim != 2:
        raise ValueError(f"noiseless, noisy and observed must be (parcels, volumes) of one "
                         f"shape; got {noiseless.shape}, {noisy.shape}, {observed.shape}.")
    volumes = np.asarray(volumes, dtype=int)
    if volumes.size < 3:
        raise ValueError(f"need at least 3 scored volumes; got {volumes.size}.")

    def median_r(a, b):
        return float(np.nanmedian(pearson_r(a, b)))

    return {
        "noise_ceiling_run": median_r(noiseless, noisy),
        "noise_ceiling_block": median_r(noiseless[:, volumes], noisy[:, volumes]),
        "perfect_model_block": median_r(noiseless[:, volumes], observed[:, volumes]),
    }


def summarise_seeds(tables, *, reference: str = "samba",
                    column: str = "median_pearson_r") -> pd.DataFrame:
    """Summarise :func:`compare_models` tables of independent simulated subjects.

    One test block of a short run is a noisy yardstick: on the default simulation, the median
    test r of one model differs by 0.15-0.22 between 41-volume pieces of one long run
    (``benchmarks/learning_curve.py``). Tables
    from independently simulated subjects (one per seed) give each model's mean score with its
    standard error, and the paired difference from a reference model, subject by subject, with
    its standard error: the figures a claim "A scores above B" should be read against.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        :func:`compare_models` tables (``model`` column or index, and ``column``), one per
        simulated subject; at least one.
    reference : str
        Model the paired differences are taken from (``model - reference``).
    column : str
        The score compared.

    Returns
    -------
    pandas.DataFrame
        One row per model (the first table's order): ``model``, ``n``, ``mean``, ``sd`` and
        ``sem`` of ``column`` over subjects; ``diff_mean`` and ``diff_sem`` of the paired
        difference from ``reference`` (0 for the reference itself), and ``n_below`` (subjects
        in which the model scored below the reference). SD and SEM are NaN with one subject.

    Raises
    ------
    ValueError
        If ``tables`` is empty, a table lacks ``column``, or a model (or the reference) is
        missing from a table.
    """
    if len(tables) == 0:
        raise ValueError("need at least one table.")
    frames = []
    for i, table in enumerate(tables):
        frame = table.set_index("model") if "model" in table.columns else table
        if column not in frame.columns:
            raise ValueError(f"table {i} has no column {column!r}.")
        frames.append(frame[column].astype(float))
    models = list(frames[0].index)
    if reference not in models:
        raise ValueError(f"reference model {reference!r} is not in the tables "
                         f"({', '.join(models)}).")
    for i, frame in enumerate(frames):
        missing = sorted(set(models) - set(frame.index))
        if missing:
            raise ValueError(f"table {i} lacks model(s) {', '.join(missing)}.")
    scores = pd.DataFrame({i: frame[models] for i, frame in enumerate(frames)})  # models x n
    n = scores.shape[1]
    diff = scores - scores.loc[reference]

    sd = scores.std(axis=1, ddof=1)  # NaN with one subject
    return pd.DataFrame({
        "model": models,
        "n": n,
        "mean": scores.mean(axis=1).to_numpy(),
        "sd": sd.to_numpy(),
        "sem": (sd / np.sqrt(n)).to_numpy(),
        "diff_mean": diff.mean(axis=1).to_numpy(),
        "diff_sem": (diff.std(axis=1, ddof=1) / np.sqrt(n)).to_numpy(),
        "n_below": (diff < 0).sum(axis=1).to_numpy(),
    })
