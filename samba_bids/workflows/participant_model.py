"""One translator per participant: trained across the paired runs, applied to every run.

DESIGN.md's data flow: "SAMBA: one model per participant over all paired runs; cross-validated
by run (or blocks inside a run); then a final model on all runs" and "apply: the participant's
model (or a reused/group model) on every run, ephys-only too".

- :func:`train_participant`: the folds of :func:`~samba_bids.training.run_folds` (``--cv``),
  each scored on the runs it did not train on, and the final model;
- :func:`write_participant`: per run the held-out prediction, observed BOLD, metrics (the
  sidecar names the fold and the runs that trained it) and HRFs; per participant the final
  model, its HRF table and map, and one metrics table of every run;
- :func:`translate_ephys_only`: a recording without BOLD, translated with a trained model and
  written on the grid of one of the participant's BOLD runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..bids.derivatives import bids_uri, write_output
from ..bids.layout import RunPair
from ..config import Config
from .outputs import (
    ATLAS,
    SEG,
    metric_column_docs,
    mr_artifacts_entry,
    source_uri,
    template_grid,
    write_hrf_table,
    write_maps,
    write_model,
    write_predicted_bold,
    write_reverse_outputs,
)
from .results import RunResult
from .translate import (
    ForwardModel,
    fit_forward_model,
    fit_reverse_model,
    model_sidecar,
    reverse_model_sidecar,
    reverse_summary,
    score_reverse,
    score_run,
    write_forward_outputs,
)

logger = logging.getLogger("samba_bids.workflows")

#: Entities of a BOLD run's grid that a participant-level file keeps (its space).
_GRID_KEYS = ("space", "resolution", "density")


@dataclass
class ScoredRun:
    """A paired run scored by the model of the fold that did not train on its test volumes."""

    pair: object  # RunPair
    inputs: object  # RunInputs
    scores: object  # ForwardScores
    split: object  # the blocks it was scored on (its test block, or the whole run)
    fold: dict  # sidecar entries: CrossValidation, Fold, TrainedOn


@dataclass
class ParticipantFit:
    """:func:`train_participant`'s result."""

    cv: str  # 'runs' or 'blocks'
    scored: list  # ScoredRun per paired run, in run order
    final: object  # the participant's model: ForwardModel (or ReverseModel)
    final_splits: list  # the blocks of each run the final model trained and validated on
    labels: list = field(default_factory=list)


def train_participant(prepared, config: Config, *, who: str = "the participant",
                      reverse: bool = False) -> ParticipantFit:
    """Cross-validate one SAMBA model across a participant's paired runs; fit the final one.

    Parameters
    ----------
    prepared : list of (RunPair, RunInputs)
        The participant's paired runs, prepared (:func:`~.inputs.prepare_run`).
    config : Config
        ``cv`` picks the scheme (:func:`~samba_bids.training.resolve_cv`).
    who : str
        The participant, for messages.
    reverse : bool
        Train the reverse direction (BOLD -> band power, :func:`~.translate.fit_reverse_model`
        scored by :func:`~.translate.score_reverse`) instead of the forward one
        (:func:`~.translate.fit_forward_model`, :func:`~.translate.score_run`).

    Returns
    -------
    ParticipantFit
        ``runs``: each run scored on all its volumes by the model trained on the other runs
        (validation: the last block of each, :func:`~samba_bids.alignment.fitting_split`),
        then a final model on every run (the same blocks). ``blocks``: one model trained on
        every run's training block (early stopping on their validation blocks), scored on
        each run's test block; it is the final model (refitting it on the test blocks would
        leave no out-of-sample score to report for it).

    Raises
    ------
    UsageError
        If ``--cv runs`` is asked for with one paired run.
    DataError
        If a run is too short for its blocks.
    """
    from ..alignment import fitting_split, held_out_split
    from ..training import resolve_cv, run_folds

    cv = resolve_cv(config.cv, len(prepared), who=who)
    labels = [pair.label for pair, _ in prepared]
    inputs = [i for _, i in prepared]
    fit_model, score = ((fit_reverse_model, score_reverse) if reverse
                        else (fit_forward_model, score_run))
    logger.info("%s: one %smodel across %d paired run(s), cross-validated by %s.", who,
                "reverse " if reverse else "", len(prepared),
                "run" if cv == "runs" else "blocks inside each run")
    if cv == "blocks":
        splits = [i.split for i in inputs]
        model = fit_model(config, inputs, splits, labels)
        scored = [ScoredRun(pair, i, score(config, model, i, i.split), i.split,
                            {"CrossValidation": "blocks", "Fold": 1, "TrainedOn": labels})
                  for pair, i in prepared]
        return ParticipantFit(cv=cv, scored=scored, final=model, final_splits=splits,
                              labels=labels)
    fitting = [fitting_split(i.observed.shape[1], i.tr_s, hrf_support_s=config.hrf_support_s,
                             train_fraction=config.train_fraction,
                             validation_fraction=config.validation_fraction,
                             window_trs=config.window_trs, source=pair.bold_files[0].name)
               for pair, i in prepared]
    scored = []
    folds = run_folds(len(prepared), cv)
    for fold in folds:
        trained_on = [labels[j] for j in fold.train_runs]
        pair, held = prepared[fold.test_run]
        logger.info("%s: fold %d of %d: test run %s, trained on %s", who, fold.number,
                    len(folds), pair.label, ", ".join(trained_on))
        model = fit_model(config, [inputs[j] for j in fold.train_runs],
                          [fitting[j] for j in fold.train_runs], trained_on)
        split = held_out_split(held.observed.shape[1], held.tr_s,
                               hrf_support_s=config.hrf_support_s, window_trs=config.window_trs)
        scored.append(ScoredRun(pair, held, score(config, model, held, split), split,
                                {"CrossValidation": "runs", "Fold": fold.number,
                                 "TrainedOn": trained_on}))
    logger.info("%s: final model on all %d runs", who, len(prepared))
    final = fit_model(config, inputs, fitting, labels)
    return ParticipantFit(cv=cv, scored=scored, final=final, final_splits=fitting,
                          labels=labels)


