"""The two directions of translation on one run: SAMBA and its baselines, then the outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..bids.derivatives import write_output
from ..config import Config
from .inputs import RunInputs
from .outputs import (
    ATLAS,
    MAP_DESCS,
    N_NULL,
    SEG,
    metric_column_docs,
    write_hrf_table,
    write_maps,
    write_model,
    write_parcel_series,
    write_predicted_bold,
    write_reverse_outputs,
)


def translate_forward(pair, config: Config, inputs: RunInputs, common: dict):
    """SAMBA (electrophysiology -> BOLD) and the ridge baseline on one run; write the outputs.

    Returns
    -------
    written : list of pathlib.Path
    summary : dict
        ``median_pearson_r``, ``ridge_median_pearson_r``, ``fraction_significant``,
        ``best_epoch``, ``n_parameters``, ``device``, ``ridge_alpha``.
    report : samba_bids.reports.participant.ParticipantReport
    fit : samba_bids.training.FitResult
    """
    scores = fit_forward(config, inputs)
    written = write_forward_outputs(pair, config, inputs, scores, common)
    report = participant_report(pair, config, inputs, scores)
    fit, summary = scores.fit, scores.summary
    return written, {
        "median_pearson_r": float(np.median(scores.metrics["pearson_r"])),
        "ridge_median_pearson_r": summary["ridge_median_pearson_r"],
        "fraction_significant": float(summary.get("fraction_significant", 0.0)),
        "best_epoch": int(fit.best_epoch),
        "n_parameters": int(fit.n_parameters),
        "device": str(fit.device),
        "ridge_alpha": float(scores.ridge.alpha),
    }, report, fit


@dataclass
class ForwardScores:
    """SAMBA and the ridge baseline fitted on one run, with their test-block scores."""

    fit: object  # samba_bids.training.FitResult
    predicted: np.ndarray  # (M, V)
    attention: np.ndarray
    metrics: pd.DataFrame  # SAMBA's, with the ridge_* columns added
    summary: dict
    ridge: object  # samba_bids.model.baselines.RidgeBaseline
    ridge_predicted: np.ndarray  # (M, V)
    ridge_metrics: pd.DataFrame
    hrf: pd.DataFrame  # the learned HRF per BOLD parcel (``ParcelHRF.parameters_frame``)


@dataclass
class ForwardModel:
    """SAMBA and the ridge baseline fitted on one or several runs (:func:`fit_forward_model`)."""

    fit: object  # samba_bids.training.FitResult
    ridge: object  # samba_bids.model.baselines.RidgeBaseline
    trained_on: list  # labels of the runs it was trained on
    history: int  # K, the HRF history in volumes


def fit_forward(config: Config, inputs: RunInputs) -> ForwardScores:
    """Fit SAMBA and, on the same split, the canonical-HRF band-power ridge; score both."""
    model = fit_forward_model(config, [inputs], [inputs.split])
    return score_run(config, model, inputs, inputs.split)


def _training_axis(runs, splits):
    """(features, observed, split, first run): one run as it is, several concatenated
    (:func:`~samba_bids.training.concatenate_runs`)."""
    from ..training import concatenate_runs

    runs, splits = list(runs), list(splits)
    if len(runs) == 1:
        return runs[0].features, runs[0].observed, splits[0], runs[0]
    features, observed, split = concatenate_runs(
        [(i.features, i.observed, s) for i, s in zip(runs, splits)])
    return features, observed, split, runs[0]


def fit_forward_model(config: Config, runs, splits, labels=()) -> ForwardModel:
    """SAMBA and the canonical-HRF band-power ridge trained on the runs' training blocks.

    Parameters
    ----------
    config : Config
    runs : sequence of RunInputs
        Prepared runs of one participant (or several): same atlases, bands and TR.
    splits : sequence of samba_bids.alignment.Split
        The blocks each run contributes (its test block is never read). Several runs are
        put on one volume axis (:func:`~samba_bids.training.concatenate_runs`): windows and
        the ridge's HRF convolution never cross from one run into another, and the graphs
        and feature standardisation come from the union of the training blocks.
    labels : sequence of str
        The runs' labels, recorded as ``trained_on``.

    Returns
    -------
    ForwardModel
    """
    from ..errors import UsageError
    from ..model.baselines import fit_ridge_baseline
    from ..training import fit_samba
    from .pretrained import pretrained_model

    features, observed, split, reference = _training_axis(runs, splits)
    init, init_path = pretrained_model(config)
    try:
        fit = fit_samba(features, observed, split, reference.parcels.centroids_mm,
                        reference.atlas.centroids_mm, config, tr_s=reference.tr_s,
                        progress=True, init=init)
    except ValueError as err:
        if init is None or "pretrained model" not in str(err):
            raise
        raise UsageError(f"--init-from {init_path}: {err}") from err
    fit.init_from = None if init_path is None else str(init_path)
    ridge = fit_ridge_baseline(features, observed, split, tr_s=reference.tr_s)
    return ForwardModel(fit=fit, ridge=ridge, trained_on=list(labels),
                        history=int(split.history))


def score_run(config: Config, model: ForwardModel, inputs: RunInputs, split) -> ForwardScores:
    """Predict a whole run with SAMBA and the ridge baseline; score both on ``split.test``."""
    from ..metrics import parcel_metrics, pooled_spearman, summarise
    from ..training import predict_run

    features, observed, fit, ridge = inputs.features, inputs.observed, model.fit, model.ridge
    predicted, attention = predict_run(fit.model, features, history=model.history,
                                       window_trs=fit.window_trs, device=fit.device,
                                       return_attention=True)
    metrics = parcel_metrics(predicted, observed, split.test, inputs.atlas.names, n_null=N_NULL,
                             seed=config.seed)
    summary = summarise(metrics)
    summary["pooled_spearman"] = float(pooled_spearman(predicted, observed, split.test))
    ridge_predicted = ridge.predict(features)
    ridge_metrics = parcel_metrics(ridge_predicted, observed, split.test, inputs.atlas.names)
    metrics["ridge_pearson_r"] = ridge_metrics["pearson_r"].to_numpy()
    metrics["ridge_spearman_rho"] = ridge_metrics["spearman_rho"].to_numpy()
    summary["ridge_median_pearson_r"] = float(ridge_metrics["pearson_r"].median())
    return ForwardScores(fit=fit, predicted=predicted, attention=attention, metrics=metrics,
                         summary=summary, ridge=ridge, ridge_predicted=ridge_predicted,
                         ridge_metrics=ridge_metrics,
                         hrf=fit.model.hrf.parameters_frame(inputs.atlas.names))


def write_forward_outputs(pair, config: Config, inputs: RunInputs, scores: ForwardScores,
                          common: dict, *, split=None, fold: dict | None = None,
                          model: bool = True, maps=tuple(MAP_DESCS)) -> list:
    """Predicted BOLD in the input's space, parcel tables, HRFs, metrics, model and maps.

    Parameters
    ----------
    split : samba_bids.alignment.Split, optional
        The blocks the run was scored on (default ``inputs.split``), for the sidecars.
    fold : dict, optional
        Sidecar entries of a participant model across runs (``CrossValidation``, ``Fold``,
        ``TrainedOn``, ``Model``), added to the metrics sidecar.
    model : bool
        Write the model and its history (one run: it is the participant's model).
    maps : sequence of str
        Which per-parcel maps of :data:`~.outputs.MAP_DESCS` to write.
    """
    entities = dict(pair.bold_entities)
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.bold_atlas_scale}
    out, atlas = config.output_dir, inputs.atlas
    split = inputs.split if split is None else split
    written = write_predicted_bold(out, pair, atlas, scores.predicted, inputs.tr_s, common,
                                   atlas_entities)
    written += write_parcel_series(out, entities, atlas.names, common, atlas_entities,
                                   samba=scores.predicted, observed=inputs.observed)
    written += write_hrf_table(out, entities, scores.hrf, common["Sources"], atlas_entities)
    written.append(write_output(out, "metrics", entities, scores.metrics,
                                sources=common["Sources"], **atlas_entities, parameters={
        **common,
        "Description": "Per-parcel agreement of predicted and observed BOLD on the test block.",
        **metric_column_docs("parcels"),
        "ridge_pearson_r": {"Description": "Pearson r of the canonical-HRF band-power ridge "
                                           "baseline (penalty chosen on the validation block)"},
        "ridge_spearman_rho": {"Description": "Spearman rho of the ridge baseline"},
        "RidgePenalty": float(scores.ridge.alpha),
        "Summary": scores.summary,
        **split.to_sidecar(),
        **(fold or {}),
    }))
    if model:
        written += write_model(out, entities, "samba", scores.fit, config, common["Sources"],
                               split, inputs.parcels.provenance,
                               extra=model_sidecar(config, inputs, scores.fit,
                                                   space=pair.space))
    if maps:
        written += write_maps(out, entities, atlas, pair, scores.metrics, scores.hrf, common,
                              atlas_entities, descs=maps)
    return written


def model_sidecar(config: Config, inputs, fit, *, space=None) -> dict:
    """What applying a saved model needs (``--models``): TR, windows, atlases, channels; how
    its linear path was initialised (``LinearPath``), when it has one; the model it was
    fine-tuned from (``InitialisedFrom``, ``--init-from``)."""
    sidecar = {"RepetitionTime": float(inputs.tr_s), "Space": space,
               "HistoryVolumes": int(fit.model.history),
               "WindowTRs": int(fit.window_trs), "Modality": inputs.modality,
               "Channels": list(getattr(inputs, "channel_names", []) or []),
               "BoldAtlasScale": int(config.bold_atlas_scale),
               "EphysAtlasScale": int(config.ephys_atlas_scale),
               "BoldParcels": list(inputs.atlas.names)}
    ridge = getattr(fit.model, "ridge", None)
    if ridge is not None:
        sidecar["LinearPath"] = {
            "Initialisation": ("ridge restricted to the bipartite graph"
                               if fit.model.hparams["use_graph"] else "ridge"),
            "RidgePenalty": float(ridge.alpha), "Weights": int(fit.model.linear.n_weights()),
            "Trained": False, "KeptInitialWeights": int(fit.best_epoch) == 0}
        if ridge.prior is not None:
            sidecar["LinearPath"]["Prior"] = "the pretrained model's linear path"
    if getattr(fit, "init_from", None):
        sidecar["InitialisedFrom"] = fit.init_from
    return sidecar


def translate_reverse(pair, config: Config, inputs: RunInputs, common: dict):
    """SAMBA in reverse (BOLD -> source-parcel band power) on one run; write the outputs.

    Outputs (atlas entities of the electrophysiology parcels): ``desc-sambareverse_timeseries``
    (predicted log band power, one column per ``<parcel>_<band>``), ``desc-observedpower_
    timeseries`` (the band power computed from the recording), ``desc-sambareverse_metrics``
    (one row per source parcel and band: Pearson r, Spearman rho, phase-randomisation p and
    FDR over all rows, on the test block), the model and its training history.

    Returns
    -------
    written : list of pathlib.Path
    summary : dict
        ``reverse_median_pearson_r`` (median over source parcels and bands),
        ``reverse_fraction_significant``.
    metrics : pandas.DataFrame
    fit : samba_bids.training.FitResult
    """
    model = fit_reverse_model(config, [inputs], [inputs.split])
    scores = score_reverse(config, model, inputs, inputs.split)
    written = write_reverse_outputs(pair, config, inputs, scores.fit, scores.metrics,
                                    scores.summary, common, predicted=scores.predicted,
                                    observed=scores.observed, columns=scores.columns,
                                    model_extra=reverse_model_sidecar(config, inputs,
                                                                      scores.fit,
                                                                      space=pair.space))
    return written, reverse_summary(scores), scores.metrics, scores.fit


@dataclass
class ReverseModel:
    """SAMBA in reverse fitted on one or several runs (:func:`fit_reverse_model`)."""

    fit: object  # samba_bids.training.FitResult, model a SAMBAReverse
    trained_on: list  # labels of the runs it was trained on


@dataclass
class ReverseScores:
    """The reverse direction's prediction of one run, scored on a split's test volumes."""

    fit: object  # samba_bids.training.FitResult
    predicted: np.ndarray  # (N * n_bands, V), log band power
    observed: np.ndarray  # (N * n_bands, V)
    columns: list  # '<source parcel>_<band>' per row
    metrics: pd.DataFrame  # one row per source parcel and band
    summary: dict


def fit_reverse_model(config: Config, runs, splits, labels=()) -> ReverseModel:
    """SAMBA in reverse (BOLD -> source-parcel band power) trained on the runs' blocks.

    As :func:`fit_forward_model`: several runs share one volume axis
    (:func:`~samba_bids.training.concatenate_runs`) and no window reaches from one run into
    the next (:func:`~samba_bids.training.split_reverse_windows`).
    """
    from ..training import fit_reverse

    features, observed, split, reference = _training_axis(runs, splits)
    fit = fit_reverse(features, observed, split, reference.parcels.centroids_mm,
                      reference.atlas.centroids_mm, config, tr_s=reference.tr_s, progress=True)
    return ReverseModel(fit=fit, trained_on=list(labels))


def band_power_columns(config: Config, source_names) -> list:
    """``<source parcel>_<band>``: the rows of the reverse direction's flattened band power."""
    from ..model.wavelet import band_names

    bands = band_names(config.wavelet_level)
    return [f"{name}_{band}" for name in source_names for band in bands]


def flatten_band_power(power) -> np.ndarray:
    """(N, V, n_bands) -> (N * n_bands, V), rows in :func:`band_power_columns` order."""
    n_src, n_volumes, n_bands = power.shape
    return np.asarray(power).transpose(0, 2, 1).reshape(n_src * n_bands, n_volumes)


def score_reverse(config: Config, model: ReverseModel, inputs: RunInputs,
                  split) -> ReverseScores:
    """Predict a run's band power from its BOLD; score it on ``split.test``."""
    from ..training import predict_reverse

    fit = model.fit
    predicted = predict_reverse(fit.model, inputs.observed, window_trs=fit.window_trs,
                                device=fit.device)  # (N, V, bands)
    return score_band_power(config, predicted, inputs, split, fit=fit)


def score_band_power(config: Config, predicted, inputs: RunInputs, split, *,
                     fit=None) -> ReverseScores:
    """Score a run's predicted band power against the band power of its recording.

    Parameters
    ----------
    predicted : ndarray, shape (N, V, n_bands)
        :func:`~samba_bids.training.predict_reverse`'s log band power.
    inputs : RunInputs
        The run (its ``features[..., 0]`` is the observed band power).
    split : samba_bids.alignment.Split
        Scored on ``split.test``.
    fit : samba_bids.training.FitResult, optional
        The model's fit, kept in the result (None: a reused model).

    Returns
    -------
    ReverseScores
    """
    from ..metrics import parcel_metrics, summarise
    from ..model.wavelet import band_names

    parcels = inputs.parcels
    bands = band_names(config.wavelet_level)
    columns = band_power_columns(config, parcels.names)
    flat_pred = flatten_band_power(predicted)
    flat_obs = flatten_band_power(inputs.features[..., 0])
    metrics = parcel_metrics(flat_pred, flat_obs, split.test, columns, n_null=N_NULL,
                             seed=config.seed)
    metrics.insert(1, "band", [band for _ in parcels.names for band in bands])
    metrics.insert(1, "source_parcel", [name for name in parcels.names for _ in bands])
    return ReverseScores(fit=fit, predicted=flat_pred, observed=flat_obs, columns=columns,
                         metrics=metrics, summary=summarise(metrics))


def reverse_summary(scores: ReverseScores) -> dict:
    """``reverse_median_pearson_r`` and ``reverse_fraction_significant`` of a scored run."""
    return {
        "reverse_median_pearson_r": float(scores.metrics["pearson_r"].median()),
        "reverse_fraction_significant": float(scores.summary.get("fraction_significant",
                                                                 0.0)),
    }


def reverse_model_sidecar(config: Config, inputs, fit, *, space=None) -> dict:
    """What applying a saved reverse model needs (``--models``): TR, windows, atlases."""
    from ..model.wavelet import band_names

    return {"RepetitionTime": float(inputs.tr_s), "Space": space,
            "LookaheadVolumes": int(fit.model.lookahead), "WindowTRs": int(fit.window_trs),
            "Modality": inputs.modality, "BoldAtlasScale": int(config.bold_atlas_scale),
            "EphysAtlasScale": int(config.ephys_atlas_scale),
            "BoldParcels": list(inputs.atlas.names),
            "SourceParcels": list(inputs.parcels.names),
            "Bands": list(band_names(config.wavelet_level))}


def participant_report(pair, config, inputs, scores: ForwardScores, *, split=None):
    """The :class:`~samba_bids.reports.participant.ParticipantReport` of the forward direction.

    ``split``: the blocks the run was scored on (default ``inputs.split``).
    """
    from ..metrics import pooled_spearman
    from ..model.hrf import spm_canonical_hrf
    from ..model.wavelet import band_names, band_ranges_hz
    from ..reports.participant import ParticipantReport

    fit, metrics, summary = scores.fit, scores.metrics, scores.summary
    ridge_metrics, ridge_predicted = scores.ridge_metrics, scores.ridge_predicted
    hrf = scores.hrf
    split = inputs.split if split is None else split
    observed = inputs.observed
    comparison = pd.DataFrame([
        {"model": "SAMBA", "median_pearson_r": float(metrics["pearson_r"].median()),
         "median_spearman_rho": float(metrics["spearman_rho"].median()),
         "pooled_spearman": summary["pooled_spearman"],
         "fraction_significant": summary.get("fraction_significant", np.nan),
         "trainable_parameters": int(fit.n_parameters)},
        {"model": "ridge (canonical HRF, band power)",
         "median_pearson_r": float(ridge_metrics["pearson_r"].median()),
         "median_spearman_rho": float(ridge_metrics["spearman_rho"].median()),
         "pooled_spearman": float(pooled_spearman(ridge_predicted, observed, split.test)),
         "fraction_significant": np.nan, "trainable_parameters": np.nan},
    ])
    hrf_time_s = np.arange(0.0, config.hrf_support_s, 0.1)
    canonical = spm_canonical_hrf(hrf_time_s)
    provenance = {"Alignment": inputs.clock, "Modality": inputs.modality.upper(),
                  "BOLD space": pair.space, "Sources": [str(pair.ephys_file.name)]
                  + [f.name for f in pair.bold_files],
                  "Source reconstruction": inputs.parcels.provenance,
                  "Device": str(fit.device), "Best epoch": int(fit.best_epoch),
                  "Trainable parameters": int(fit.n_parameters)}
    return ParticipantReport(
        label=pair.label, tr_s=inputs.tr_s, parcel_names=list(inputs.atlas.names),
        centroids_mm=inputs.atlas.centroids_mm, observed=observed, predicted=scores.predicted,
        test_volumes=split.test, train_volumes=split.train,
        validation_volumes=split.validation, metrics=metrics, hrf=hrf,
        hrf_time_s=hrf_time_s, hrf_curves=fit.model.hrf.curves(hrf_time_s),
        canonical_hrf=canonical / canonical.max(), attention=scores.attention,
        band_names=band_names(config.wavelet_level),
        band_ranges_hz=band_ranges_hz(config.wavelet_level, config.resample_sfreq_hz),
        history=fit.history, best_epoch=int(fit.best_epoch), comparison=comparison,
        parameters=config.to_dict(), provenance=provenance,
        source_names=list(inputs.parcels.names),
        mr_artifacts=getattr(inputs, "mr_artifacts", None),
    )
