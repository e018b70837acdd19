"""The participant level: per participant, one model across its runs, applied to every run."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import pandas as pd

from ..bids.derivatives import write_dataset_description
from ..bids.layout import (
    collect_participants,
    default_derivatives,
    index_dataset,
    validate_dataset,
)
from ..config import Config
from ..errors import CantCreateError
from ..templates.locate import find_templates_dir
from .cache import ParticipantCache, RunCache
from .execution import (
    collect_warnings,
    record_config,
    remove_stale_temporaries,
    terminate_cleanly,
)
from .inputs import prepare_run, prepared_inputs
from .outputs import run_common
from .participant_decoding import run_stimulus_events
from .participant_model import run_methods
from .results import ParticipantOutcome, Results, RunResult
from .translate import translate_forward, translate_reverse

logger = logging.getLogger("samba_bids.workflows")


def run_participant_level(config: Config) -> Results:
    """Every selected participant: one model across its paired runs, applied to every run.

    A participant with one paired run and nothing else is :func:`process_run` (the blocked
    split inside the run, its model named after the run); otherwise
    :func:`process_participant`.
    """
    if config.pairing == "stimulus":
        from ..errors import UsageError

        raise UsageError("--pairing stimulus pairs different people's runs: run it at the "
                         "group level ('samba-bids BIDS_DIR OUTPUT_DIR group --pairing "
                         "stimulus'); the participant level pairs each person's own runs.")
    if not config.skip_bids_validation:
        validate_dataset(config.bids_dir)
    if config.init_from is not None:  # a missing or unreadable model fails before any work
        from .pretrained import pretrained_model

        pretrained_model(config)
    derivatives = config.derivatives or default_derivatives(config.bids_dir, config.output_dir)
    work_dir = config.resolved_work_dir
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CantCreateError(f"Cannot create the work directory {work_dir} ({err}).") from err
    layout = index_dataset(config.bids_dir, derivatives, work_dir)
    participants = collect_participants(
        layout,
        participant_label=config.participant_label,
        session_label=config.session_label,
        task_label=config.task_label,
        modality=config.modality,
        bold_space=config.bold_space,
        allow_ephys_only=config.models is not None,
        ephys_derivatives=config.derivatives,
    )
    templates_dir = find_templates_dir(config.templates_dir)
    links = {"raw": config.bids_dir, **derivatives}
    if config.models is not None:  # sidecars name the reused model as bids:models:...
        links["models"] = config.models
    write_dataset_description(config.output_dir, links)
    record_config(config)
    results = Results(output_dir=config.output_dir)
    outcomes = []
    with terminate_cleanly():
        for participant in participants:
            events = run_stimulus_events(layout, participant.pairs,
                                         stimulus_event=config.stimulus_event)
            outcome = _participant(participant, config, templates_dir, links, work_dir,
                                   events=events)
            outcomes.append(outcome)
            results.runs.extend(outcome.runs)
        _write_reports(config, outcomes)
    return results


def _participant(participant, config, templates_dir, links, work_dir, *,
                 events=None) -> ParticipantOutcome:
    """One participant, from the cache when it finished before; outputs whole or not at all.

    ``events``: run label -> stimulus events (:func:`~.participant_decoding.run_stimulus_events`).
    """
    from ..bids.derivatives import record_writes

    remove_stale_temporaries(config.output_dir, participant.subject)
    cache = ParticipantCache(work_dir, participant, config, templates_dir)
    outcome = cache.load_result()
    if outcome is not None:
        logger.info("%s: finished before with the same inputs and settings (%s); skipped.",
                    participant.label, cache.folder)
        return outcome
    with collect_warnings() as warned, record_writes() as written:
        try:
            outcome = process_participant(participant, config, templates_dir, links, work_dir,
                                          events=events)
        except BaseException:  # outputs appear whole or not at all
            for path in written:
                with contextlib.suppress(OSError):
                    Path(path).unlink()
            if written:
                logger.warning("%s failed: removed the %d output file(s) it had written.",
                               participant.label, len(written))
            raise
    for result in outcome.runs:
        if result.report is not None:
            result.report.warnings = list(warned)
    cache.store_result(outcome)
    return outcome


def process_participant(participant, config: Config, templates_dir: Path, links: dict,
                        work_dir: Path, *, events: dict | None = None) -> ParticipantOutcome:
    """A participant's runs -> one SAMBA model (or a reused one) -> derivatives of every run.

    One paired run and no other: :func:`process_run`. Several paired runs, or runs with one
    modality only: the paired runs are prepared (:func:`~.inputs.prepare_run`), one model per
    direction is cross-validated across them and a final model fitted
    (:func:`~.participant_model.train_participant`, ``--cv``), the outputs written
    (:func:`~.participant_model.write_participant`,
    :func:`~.participant_model.write_participant_reverse`), every run without BOLD translated
    with the final forward model (:func:`~.participant_model.translate_ephys_only`) and
    every run without a recording with the final reverse model
    (:func:`~.participant_model.translate_bold_only`). When ``events`` (run label ->
    stimulus events) name stimuli, the stimulus of each window of the held-out runs is decoded
    (:mod:`~.participant_decoding`).
    """
    if config.models is not None:
        from .reuse import apply_models

        return apply_models(participant, config, templates_dir, links, work_dir)
    forward = config.direction in ("ephys-to-bold", "both")
    reverse = config.direction in ("bold-to-ephys", "both")
    bold_only = participant.bold_only if reverse else []
    if participant.bold_only and not reverse:
        logger.warning("%s: %d BOLD run(s) without an EEG/MEG recording are left out (%s); "
                       "--direction bold-to-ephys or both predicts their band power.",
                       participant.label, len(participant.bold_only),
                       ", ".join(run.label for run in participant.bold_only))
    if participant.ephys_only and not forward:
        logger.warning("%s: %d EEG/MEG run(s) without BOLD are left out (%s); --direction "
                       "ephys-to-bold or both predicts their BOLD.", participant.label,
                       len(participant.ephys_only),
                       ", ".join(run.label for run in participant.ephys_only))
    if len(participant.pairs) == 1 and not participant.ephys_only and not bold_only:
        pair = participant.pairs[0]
        return ParticipantOutcome(participant.subject, [process_run(
            pair, config, templates_dir, links,
            cache=RunCache(work_dir, pair, config, templates_dir))])
    from .participant_model import train_participant

    start = time.time()
    prepared = [(pair, prepared_inputs(pair, config, templates_dir, work_dir))
                for pair in participant.pairs]
    commons = {pair.label: run_common(pair, inputs, config, links) for pair, inputs in prepared}
    fit = train_participant(prepared, config, who=participant.label) if forward else None
    reverse_fit = (train_participant(prepared, config, who=participant.label, reverse=True)
                   if reverse else None)
    runs = _paired_results(participant, prepared, commons, fit, reverse_fit, config,
                           templates_dir, links)
    summary, ephys_reports = None, []
    reference_pair, reference = prepared[0]
    if fit is not None:
        runs += _ephys_only_results(participant, fit, reference_pair, reference, config,
                                    templates_dir, links, work_dir, ephys_reports)
        summary = _summary(participant, fit, runs, reference_pair, reference, config,
                           ephys_reports)
        summary.decoding = _decoding(participant, fit, events, config, commons, runs)
    if reverse_fit is not None and bold_only:
        from .participant_model import (
            participant_entities,
            reverse_model_uri,
            trained_reverse_model,
            translate_bold_only,
        )

        uri = reverse_model_uri(config.output_dir,
                                participant_entities(participant, reference_pair))
        trained = trained_reverse_model(reverse_fit.final, uri, reference)
        runs += [translate_bold_only(run, trained, config, templates_dir, links)
                 for run in bold_only]
    logger.info("%s: %d run(s) done in %.1f s", participant.label, len(runs),
                time.time() - start)
    return ParticipantOutcome(participant.subject, runs, summary)


def _paired_results(participant, prepared, commons, fit, reverse_fit, config, templates_dir,
                    links) -> list:
    """The paired runs' outputs of the participant models (forward and/or reverse)."""
    from .participant_model import (
        reverse_run_summary,
        run_methods,
        run_summary,
        write_participant,
        write_participant_reverse,
    )
    from .translate import participant_report

    runs, extra = [], []
    per_run = per_run_reverse = {}
    if fit is not None:
        per_run, files = write_participant(participant, fit, config, commons, links)
        extra += files
    if reverse_fit is not None:
        per_run_reverse, files = write_participant_reverse(participant, reverse_fit, config,
                                                           commons)
        extra += files
    for index, (pair, inputs) in enumerate(prepared):
        run = fit.scored[index] if fit is not None else None
        back = reverse_fit.scored[index] if reverse_fit is not None else None
        cv = (fit or reverse_fit).cv
        result = RunResult(label=pair.label, outputs=[*per_run.get(pair.label, []),
                                                      *per_run_reverse.get(pair.label, [])],
                           summary={"n_parcels": len(inputs.atlas.names)})
        if run is not None:
            result.summary.update(run_summary(run))
            result.report = participant_report(pair, config, inputs, run.scores,
                                               split=run.split)
        if back is not None:
            result.summary.update(reverse_run_summary(back))
            if result.report is not None:
                result.report.reverse = back.scores.metrics
        result.methods = run_methods(
            pair, inputs, config, templates_dir,
            forward_fit=run.scores.fit if run is not None else None,
            reverse_fit=back.scores.fit if back is not None else None, cv=cv,
            n_runs=len(prepared),
            n_ephys_only=len(participant.ephys_only) if run is not None else 0,
            n_bold_only=len(participant.bold_only) if back is not None else 0)
        runs.append(result)
    runs[0].outputs.extend(extra)
    return runs