def run_methods(pair, inputs, config, templates_dir, *, forward_fit=None, reverse_fit=None,
             ridge_alpha=None, **cross_validation):
    """The :class:`~.reports.methods.MethodsContext` of a run."""
    from ..reports.boilerplate import methods_context

    return methods_context(
        config, provenance=inputs.parcels.provenance, split=inputs.split, tr_s=inputs.tr_s,
        modality=inputs.modality, bold_space=pair.space, forward_fit=forward_fit,
        reverse_fit=reverse_fit, templates_dir=templates_dir, n_channels=inputs.n_channels,
        sfreq_hz=inputs.sfreq_hz, alignment=inputs.clock,
        mr_artifacts=mr_artifacts_entry(inputs).get("MRArtifacts"),
        confound_columns=inputs.confound_columns, n_bold_parcels=len(inputs.atlas.names),
        n_source_parcels=len(inputs.parcels.names), ridge_alpha=ridge_alpha,
        run_label=pair.label, **cross_validation)


def participant_entities(participant, pair) -> dict:
    """Entities of the participant-level files: the subject, and the BOLD runs' space."""
    grid = {k: v for k, v in pair.bold_entities.items() if k in _GRID_KEYS}
    return {"subject": participant.subject, **grid}


def write_participant(participant, fit: ParticipantFit, config: Config, commons: dict,
                      links: dict) -> tuple[dict, list]:
    """The derivatives of a participant model across runs.

    Parameters
    ----------
    participant : samba_bids.bids.layout.ParticipantRuns
    fit : ParticipantFit
    config : Config
    commons : dict
        Run label -> the sidecar entries every file of that run gets (``Sources`` ...).
    links : dict
        Dataset name -> root, for the BIDS URIs.

    Returns
    -------
    per_run : dict
        Run label -> the files written for it.
    participant_files : list of pathlib.Path
        The model and its history, the HRF table and map, the runs' metrics table.
    """
    out = config.output_dir
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.bold_atlas_scale}
    first = fit.scored[0]
    entities = participant_entities(participant, first.pair)
    model_path = model_uri(out, entities)
    per_run = {}
    for run in fit.scored:
        fold = {**run.fold, "Model": model_path if fit.cv == "blocks" else
                "the model of this fold (not saved; the participant's model is "
                f"{model_path}, trained on every run)"}
        per_run[run.pair.label] = write_forward_outputs(
            run.pair, config, run.inputs, run.scores, commons[run.pair.label], split=run.split,
            fold=fold, model=False, maps=("testr",))
    sources = [uri for run in fit.scored for uri in commons[run.pair.label]["Sources"]]
    common = {**commons[first.pair.label], "Sources": sources}
    final = fit.final
    split_entries = {"CrossValidation": fit.cv, "TrainedOn": fit.labels,
                     "Runs": {label: s.to_sidecar() for label, s in
                              zip(fit.labels, fit.final_splits)}}
    files = write_model(out, entities, "samba", final.fit, config, sources, split_entries,
                        first.inputs.parcels.provenance,
                        extra={**model_sidecar(config, first.inputs, final.fit,
                                               space=first.pair.space),
                               "TrainedOn": fit.labels, "CrossValidation": fit.cv})
    hrf = final.fit.model.hrf.parameters_frame(first.inputs.atlas.names)
    files += write_hrf_table(out, entities, hrf, sources, atlas_entities)
    files += write_maps(out, entities, first.inputs.atlas, first.pair, None, hrf, common,
                        atlas_entities, descs=("hrfttp",))
    files.append(write_output(out, "runs_metrics", entities, runs_table(fit), sources=sources,
                              **atlas_entities, parameters={
        "Description": "Held-out agreement of predicted and observed BOLD, one row per "
                       "parcel and paired run of the participant's model across runs.",
        "run_label": {"Description": "the run (sub/ses/task/run)"},
        "fold": {"Description": "the fold whose model predicted this run (--cv runs: the "
                                "model trained on the other runs; blocks: the one model)"},
        "n_test_volumes": {"Description": "volumes scored: the whole run (runs) or its "
                                          "test block (blocks)"},
        **metric_column_docs("parcels, within each run"),
        "ridge_pearson_r": {"Description": "Pearson r of the canonical-HRF band-power "
                                           "ridge baseline on the same fold"},
        "CrossValidation": fit.cv, "TrainedOn": fit.labels,
    }))
    return per_run, files


