"""The participant level: every selected (EEG/MEG, BOLD) pair, prepared, translated, written."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from ..bids.derivatives import write_dataset_description
from ..bids.layout import (
    collect_pairs,
    default_derivatives,
    index_dataset,
    validate_dataset,
)
from ..config import Config
from ..errors import CantCreateError
from ..templates.locate import find_templates_dir
from .cache import RunCache
from .execution import (
    collect_warnings,
    record_config,
    remove_stale_temporaries,
    terminate_cleanly,
)
from .inputs import EPHYS_SUBJECT, prepare_run
from .outputs import source_uri
from .results import Results, RunResult
from .translate import translate_forward, translate_reverse

logger = logging.getLogger("samba_bids.workflows")


def run_participant_level(config: Config) -> Results:
    """Process every selected (EEG/MEG, BOLD) pair; see :func:`process_run`."""
    if not config.skip_bids_validation:
        validate_dataset(config.bids_dir)
    derivatives = config.derivatives or default_derivatives(config.bids_dir, config.output_dir)
    work_dir = config.resolved_work_dir
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CantCreateError(f"Cannot create the work directory {work_dir} ({err}).") from err
    layout = index_dataset(config.bids_dir, derivatives, work_dir)
    pairs = collect_pairs(
        layout,
        participant_label=config.participant_label,
        session_label=config.session_label,
        task_label=config.task_label,
        modality=config.modality,
        bold_space=config.bold_space,
    )
    templates_dir = find_templates_dir(config.templates_dir)
    links = {"raw": config.bids_dir, **derivatives}
    write_dataset_description(config.output_dir, links)
    record_config(config)
    results = Results(output_dir=config.output_dir)
    with terminate_cleanly():
        for pair in pairs:
            _participant_run(pair, config, templates_dir, links, work_dir, results)
        _write_reports(config, pairs, results.runs)
    return results


def _participant_run(pair, config, templates_dir, links, work_dir, results) -> None:
    """One run of the participant level, from the cache when it finished before."""
    remove_stale_temporaries(config.output_dir, pair.entities["subject"])
    cache = RunCache(work_dir, pair, config, templates_dir)
    result = cache.load_result()
    if result is not None:
        logger.info("%s: finished before with the same inputs and settings (%s); skipped.",
                    pair.label, cache.folder)
    else:
        from ..bids.derivatives import record_writes

        with collect_warnings() as warned, record_writes() as written:
            try:
                result = process_run(pair, config, templates_dir, links, cache=cache)
            except BaseException:  # outputs appear whole or not at all
                for path in written:
                    with contextlib.suppress(OSError):
                        Path(path).unlink()
                if written:
                    logger.warning("%s failed: removed the %d output file(s) it had written.",
                                   pair.label, len(written))
                raise
        if result.report is not None:
            result.report.warnings = list(warned)
        cache.store_result(result)
    results.runs.append(result)


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
    sources = [source_uri(links, f) for f in [pair.ephys_file, *pair.bold_files]]
    inputs = cache.load_inputs() if cache is not None else None
    if inputs is None:
        inputs = prepare_run(pair, config, templates_dir)
        if cache is not None:
            cache.store_inputs(inputs)
    else:
        logger.info("%s: prepared inputs read from the work-directory cache.", pair.label)
    common = {
        "Sources": sources,
        "RepetitionTime": inputs.tr_s,
        "Alignment": inputs.clock,
        "ElectrophysiologyModality": inputs.modality.upper(),
        "Space": pair.space,
        "SourceReconstruction": inputs.parcels.provenance,
        "Atlas": {"BOLD": f"Schaefer 2018, 7 networks, {config.bold_atlas_scale} parcels",
                  "Electrophysiology": f"Schaefer 2018, 7 networks, "
                                       f"{config.ephys_atlas_scale} parcels on {EPHYS_SUBJECT}"},
    }
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
    from ..reports.boilerplate import methods_context

    methods = methods_context(
        config, provenance=inputs.parcels.provenance, split=inputs.split, tr_s=inputs.tr_s,
        modality=inputs.modality, bold_space=pair.space, forward_fit=forward_fit,
        reverse_fit=reverse_fit, templates_dir=templates_dir, n_channels=inputs.n_channels,
        sfreq_hz=inputs.sfreq_hz, alignment=inputs.clock,
        confound_columns=inputs.confound_columns, n_bold_parcels=len(inputs.atlas.names),
        n_source_parcels=len(inputs.parcels.names), ridge_alpha=summary.get("ridge_alpha"),
        run_label=pair.label)
    return RunResult(label=pair.label, outputs=written, summary=summary, report=report,
                     methods=methods)


def _write_reports(config: Config, pairs, runs) -> None:
    """``sub-<label>.html`` per participant (all its runs) and ``logs/CITATION.*``."""
    from ..reports.boilerplate import render_boilerplate
    from ..reports.participant import render_participant_report

    out = config.output_dir
    by_subject = {}
    for pair, run_result in zip(pairs, runs):
        by_subject.setdefault(pair.entities["subject"], []).append(run_result)
    for subject, subject_runs in by_subject.items():
        reports = [r.report for r in subject_runs if r.report is not None]
        if reports:
            path = render_participant_report(reports, out / f"sub-{subject}.html",
                                             subject=subject)
            subject_runs[0].outputs.append(path)
    methods = [r.methods for r in runs if r.methods is not None]
    if methods:
        files = render_boilerplate(methods[0], out / "logs")
        runs[0].outputs.extend(files)