def _ephys_only_results(participant, fit, reference_pair, reference, config, templates_dir,
                        links, work_dir, reports) -> list:
    """The runs without BOLD translated with the final forward model (reports appended)."""
    from .participant_model import (
        model_uri,
        participant_entities,
        trained_model,
        translate_ephys_only,
    )

    if not participant.ephys_only:
        return []
    uri = model_uri(config.output_dir, participant_entities(participant, reference_pair))
    trained = trained_model(fit.final, uri, reference.tr_s)
    results = []
    for run in participant.ephys_only:
        cache = RunCache(work_dir, run, config, templates_dir, extra={"tr_s": trained.tr_s})
        result, report = translate_ephys_only(run, trained, reference_pair, reference.atlas,
                                              config, templates_dir, links, cache=cache)
        results.append(result)
        reports.append(report)
    return results


def _decoding(participant, fit, events, config, commons, runs):
    """Stimulus decoding from the held-out runs, written and added to the first run's
    outputs; the table, or None when the events name no stimuli or it cannot be done."""
    from .participant_decoding import participant_decoding, write_participant_decoding

    table = participant_decoding(fit, events or {}, config)
    if table is not None:
        runs[0].outputs.append(write_participant_decoding(participant, fit, table, events,
                                                          config, commons))
    return table