def write_participant_reverse(participant, fit: ParticipantFit, config: Config,
                              commons: dict) -> tuple[dict, list]:
    """The derivatives of a reverse participant model across runs (BOLD -> band power).

    As :func:`write_participant`: per run the held-out band-power prediction, the observed
    band power and the metrics (the sidecar names the fold); per participant the final
    reverse model (``desc-sambareverse_model.pt`` + JSON, :func:`reverse_model_uri`) and one
    metrics table of every run (``desc-sambareverseruns_metrics.tsv``).

    Returns
    -------
    per_run : dict
        Run label -> the files written for it.
    participant_files : list of pathlib.Path
    """
    out = config.output_dir
    first = fit.scored[0]
    entities = participant_entities(participant, first.pair)
    model_path = reverse_model_uri(out, entities)
    per_run = {}
    for run in fit.scored:
        scores = run.scores
        fold = {**run.fold, "Model": model_path if fit.cv == "blocks" else
                "the reverse model of this fold (not saved; the participant's reverse model "
                f"is {model_path}, trained on every run)"}
        per_run[run.pair.label] = write_reverse_outputs(
            run.pair, config, run.inputs, scores.fit, scores.metrics, scores.summary,
            commons[run.pair.label], predicted=scores.predicted, observed=scores.observed,
            columns=scores.columns, split=run.split, fold=fold, model=False)
    sources = [uri for run in fit.scored for uri in commons[run.pair.label]["Sources"]]
    split_entries = {"CrossValidation": fit.cv, "TrainedOn": fit.labels,
                     "Runs": {label: s.to_sidecar() for label, s in
                              zip(fit.labels, fit.final_splits)}}
    files = write_model(out, entities, "sambareverse", fit.final.fit, config, sources,
                        split_entries, first.inputs.parcels.provenance,
                        extra={**reverse_model_sidecar(config, first.inputs, fit.final.fit,
                                                       space=first.pair.space),
                               "TrainedOn": fit.labels, "CrossValidation": fit.cv})
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.ephys_atlas_scale}
    files.append(write_output(out, "reverse_runs_metrics", entities, runs_table(fit),
                              sources=sources, **atlas_entities, parameters={
        "Description": "Held-out agreement of the band power predicted from BOLD and the "
                       "observed band power, one row per source parcel, band and paired run "
                       "of the participant's reverse model across runs.",
        "run_label": {"Description": "the run (sub/ses/task/run)"},
        "fold": {"Description": "the fold whose model predicted this run"},
        "n_test_volumes": {"Description": "volumes scored: the whole run (runs) or its "
                                          "test block (blocks)"},
        **metric_column_docs("source parcels and bands, within each run"),
        "CrossValidation": fit.cv, "TrainedOn": fit.labels,
    }))
    return per_run, files


