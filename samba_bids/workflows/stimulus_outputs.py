"""The outputs of the group level with stimulus pairing (``--pairing stimulus``; issue 16).

What :func:`~.stimulus.run_stimulus_translation` computed, written under ``OUTPUT_DIR/group/``
and ``OUTPUT_DIR/logs/``: per held-out segment the predicted group BOLD (parcel tables and the
BOLD space), the ridge's, the target and per-parcel scores; per task the segment scores, the
final model's HRFs, its checkpoint, the HRF and held-out r maps, the decoding table, the HTML
report and the methods boilerplate. Split from :mod:`.stimulus` (the computation) as
:mod:`.outputs` is from :mod:`.translate` at the participant level.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .stimulus import DECODING_WINDOW_S, SPEARMAN_WINDOWS_S, TARGET_DOC, StimulusResult

logger = logging.getLogger("samba_bids.workflows")


def write_stimulus_outputs(result: StimulusResult) -> list:
    """The outputs of :func:`run_stimulus_translation` under ``OUTPUT_DIR/group/``.

    Per held-out segment (entities ``task``, ``run`` of its runs when they share one, atlas):
    the predicted group BOLD (``desc-stimsamba_timeseries.tsv`` and in the BOLD space as
    ``desc-stimsamba_bold``), the ridge's (``desc-stimridge``), the target
    (``desc-stimgroup_timeseries.tsv``), per-parcel scores (``desc-stimsamba_metrics.tsv``);
    per task: one row per segment (``desc-stimulus_metrics.tsv``), the final model's HRFs
    (``desc-stimsamba_hrf.tsv``) and the model (``desc-stimsamba_model.pt``); the methods
    boilerplate ``logs/CITATION_pairing-stimulus.{md,bib,html}`` and the report
    (``group_task-<task>_pairing-stimulus.html``), whose methods paragraphs are the same text
    (:func:`stimulus_methods`).

    Returns
    -------
    list of pathlib.Path
        Nothing is left of a write that fails midway (the files written are removed).
    """
    written = []
    try:
        _write_stimulus_outputs(result, written)
    except BaseException:  # outputs appear whole or not at all
        import contextlib

        from ..bids.derivatives import sidecar_path

        for path in written:
            for name in (path, sidecar_path(path)):
                with contextlib.suppress(OSError):
                    name.unlink()
        raise
    return written


def _write_stimulus_outputs(result, written) -> None:
    from ..bids.derivatives import write_output
    from ..bold import project_parcels
    from ..templates.spaces import SURFACE_SPACES
    from .outputs import ATLAS, SEG, Z_UNITS, hrf_column_doc, save_model, source_uri

    config = result.config
    out = config.output_dir
    derivatives = {"raw": config.bids_dir, **(config.derivatives or {})}
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.bold_atlas_scale}
    task = result.segments[0].segment.task
    sources_all = []
    pairing = {"Pairing": "stimulus", "StimulusEvent": config.stimulus_event or "stim_file",
               "StimulusFeatures": config.stimulus_features}
    for prepared, prediction, metrics in zip(result.segments, result.predictions,
                                             result.metrics):
        segment = prepared.segment
        entities = {"task": segment.task, "run": segment.run}
        sources = [source_uri(derivatives, f) for r in segment.ephys
                   for f in [r.run.ephys_file, r.event.events_file]]
        sources += [source_uri(derivatives, f) for r in segment.bold
                    for f in [*r.run.bold_files, r.event.events_file]]
        sources_all += sources
        common = {**pairing, "Stimulus": segment.stimulus, "RepetitionTime": prepared.tr_s,
                  "StimulusTimeOfFirstSample": prepared.tr_s / 2.0,
                  "EphysParticipants": sorted(prepared.features),
                  "BoldParticipants": sorted(prepared.bold)}
        names = [str(n) for n in prepared.atlas.names]
        for key, values, what in (
                ("stimulus_predicted", prediction.samba,
                 "SAMBA's prediction of the group BOLD, by the model trained on the other "
                 "segments"),
                ("stimulus_ridge", prediction.ridge,
                 "the canonical-HRF band-power ridge's prediction, trained likewise"),
                ("stimulus_observed", prepared.target,
                 "the mean over the BOLD participants of their z-scored BOLD, z-scored")):
            written.append(write_output(out, key, entities, pd.DataFrame(values.T, columns=names),
                                        sources=sources, **atlas_entities, parameters={
                **common, "Units": Z_UNITS,
                "Description": f"Held-out segment {segment.stimulus}: {what}; one row per "
                               "volume of the stimulus-time grid (k TR + TR/2 s after the "
                               "stimulus onset)."}))
        written.append(write_output(out, "stimulus_parcels", entities, metrics,
                                    sources=sources, **atlas_entities, parameters={
            **common,
            "Description": "Scores of the held-out segment against the group BOLD, per parcel.",
            "pearson_r": {"Description": "Pearson r of SAMBA's prediction and the group BOLD"},
            "spearman_rho": {"Description": "Spearman rho of the same"},
            "ridge_pearson_r": {"Description": "Pearson r of the ridge's prediction"},
            "isc": {"Description": "leave-one-out inter-subject correlation of the BOLD "
                                   "participants (each vs the mean of the others), mean"},
            "ceiling_r": {"Description": "highest r a perfect model of the shared response "
                                        "can reach against the mean of the BOLD participants "
                                        "(from the pairwise ISC, Spearman-Brown)"}}))
        reference = prepared.reference
        files = (reference.bold_files if reference.space in SURFACE_SPACES
                 else reference.bold_files[0])
        images = project_parcels(prediction.samba.astype(np.float32), prepared.atlas, files,
                                 tr_s=prepared.tr_s)
        space = {"space": reference.space,
                 **{k: v for k, v in reference.bold_entities.items()
                    if k in ("resolution", "density")}}
        if reference.space in SURFACE_SPACES:
            for hemi, img in zip(("L", "R"), images):
                written.append(write_output(out, "stimulus_bold", {**entities, **space}, img,
                                            extension=".func.gii", hemi=hemi, sources=sources,
                                            parameters={**common, "Units": Z_UNITS,
                    "Description": "SAMBA-predicted group BOLD of the held-out segment; each "
                                   "parcel's value repeated over its vertices."}))
        else:
            extension = ".dtseries.nii" if str(files).endswith(".dtseries.nii") else ".nii.gz"
            written.append(write_output(out, "stimulus_bold", {**entities, **space}, images[0],
                                        extension=extension, sources=sources,
                                        parameters={**common, "Units": Z_UNITS,
                "Description": "SAMBA-predicted group BOLD of the held-out segment; each "
                               "parcel's value repeated over its voxels or grayordinates."}))
    written.append(write_output(out, "stimulus_metrics", {"task": task}, result.summaries,
                                sources=sources_all, **atlas_entities, parameters={
        **pairing,
        "Description": "Cross-validation by stimulus segment: each row is a segment predicted "
                       "by SAMBA and the ridge trained on the other segments, scored against "
                       "the mean BOLD of the fMRI participants on all its volumes.",
        "pooled_spearman": {"Description": "Spearman rho over all (parcel, volume) pairs of "
                                           "the segment, as SAMBA's public code reports"},
        "pooled_spearman_30s": {"Description": "the same within consecutive 30-s windows, "
                                               "averaged (the paper's 30-second predictions)"},
        "pooled_spearman_60s": {"Description": "the same on 60-s windows"},
        "median_isc": {"Description": "median over parcels of the leave-one-out ISC"},
        "median_ceiling_r": {"Description": "median over parcels of ceiling_r"}}))
    final = result.final
    hrf = final.model.hrf.parameters_frame(result.segments[0].atlas.names)
    written.append(write_output(out, "stimulus_hrf", {"task": task}, hrf, sources=sources_all,
                                **atlas_entities, parameters={
        **pairing, "Description": "HRFs of SAMBA trained on every segment (SPM "
                                  "parametrisation, initialised at the canonical HRF).",
        **{col: hrf_column_doc(col) for col in hrf.columns if col != "parcel"}}))
    written.extend(_write_maps(result, hrf, sources_all, atlas_entities, pairing))
    written.append(write_output(out, "stimulus_model", {"task": task}, final.model,
                                writer=save_model, sources=sources_all, parameters={
        **pairing, "Description": "SAMBA trained on every stimulus segment.",
        "Config": config.to_dict(), "ConfigDigest": config.digest(),
        "RepetitionTime": result.segments[0].tr_s, "HistoryVolumes": int(final.model.history),
        "WindowTRs": int(final.window_trs), "BestEpoch": int(final.best_epoch),
        "TrainedOn": [s.segment.stimulus for s in result.segments]}))
    if result.decoding is not None:
        from ..decoding import decoding_column_docs

        written.append(write_output(out, "stimulus_decoding", {"task": task}, result.decoding,
                                    sources=sources_all, **atlas_entities, parameters={
            **pairing,
            "Description": f"Which stimulus segment (target segment), and which window of "
                           f"the film (target window), is a {DECODING_WINDOW_S:g}-s window "
                           "from? Segment: logistic regression (scikit-learn, standardised "
                           "features) on the window means; permutation null: segment labels "
                           "shuffled between blocks of windows within each participant. "
                           "Window: the training participants' mean pattern of each window "
                           "that correlates best (between-subject time-segment "
                           "classification, Haxby et al. 2011); null: window labels shuffled "
                           "within each participant. Both cross-validated "
                           "leave-one-participant-out.",
            "WindowLength": DECODING_WINDOW_S,
            "target": TARGET_DOC,
            "FeatureSets": {
                "samba_latent": "SAMBA's neural drive per BOLD parcel (before the HRF), from "
                                "the model that did not train on the segment",
                "band_power": "log band power per source parcel and wavelet band",
                "ridge_prediction": "the ridge's held-out prediction per BOLD parcel",
                "observed_bold": "the BOLD participants' z-scored parcel BOLD"},
            **decoding_column_docs()}))
    methods = stimulus_methods(result)
    written.extend(_write_boilerplate(result, methods))
    written.append(_write_report(result, hrf, methods))


def _write_maps(result, hrf, sources, atlas_entities, pairing) -> list:
    """The final model's HRF time to peak and the mean held-out r per parcel, as maps in the
    space of the first BOLD run (``desc-stimhrfttp`` / ``desc-stimtestr`` ``_boldmap``)."""
    from ..bids.derivatives import write_output
    from ..bold import parcel_map_images
    from ..templates.spaces import SURFACE_SPACES

    prepared = result.segments[0]
    atlas, reference = prepared.atlas, prepared.reference
    mean_r = np.nanmean([m["pearson_r"].to_numpy(dtype=float) for m in result.metrics], axis=0)
    maps = {"stimulus_hrfttp_map": (hrf["time_to_peak_s"].to_numpy(dtype=np.float32),
                                    "time to peak of the final model's HRFs, s"),
            "stimulus_testr_map": (mean_r.astype(np.float32),
                                   "mean over held-out segments of SAMBA's Pearson r")}
    files = reference.bold_files if reference.space in SURFACE_SPACES else reference.bold_files[0]
    entities = {"task": prepared.segment.task, "space": reference.space,
                **{k: v for k, v in reference.bold_entities.items()
                   if k in ("resolution", "density")}}
    written = []
    for key, (values, what) in maps.items():
        images = parcel_map_images({key: values}, atlas, files)
        sidecar = {**pairing, "Space": reference.space,
                   "Description": f"Per-parcel {what}, repeated over each parcel's elements "
                                  "(0 outside every parcel)."}
        if atlas.kind == "surface":
            for hemi, img in zip(("L", "R"), images):
                written.append(write_output(result.config.output_dir, key, entities, img,
                                            extension=".func.gii", hemi=hemi, sources=sources,
                                            parameters=sidecar))
        elif atlas.kind == "cifti":
            written.append(write_output(result.config.output_dir, key, entities, images[0],
                                        extension=".pscalar.nii", density=None,
                                        sources=sources, parameters=sidecar, **atlas_entities))
        else:
            written.append(write_output(result.config.output_dir, key, entities, images[0],
                                        extension=".nii.gz", sources=sources,
                                        parameters=sidecar))
    return written


def stimulus_methods(result: StimulusResult):
    """What the run did, for its methods text (boilerplate and report).

    Returns
    -------
    samba_bids.reports.stimulus.StimulusMethods
        Counts of the design, the TR, the windows of the pooled Spearman
        (:data:`SPEARMAN_WINDOWS_S`) and the decoding's sets, window
        (:data:`DECODING_WINDOW_S`), permutations and scheme (from ``result.decoding``).
    """
    from ..reports.stimulus import StimulusMethods

    first, decoding = result.segments[0], result.decoding
    meg = any(r.run.ephys_file.name.endswith((".fif", ".con", ".sqd", ".ds"))
              for s in result.segments for r in s.segment.ephys)
    extra = {}
    if decoding is not None and len(decoding):
        extra = dict(decoding_sets=tuple(decoding["feature_set"]),
                     decoding_permutations=int(decoding["n_permutations"].max()),
                     decoding_permutation=str(decoding["permutation"].iloc[0]),
                     decoding_confidence=float(decoding["confidence_level"].iloc[0]))
    return StimulusMethods(config=result.config, n_ephys=len(result.design.ephys_subjects),
                           n_bold=len(result.design.bold_subjects),
                           n_segments=len(result.segments), modality="meg" if meg else "eeg",
                           tr_s=first.tr_s, spearman_windows_s=SPEARMAN_WINDOWS_S,
                           decoding_window_s=DECODING_WINDOW_S, **extra)


def _write_boilerplate(result: StimulusResult, methods) -> list:
    """``logs/CITATION_pairing-stimulus.{md,bib,html}`` (the methods boilerplate)."""
    from ..bids.derivatives import output_path
    from ..reports.stimulus import render_stimulus_boilerplate

    logs = output_path(result.config.output_dir, "stimulus_citation", {}, extension=".md").parent
    return render_stimulus_boilerplate(methods, logs)


def _write_report(result: StimulusResult, hrf, methods):
    """``group_task-<task>_pairing-stimulus.html`` (:mod:`~samba_bids.reports.stimulus`)."""
    from ..bids.derivatives import output_path
    from ..reports.stimulus import (
        StimulusReport,
        render_stimulus_report,
        stimulus_methods_text,
    )

    config, first = result.config, result.segments[0]
    rows = []
    for prepared in result.segments:
        for run in prepared.segment.ephys + prepared.segment.bold:
            rows.append({"participant": f"sub-{run.subject}",
                         "kind": "BOLD" if run.kind == "bold" else "EEG/MEG",
                         "task": prepared.segment.task, "run": run.run.entities.get("run"),
                         "stimulus": run.event.stimulus, "onset_s": run.event.onset_s,
                         "events_file": run.event.events_file.name})
    names = [str(n) for n in first.atlas.names]
    parcels = pd.DataFrame({
        "parcel": names,
        "mean_pearson_r": np.mean([m["pearson_r"] for m in result.metrics], axis=0),
        "mean_ridge_pearson_r": np.mean([m["ridge_pearson_r"] for m in result.metrics], axis=0),
        "mean_isc": np.mean([m["isc"] for m in result.metrics], axis=0),
        "time_to_peak_s": hrf.set_index("parcel")["time_to_peak_s"].reindex(names).to_numpy()})
    report = StimulusReport(
        pairing=pd.DataFrame(rows), left_out=list(result.design.left_out),
        segments=result.summaries, parcels=parcels, centroids_mm=first.atlas.centroids_mm,
        decoding=result.decoding,
        methods=stimulus_methods_text(methods),
        parameters=config.to_dict(),
        provenance={"BIDS_DIR": str(config.bids_dir), "BOLD space": first.reference.space,
                    "Atlas": f"Schaefer 2018, 7 networks, {config.bold_atlas_scale} parcels"},
        warnings=list(result.warnings))
    return render_stimulus_report(report, output_path(config.output_dir, "stimulus_report",
                                                      {"task": first.segment.task}))
