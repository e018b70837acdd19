"""Trained models applied instead of training (``--models TRAINED_OUTPUT_DIR``).

The participant's own model in TRAINED_OUTPUT_DIR when there is one (its participant model
across runs, or the model of its only run), else the group model (``group/desc-groupsamba_
model.pt``, :func:`~.group.run_group_model`). Every run of the participant is translated:
runs with BOLD are also scored (on all their volumes: none of them trained the model), runs
without BOLD get the prediction only. The settings that make the data the model reads
(atlases, filters, TR, windows) come from the model's sidecar; a recording or BOLD run that
does not match it (modality, channels, TR, atlas) is a :class:`~samba_bids.errors.DataError`.

The reverse direction (``--direction bold-to-ephys`` or ``both``) follows the same rules with
the participant's reverse model (``desc-sambareverse_model.pt``; there is no group reverse
model): paired runs are scored against their observed band power, BOLD runs without a
recording get the predicted band power only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.derivatives import output_path, sidecar_path, write_output
from ..config import RESULT_SECTIONS, Config
from ..errors import DataError, NoInputError
from .outputs import (
    ATLAS,
    SEG,
    metric_column_docs,
    source_uri,
    write_hrf_table,
    write_maps,
    write_parcel_series,
    write_predicted_bold,
)
from .pretrained import GROUP_MODEL
from .results import RunResult

logger = logging.getLogger("samba_bids.workflows")

#: Settings of the model's sidecar that ``--models`` never takes over.
_KEEP = ("models", "cv", "device", "seed")


def find_model(models_dir, subject: str) -> tuple[Path, str]:
    """The model to translate ``subject``'s runs with, from a previous OUTPUT_DIR.

    Parameters
    ----------
    models_dir : path-like
        The OUTPUT_DIR of an earlier participant (and group) level.
    subject : str
        Participant label, without ``sub-``.

    Returns
    -------
    path : pathlib.Path
        ``sub-<label>/model/sub-<label>_desc-samba_model.pt`` (a participant model across
        runs), else the participant's only per-run model, else the group model.
    description : str
        "sub-<label>'s own model" or "the group model", for logs, sidecars and methods.

    Raises
    ------
    NoInputError
        If ``models_dir`` holds neither a model of the participant nor a group model.
    DataError
        If it holds several per-run models of the participant and no participant model.
    """
    models_dir = Path(models_dir)
    own = _own_model(models_dir, subject, "model", "samba", "model")
    if own is not None:
        return own
    group = models_dir / GROUP_MODEL
    if group.is_file():
        return group, "the group model"
    raise NoInputError(
        f"--models {models_dir} holds no model of sub-{subject} and no group model "
        f"({GROUP_MODEL}); run the participant level there, or the group level with "
        "--group-model.")


def _own_model(models_dir, subject, key, desc, what):
    """(path, description) of the participant's own model of kind ``key`` (participant model
    across runs, else its only per-run model), or None.

    Raises
    ------
    NoInputError
        If ``models_dir`` is not a folder.
    DataError
        If it holds several per-run models of the participant and no participant model.
    """
    if not models_dir.is_dir():
        raise NoInputError(f"--models {models_dir}: no such folder; pass the OUTPUT_DIR of an "
                           "earlier samba-bids run.")
    own = output_path(models_dir, key, {"subject": subject})
    if own.is_file():
        return own, f"sub-{subject}'s own {what}"
    per_run = sorted(models_dir.glob(f"sub-{subject}/**/model/sub-{subject}_*desc-{desc}_model.pt"))
    if len(per_run) == 1:
        return per_run[0], f"sub-{subject}'s own {what}"
    if len(per_run) > 1:
        raise DataError(
            f"--models {models_dir} holds {len(per_run)} per-run {what}s of sub-{subject} "
            f"({', '.join(p.name for p in per_run[:3])}) and no participant model; rerun its "
            "participant level with this version (one model across runs).")
    return None


def find_reverse_model(models_dir, subject: str) -> tuple[Path, str]:
    """The reverse model to translate ``subject``'s BOLD with, from a previous OUTPUT_DIR.

    Returns
    -------
    path : pathlib.Path
        ``sub-<label>/model/sub-<label>_desc-sambareverse_model.pt`` (a participant model
        across runs), else the participant's only per-run reverse model.
    description : str

    Raises
    ------
    NoInputError
        If ``models_dir`` holds no reverse model of the participant.
    DataError
        If it holds several per-run reverse models and no participant model.
    """
    own = _own_model(Path(models_dir), subject, "reverse_model", "sambareverse",
                     "reverse model")
    if own is not None:
        return own
    raise NoInputError(
        f"--models {models_dir} holds no reverse model of sub-{subject} (there is no group "
        "reverse model); run its participant level with --direction bold-to-ephys or both, "
        "or use --direction ephys-to-bold.")


def load_trained_model(path, description: str = "the model", *, reverse: bool = False):
    """A saved SAMBA model (``reverse``: a reverse model) and its sidecar, ready to translate.

    Returns
    -------
    trained : samba_bids.workflows.participant_model.TrainedModel
    sidecar : dict

    Raises
    ------
    DataError
        If the checkpoint or its sidecar cannot be read, or the sidecar lacks what
        applying the model needs (written by a version before ``--models``).
    """
    import torch

    from ..model.reverse import SAMBAReverse
    from ..model.samba import SAMBA
    from .participant_model import TrainedModel

    path = Path(path)
    kind = SAMBAReverse if reverse else SAMBA
    try:
        sidecar = json.loads(sidecar_path(path).read_text())
        model = kind.from_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # unreadable checkpoint or sidecar, of any kind
        raise DataError(f"{path}: cannot read the model or its JSON sidecar ({err}); "
                        "rerun the level that wrote it.") from err
    needed = (("RepetitionTime", "LookaheadVolumes", "WindowTRs", "SourceParcels", "Config")
              if reverse else ("RepetitionTime", "HistoryVolumes", "WindowTRs", "Config"))
    missing = [k for k in needed if k not in sidecar]
    if missing:
        raise DataError(f"{sidecar_path(path).name} lacks {', '.join(missing)} (written by an "
                        "earlier samba-bids); rerun the level that wrote it to reuse it.")
    history = sidecar["LookaheadVolumes"] if reverse else sidecar["HistoryVolumes"]
    trained = TrainedModel(model=model, history=int(history),
                           window_trs=int(sidecar["WindowTRs"]),
                           tr_s=float(sidecar["RepetitionTime"]), uri=str(path),
                           description=description, sidecar=sidecar,
                           source_names=list(sidecar.get("SourceParcels", [])))
    return trained, sidecar


def model_config(config: Config, sidecar: dict) -> Config:
    """``config`` with the settings the model was trained with (atlases, filters, windows).

    Selections, locations, resources, ``--cv``, the device and the seed stay the caller's.
    """
    trained = sidecar.get("Config", {})
    names = set(Config.section_fields(*RESULT_SECTIONS)) - set(_KEEP)
    return dataclasses.replace(config, **{k: v for k, v in trained.items() if k in names})


def check_compatible(path, sidecar: dict, *, source: str, modality: str, channels,
                     parcel_names=None, tr_s=None) -> None:
    """Raise when a recording or BOLD run does not match the model it is to be translated with.

    Raises
    ------
    DataError
        Naming what differs: modality, channels, TR (more than 1 ms), BOLD parcels.
    """
    name = Path(path).name
    want = sidecar.get("Modality")
    if want and modality and want != modality:
        raise DataError(f"{source} is {modality.upper()} but the model {name} was trained on "
                        f"{want.upper()}; use a model of the same modality.")
    trained_channels = sidecar.get("Channels") or []
    if trained_channels and list(channels) != list(trained_channels):
        extra = sorted(set(channels) - set(trained_channels))
        lacking = sorted(set(trained_channels) - set(channels))
        detail = "; ".join(part for part in (
            f"not in the model: {', '.join(extra[:5])}" if extra else "",
            f"missing: {', '.join(lacking[:5])}" if lacking else "",
            "same channels in another order" if not extra and not lacking else "") if part)
        raise DataError(f"{source}'s channels differ from those the model {name} was trained "
                        f"on ({detail}); translate recordings with the model's montage.")
    if tr_s is not None and abs(float(tr_s) - float(sidecar["RepetitionTime"])) > 1e-3:
        raise DataError(f"{source} has TR {float(tr_s):g} s but the model {name} was trained at "
                        f"TR {float(sidecar['RepetitionTime']):g} s; use a model of the same TR.")
    trained_parcels = sidecar.get("BoldParcels")
    if parcel_names is not None and trained_parcels and list(parcel_names) != trained_parcels:
        raise DataError(f"{source}: the BOLD atlas ({len(parcel_names)} parcels) differs from "
                        f"the model {name}'s ({len(trained_parcels)} parcels); use the model's "
                        "atlas.")


def apply_models(participant, config: Config, templates_dir, links, work_dir):
    """Translate every run of a participant with saved models (``--models``).

    ``--direction`` picks which: the forward model (:func:`find_model`) for the runs with a
    recording, the reverse model (:func:`find_reverse_model`) for the runs with BOLD.

    Returns
    -------
    samba_bids.workflows.participant.ParticipantOutcome

    Raises
    ------
    NoInputError, DataError
        As :func:`find_model`, :func:`find_reverse_model`, :func:`load_trained_model` and
        :func:`check_compatible`.
    """
    from .results import ParticipantOutcome

    runs, summary = [], None
    if config.direction in ("ephys-to-bold", "both"):
        runs, summary = _apply_forward(participant, config, templates_dir, links, work_dir)
    elif participant.ephys_only:
        logger.warning("%s: %d EEG/MEG run(s) without BOLD are left out (--direction %s).",
                       participant.label, len(participant.ephys_only), config.direction)
    if config.direction in ("bold-to-ephys", "both"):
        _apply_reverse(participant, config, templates_dir, links, work_dir, runs)
    return ParticipantOutcome(participant.subject, runs, summary)


def _apply_reverse(participant, config, templates_dir, links, work_dir, runs) -> None:
    """The reverse model on every run with BOLD; outputs added to ``runs`` (by label)."""
    from ..alignment import held_out_split
    from ..training import predict_reverse
    from .inputs import prepared_inputs
    from .outputs import run_common, write_reverse_outputs
    from .participant_model import run_methods, translate_bold_only
    from .translate import reverse_summary, score_band_power

    path, description = find_reverse_model(config.models, participant.subject)
    trained, sidecar = load_trained_model(path, description, reverse=True)
    trained.uri = source_uri(links, path)
    mconfig = model_config(config, sidecar)
    logger.info("%s: predicting band power of %d run(s) with %s (%s); no training.",
                participant.label, len(participant.pairs) + len(participant.bold_only),
                description, path)
    by_label = {run.label: run for run in runs}
    for pair in participant.pairs:
        inputs = prepared_inputs(pair, mconfig, templates_dir, work_dir)
        _check_reverse(path, sidecar, pair.bold_files[0].name, inputs.atlas.names,
                       inputs.tr_s, source_names=inputs.parcels.names,
                       modality=inputs.modality)
        predicted = predict_reverse(trained.model, inputs.observed,
                                    window_trs=trained.window_trs, device=config.device)
        split = held_out_split(inputs.observed.shape[1], inputs.tr_s,
                               hrf_support_s=mconfig.hrf_support_s,
                               window_trs=trained.window_trs)
        scores = score_band_power(mconfig, predicted, inputs, split)
        common = {**run_common(pair, inputs, mconfig, links), "Model": trained.uri}
        common["Sources"] = [*common["Sources"], trained.uri]
        files = write_reverse_outputs(
            pair, mconfig, inputs, None, scores.metrics, scores.summary, common,
            predicted=scores.predicted, observed=scores.observed, columns=scores.columns,
            split=split, model=False, fold={"CrossValidation": "none (model reused)"})
        result = by_label.get(pair.label)
        if result is None:
            result = RunResult(label=pair.label, summary={}, methods=run_methods(
                pair, inputs, mconfig, templates_dir,
                reused_model=f"{description} ({trained.uri})"))
            runs.append(result)
        result.outputs.extend(files)
        result.summary.update(reverse_summary(scores))
        if result.report is not None:
            result.report.reverse = scores.metrics
    for run in participant.bold_only:
        runs.append(translate_bold_only(
            run, trained, mconfig, templates_dir, links,
            check=lambda b, run=run: _check_reverse(path, sidecar, run.bold_files[0].name,
                                                    b.atlas.names, b.tr_s)))


def _check_reverse(path, sidecar, source, parcel_names, tr_s, *, source_names=None,
                   modality=None) -> None:
    """:func:`check_compatible` for a reverse model: TR, BOLD atlas, source parcels."""
    check_compatible(path, sidecar, source=source, modality=modality or "",
                     channels=[], parcel_names=parcel_names, tr_s=tr_s)
    trained = sidecar.get("SourceParcels")
    if source_names is not None and trained and list(source_names) != list(trained):
        raise DataError(f"{source}: the source parcels ({len(source_names)}) differ from the "
                        f"reverse model {Path(path).name}'s ({len(trained)}); use the model's "
                        "source atlas.")


def _apply_forward(participant, config, templates_dir, links, work_dir):
    """The forward model on every run with a recording: (runs, ParticipantSummary)."""
    from ..alignment import held_out_split
    from ..bold import load_bold_atlas
    from ..reports.participant import ParticipantSummary
    from ..training import predict_run
    from .cache import RunCache
    from .inputs import prepared_inputs
    from .participant_model import run_methods, translate_ephys_only

    path, description = find_model(config.models, participant.subject)
    trained, sidecar = load_trained_model(path, description)
    trained.uri = source_uri(links, path)
    mconfig = model_config(config, sidecar)
    logger.info("%s: translating %d run(s) with %s (%s); no training.", participant.label,
                len(participant.pairs) + len(participant.ephys_only), description, path)
    runs, rows, methods_inputs = [], [], None
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": mconfig.bold_atlas_scale}
    for pair in participant.pairs:
        check_compatible(path, sidecar, source=pair.bold_files[0].name,
                         modality=sidecar.get("Modality", ""), channels=sidecar.get("Channels")
                         or [], tr_s=pair.tr_s)
        inputs = prepared_inputs(pair, mconfig, templates_dir, work_dir)
        check_compatible(path, sidecar, source=pair.ephys_file.name, modality=inputs.modality,
                         channels=inputs.channel_names, parcel_names=inputs.atlas.names,
                         tr_s=inputs.tr_s)
        predicted = predict_run(trained.model, inputs.features, history=trained.history,
                                window_trs=trained.window_trs, device=config.device)
        split = held_out_split(inputs.observed.shape[1], inputs.tr_s,
                               hrf_support_s=mconfig.hrf_support_s,
                               window_trs=trained.window_trs)
        runs.append(_write_scored(pair, mconfig, inputs, predicted, split, trained, links,
                                  atlas_entities))
        rows.append({"run": pair.label, "cross_validation": "none (model reused)",
                     "trained_on": ", ".join(sidecar.get("TrainedOn", [])) or description,
                     "median_pearson_r": runs[-1].summary["median_pearson_r"],
                     "ridge_median_pearson_r": np.nan, "n_test_volumes": len(split.test)})
        runs[-1].methods = run_methods(pair, inputs, mconfig, templates_dir,
                                    reused_model=f"{description} ({trained.uri})")
        methods_inputs = methods_inputs or (pair, inputs)
    space = participant.space or sidecar.get("Space")
    if participant.pairs:
        reference, atlas = participant.pairs[0], methods_inputs[1].atlas
    else:
        reference = None
        atlas = load_bold_atlas(templates_dir, space, mconfig.bold_atlas_scale)
    ephys_reports = []
    for run in participant.ephys_only:
        cache = RunCache(work_dir, run, mconfig, templates_dir, extra={"tr_s": trained.tr_s})
        result, report = translate_ephys_only(
            run, trained, reference, atlas, mconfig, templates_dir, links, cache=cache,
            space=space, check=lambda e, run=run: check_compatible(
                path, sidecar, source=run.ephys_file.name, modality=e.modality,
                channels=e.channel_names))
        runs.append(result)
        ephys_reports.append(report)
    summary = ParticipantSummary(
        runs=pd.DataFrame(rows, columns=["run", "cross_validation", "trained_on",
                                         "median_pearson_r", "ridge_median_pearson_r",
                                         "n_test_volumes"]),
        model={"Model": trained.uri, "Reused": description,
               "Trained on": ", ".join(sidecar.get("TrainedOn", [])) or "see its sidecar"},
        hrf=trained.model.hrf.parameters_frame(atlas.names), centroids_mm=atlas.centroids_mm,
        ephys_only=ephys_reports)
    return runs, summary


def _write_scored(pair, config, inputs, predicted, split, trained, links, atlas_entities):
    """Outputs of a run with BOLD translated by a reused model, scored on all its volumes."""
    from ..metrics import parcel_metrics, pooled_spearman, summarise
    from .outputs import N_NULL, run_common

    out = config.output_dir
    common = {**run_common(pair, inputs, config, links), "Model": trained.uri}
    common["Sources"] = [*common["Sources"], trained.uri]
    metrics = parcel_metrics(predicted, inputs.observed, split.test, inputs.atlas.names,
                             n_null=N_NULL, seed=config.seed)
    summary = summarise(metrics)
    summary["pooled_spearman"] = float(pooled_spearman(predicted, inputs.observed, split.test))
    entities = dict(pair.bold_entities)
    written = write_predicted_bold(out, pair, inputs.atlas, predicted, inputs.tr_s, common,
                                   atlas_entities)
    written += write_parcel_series(out, entities, inputs.atlas.names, common, atlas_entities,
                                   samba=predicted, observed=inputs.observed)
    written.append(write_output(out, "metrics", entities, metrics, sources=common["Sources"],
                                **atlas_entities, parameters={
        **common,
        "Description": "Per-parcel agreement of the BOLD predicted by a reused model "
                       f"({trained.description}) with the observed BOLD, over every volume "
                       "of the run (none of them trained the model).",
        **metric_column_docs("parcels"), "Summary": summary, **split.to_sidecar(),
        "CrossValidation": "none (model reused)",
    }))
    hrf = trained.model.hrf.parameters_frame(inputs.atlas.names)
    written += write_hrf_table(out, entities, hrf, common["Sources"], atlas_entities)
    written += write_maps(out, entities, inputs.atlas, pair, metrics, hrf, common,
                          atlas_entities)
    return RunResult(label=pair.label, outputs=written, summary={
        "median_pearson_r": float(metrics["pearson_r"].median()),
        "fraction_significant": float(summary.get("fraction_significant", 0.0)),
        "n_parcels": len(inputs.atlas.names), "model": trained.uri},
        report=_reused_report(pair, config, inputs, predicted, split, trained, metrics, hrf))


def _reused_report(pair, config, inputs, predicted, split, trained, metrics, hrf):
    """The report section of a run translated by a reused model: its series, scores on all
    volumes, the model's HRFs; no training history, no baseline (nothing was trained)."""
    from ..model.hrf import spm_canonical_hrf
    from ..model.wavelet import band_names, band_ranges_hz
    from ..reports.participant import ParticipantReport

    hrf_time_s = np.arange(0.0, config.hrf_support_s, 0.1)
    canonical = spm_canonical_hrf(hrf_time_s)
    empty = np.array([], dtype=int)
    return ParticipantReport(
        label=pair.label, tr_s=inputs.tr_s, parcel_names=list(inputs.atlas.names),
        centroids_mm=inputs.atlas.centroids_mm, observed=inputs.observed, predicted=predicted,
        test_volumes=split.test, train_volumes=empty, validation_volumes=empty,
        metrics=metrics, hrf=hrf, hrf_time_s=hrf_time_s,
        hrf_curves=trained.model.hrf.curves(hrf_time_s),
        canonical_hrf=canonical / canonical.max(), attention=None,
        band_names=band_names(config.wavelet_level),
        band_ranges_hz=band_ranges_hz(config.wavelet_level, config.resample_sfreq_hz),
        history=None, best_epoch=None, comparison=None, parameters=config.to_dict(),
        provenance={"Model (reused, not trained here)": trained.uri,
                    "Reused": trained.description, "Alignment": inputs.clock,
                    "Modality": inputs.modality.upper(), "BOLD space": pair.space,
                    "Sources": [pair.ephys_file.name] + [f.name for f in pair.bold_files],
                    "Scored on": f"all {len(split.test)} volumes after the first "
                                 f"{int(split.history)} (none trained the model)"},
        source_names=list(inputs.parcels.names),
        mr_artifacts=getattr(inputs, "mr_artifacts", None))