def reverse_run_summary(run: ScoredRun) -> dict:
    """The headline scores of a run scored in the reverse direction."""
    return {**reverse_summary(run.scores), "reverse_fold": run.fold["Fold"],
            "reverse_best_epoch": int(run.scores.fit.best_epoch)}


def reverse_model_uri(out, entities) -> str:
    """The participant's reverse model's path in OUTPUT_DIR, as a BIDS URI."""
    from ..bids.derivatives import output_path

    return bids_uri("", out, output_path(out, "reverse_model", entities))


def runs_table(fit: ParticipantFit) -> pd.DataFrame:
    """One row per parcel and paired run: the held-out metrics with the run and fold."""
    frames = []
    for run in fit.scored:
        frame = run.scores.metrics.copy()
        frame.insert(0, "n_test_volumes", len(run.split.test))
        frame.insert(0, "fold", run.fold["Fold"])
        frame.insert(0, "run_label", run.pair.label)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def run_summary(run: ScoredRun) -> dict:
    """The headline scores of a scored run (``RunResult.summary``)."""
    scores = run.scores
    return {"median_pearson_r": float(np.median(scores.metrics["pearson_r"])),
            "ridge_median_pearson_r": scores.summary["ridge_median_pearson_r"],
            "fraction_significant": float(scores.summary.get("fraction_significant", 0.0)),
            "best_epoch": int(scores.fit.best_epoch),
            "n_parameters": int(scores.fit.n_parameters), "device": str(scores.fit.device),
            "ridge_alpha": float(scores.ridge.alpha), "n_parcels": len(run.inputs.atlas.names),
            "cross_validation": run.fold["CrossValidation"], "fold": run.fold["Fold"],
            "n_test_volumes": len(run.split.test)}


def model_uri(out, entities) -> str:
    """The participant model's path in OUTPUT_DIR, as a BIDS URI of this dataset."""
    from ..bids.derivatives import output_path

    return bids_uri("", out, output_path(out, "model", entities))


# --------------------------------------------------------------------------------------------
# Runs without BOLD


@dataclass
class TrainedModel:
    """A model ready to translate a recording: the network and how it was trained."""

    model: object  # samba_bids.model.samba.SAMBA (or SAMBAReverse), eval mode
    history: int  # K (the reverse direction: the volumes it looks ahead)
    window_trs: int
    tr_s: float
    uri: str  # where it is saved, as a BIDS URI (or a path)
    description: str = "the participant's model"
    sidecar: dict = field(default_factory=dict)
    source_names: list = field(default_factory=list)  # the reverse direction's columns


def trained_model(fit: ForwardModel, uri: str, tr_s: float) -> TrainedModel:
    """The :class:`TrainedModel` of a model fitted in this run."""
    return TrainedModel(model=fit.fit.model, history=fit.history,
                        window_trs=int(fit.fit.window_trs), tr_s=float(tr_s), uri=uri)


def trained_reverse_model(model, uri: str, inputs) -> TrainedModel:
    """The :class:`TrainedModel` of a reverse model (:class:`~.translate.ReverseModel`)
    fitted in this run on runs like ``inputs`` (a prepared paired run)."""
    fit = model.fit
    return TrainedModel(model=fit.model, history=int(fit.model.lookahead),
                        window_trs=int(fit.window_trs), tr_s=float(inputs.tr_s), uri=uri,
                        description="the participant's reverse model",
                        source_names=list(inputs.parcels.names))