def _summary(participant, fit, runs, reference_pair, reference, config, ephys_reports):
    """The report's :class:`~samba_bids.reports.participant.ParticipantSummary`."""
    from ..reports.participant import ParticipantSummary
    from .participant_model import model_uri, participant_entities

    uri = model_uri(config.output_dir, participant_entities(participant, reference_pair))
    return ParticipantSummary(
        runs=pd.DataFrame([{
            "run": run.pair.label, "cross_validation": fit.cv,
            "trained_on": ", ".join(run.fold["TrainedOn"]),
            "median_pearson_r": result.summary["median_pearson_r"],
            "ridge_median_pearson_r": result.summary["ridge_median_pearson_r"],
            "n_test_volumes": len(run.split.test)} for run, result in zip(fit.scored, runs)]),
        model={"Model": uri,
               "Trained on": f"{len(fit.scored)} paired run(s)",
               "Cross-validation": "by run" if fit.cv == "runs" else "blocks inside each run",
               "Best epoch": int(fit.final.fit.best_epoch),
               "Trainable parameters": int(fit.final.fit.n_parameters)},
        hrf=fit.final.fit.model.hrf.parameters_frame(reference.atlas.names),
        centroids_mm=reference.atlas.centroids_mm, ephys_only=ephys_reports)


def process_run(pair, config: Config, templates_dir: Path, links: dict, *,
                cache: RunCache | None = None) -> RunResult:
    """Electrophysiology + BOLD of one run -> trained SAMBA -> derivatives.

    :func:`prepare_run`; then, per ``config.direction``, :func:`translate_forward` (SAMBA,
    ridge baseline, predicted BOLD, HRFs, metrics) and :func:`translate_reverse` (BOLD ->
    source-parcel band power).
    """
    start = time.time()
    logger.info("%s: %s + %s", pair.label, pair.ephys_file.name,
                ", ".join(f.name for f in pair.bold_files))
    inputs = cache.load_inputs() if cache is not None else None
    if inputs is None:
        inputs = prepare_run(pair, config, templates_dir)
        if cache is not None:
            cache.store_inputs(inputs)
    else:
        logger.info("%s: prepared inputs read from the work-directory cache.", pair.label)
    common = run_common(pair, inputs, config, links)
    written, summary = [], {"n_parcels": len(inputs.atlas.names)}
    report = reverse_metrics = forward_fit = reverse_fit = None
    if config.direction in ("ephys-to-bold", "both"):
        files, forward, report, forward_fit = translate_forward(pair, config, inputs, common)
        written += files
        summary.update(forward)
    if config.direction in ("bold-to-ephys", "both"):
        files, reverse, reverse_metrics, reverse_fit = translate_reverse(pair, config, inputs,
                                                                         common)
        written += files
        summary.update(reverse)
    if report is not None and reverse_metrics is not None:
        report.reverse = reverse_metrics
    seconds = time.time() - start
    logger.info("%s: done in %.1f s", pair.label, seconds)
    summary.update(n_outputs=len(written), seconds=seconds)
    methods = run_methods(pair, inputs, config, templates_dir, forward_fit=forward_fit,
                       reverse_fit=reverse_fit, ridge_alpha=summary.get("ridge_alpha"))
    return RunResult(label=pair.label, outputs=written, summary=summary, report=report,
                     methods=methods)


def _write_reports(config: Config, outcomes) -> None:
    """``sub-<label>.html`` per participant (all its runs) and ``logs/CITATION.*``."""
    from ..reports.boilerplate import render_boilerplate
    from ..reports.participant import render_participant_report

    out = config.output_dir
    runs = [run for outcome in outcomes for run in outcome.runs]
    for outcome in outcomes:
        reports = [r.report for r in outcome.runs if r.report is not None]
        if reports or outcome.summary is not None:
            path = render_participant_report(reports, out / f"sub-{outcome.subject}.html",
                                             subject=outcome.subject, summary=outcome.summary)
            outcome.runs[0].outputs.append(path)
    methods = [r.methods for r in runs if r.methods is not None]
    if methods:
        files = render_boilerplate(methods[0], out / "logs")
        runs[0].outputs.extend(files)