def translate_bold_only(run, trained: TrainedModel, config: Config, templates_dir, links, *,
                        check=None) -> RunResult:
    """Predict the band power of a BOLD run without a recording with a reverse model.

    Output: ``desc-sambareverse_timeseries.tsv`` (one column per ``<source parcel>_<band>``,
    one row per volume; log band power), whose sidecar says that no EEG/MEG was recorded and
    which model made the prediction.

    Parameters
    ----------
    run : samba_bids.bids.layout.BoldRun
    trained : TrainedModel
        A reverse model (:func:`trained_reverse_model`, or one reused with ``--models``).
    config : Config
    templates_dir : pathlib.Path
    links : dict
    check : callable, optional
        ``check(inputs)`` on the prepared BOLD (:class:`~.inputs.BoldInputs`) before it is
        translated (raises when it does not suit the model).

    Returns
    -------
    RunResult

    Raises
    ------
    DataError
        As :func:`~.inputs.prepare_bold_only`, or when the run's TR differs from the model's.
    """
    from ..errors import DataError
    from ..training import predict_reverse
    from .inputs import prepare_bold_only
    from .outputs import band_docs, write_band_power
    from .translate import band_power_columns, flatten_band_power

    start = time.time()
    inputs = prepare_bold_only(run, config, templates_dir)
    if check is not None:
        check(inputs)
    if abs(inputs.tr_s - trained.tr_s) > 1e-3:
        raise DataError(f"{run.bold_files[0].name} has TR {inputs.tr_s:g} s but the reverse "
                        f"model ({trained.uri}) was trained at TR {trained.tr_s:g} s; "
                        "translate runs of the model's TR.")
    predicted = flatten_band_power(predict_reverse(trained.model, inputs.observed,
                                                   window_trs=trained.window_trs,
                                                   device=config.device))
    common = {
        "Sources": [*(source_uri(links, f) for f in run.bold_files), trained.uri],
        "RepetitionTime": trained.tr_s,
        "ObservedElectrophysiology": False,
        "Model": trained.uri,
        "ConfoundsRegressed": list(inputs.confound_columns),
        "Note": f"No EEG/MEG was recorded in this run: the band power was predicted from its "
                f"BOLD alone by {trained.description} ({trained.uri}).",
    }
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.ephys_atlas_scale}
    written = [write_band_power(config.output_dir, "reverse_timeseries",
                                dict(run.bold_entities), predicted,
                                band_power_columns(config, trained.source_names), common,
                                atlas_entities, bands=band_docs(config),
                                what="SAMBA-predicted (from BOLD; no EEG/MEG recorded)")]
    seconds = time.time() - start
    logger.info("%s: no EEG/MEG; band power of %d volumes predicted with %s in %.1f s.",
                run.label, predicted.shape[1], trained.uri, seconds)
    return RunResult(label=run.label, outputs=written, summary={
        "bold_only": True, "n_volumes": int(predicted.shape[1]), "model": trained.uri,
        "n_outputs": len(written), "seconds": seconds})


def ephys_only_grid_pair(run, reference, space=None) -> RunPair:
    """A :class:`RunPair` naming ``run``'s outputs on ``reference``'s BOLD grid (None: the
    atlas's own grid in ``space``)."""
    names = {k: v for k, v in run.entities.items() if v is not None}
    if reference is None:
        return RunPair(entities=dict(run.entities), ephys_file=run.ephys_file, bold_files=[],
                       space=space, bold_entities={**names, "space": space})
    grid = {k: v for k, v in reference.bold_entities.items() if k in _GRID_KEYS}
    return RunPair(entities=dict(run.entities), ephys_file=run.ephys_file,
                   bold_files=list(reference.bold_files), space=reference.space,
                   tr_s=reference.tr_s, bold_entities={**names, **grid})


def translate_ephys_only(run, trained: TrainedModel, reference, atlas, config: Config,
                         templates_dir, links, *, cache=None, space=None,
                         check=None) -> tuple[RunResult, object]:
    """Translate a recording without BOLD with a trained model; write the predicted BOLD.

    Outputs: the predicted BOLD on the grid of ``reference`` (one of the participant's BOLD
    runs: GIFTI pair, NIfTI or CIFTI as that run), and ``desc-samba_timeseries.tsv``; their
    sidecars say that no BOLD was recorded, which model made the prediction and how the
    volume grid was placed (:func:`~.inputs.prepare_ephys_only`).

    Parameters
    ----------
    run : samba_bids.bids.layout.EphysRun
    trained : TrainedModel
    reference : RunPair or None
        The BOLD run whose grid (and space) the prediction is written on; None (a
        participant without BOLD): the atlas's own grid in ``space``
        (:func:`~.outputs.template_grid`).
    atlas : samba_bids.bold.ParcelAtlas
        The BOLD atlas of the model.
    config : Config
    templates_dir : pathlib.Path
    links : dict
    cache : RunCache, optional
        Where the prepared recording is kept.
    space : str, optional
        The BOLD space when ``reference`` is None.
    check : callable, optional
        ``check(inputs)`` on the prepared recording before it is translated (raises when it
        does not suit the model, :func:`~.reuse.check_compatible`).

    Returns
    -------
    result : RunResult
    report : samba_bids.reports.participant.EphysOnlyRun
    """
    from ..reports.participant import EphysOnlyRun
    from ..training import predict_run
    from .inputs import prepare_ephys_only
    from .outputs import write_parcel_series_predicted

    start = time.time()
    inputs = cache.load_inputs() if cache is not None else None
    if inputs is None:
        inputs = prepare_ephys_only(run, config, templates_dir, trained.tr_s)
        if cache is not None:
            cache.store_inputs(inputs)
    if check is not None:
        check(inputs)
    predicted = predict_run(trained.model, inputs.features, history=trained.history,
                            window_trs=trained.window_trs, device=config.device)
    pair = ephys_only_grid_pair(run, reference, space)
    grid = None if reference is not None else template_grid(atlas)
    grid_name = (reference.bold_files[0].name if reference is not None
                 else f"the {pair.space} atlas ({atlas.kind})")
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.bold_atlas_scale}
    common = {
        "Sources": [source_uri(links, run.ephys_file), trained.uri],
        "RepetitionTime": trained.tr_s,
        "ObservedBOLD": False,
        "Model": trained.uri,
        "VolumeTiming": inputs.clock,
        "GridReference": grid_name,
        "ElectrophysiologyModality": inputs.modality.upper(),
        **mr_artifacts_entry(inputs),
        "Space": pair.space,
        "SourceReconstruction": inputs.parcels.provenance,
    }
    note = (f"No BOLD was recorded in this run: the BOLD was predicted from its "
            f"{inputs.modality.upper()} alone by {trained.description} ({trained.uri}).")
    written = write_predicted_bold(config.output_dir, pair, atlas, predicted, trained.tr_s,
                                   {**common, "Note": note}, atlas_entities, reference=grid)
    written += write_parcel_series_predicted(config.output_dir, pair.bold_entities, atlas.names,
                                             {**common, "Note": note}, atlas_entities,
                                             predicted)
    seconds = time.time() - start
    logger.info("%s: no BOLD; %d volumes predicted with %s in %.1f s (%s).", run.label,
                predicted.shape[1], trained.uri, seconds, inputs.clock)
    summary = {"ephys_only": True, "n_volumes": int(predicted.shape[1]), "model": trained.uri,
               "n_outputs": len(written), "seconds": seconds}
    report = EphysOnlyRun(label=run.label, predicted=predicted, tr_s=trained.tr_s,
                          parcel_names=list(atlas.names),
                          provenance={"Model": trained.uri, "Volume timing": inputs.clock,
                                      "Volumes": int(predicted.shape[1]),
                                      "Recording": run.ephys_file.name,
                                      "Written on the grid of": grid_name})
    from ..alignment import held_out_split
    from ..reports.methods import methods_context

    methods = methods_context(
        config, provenance=inputs.parcels.provenance,
        split=held_out_split(predicted.shape[1], trained.tr_s,
                             hrf_support_s=config.hrf_support_s,
                             window_trs=trained.window_trs),
        tr_s=trained.tr_s, modality=inputs.modality, bold_space=pair.space,
        templates_dir=templates_dir, n_channels=inputs.n_channels, sfreq_hz=inputs.sfreq_hz,
        alignment=inputs.clock, n_bold_parcels=len(atlas.names),
        mr_artifacts=mr_artifacts_entry(inputs).get("MRArtifacts"),
        n_source_parcels=len(inputs.parcels.names), run_label=run.label, n_ephys_only=1,
        reused_model=(f"{trained.description} ({trained.uri})" if trained.sidecar else None))
    return RunResult(label=run.label, outputs=written, summary=summary,
                     methods=methods), report
