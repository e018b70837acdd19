"""The group level: participant outputs summarised across participants; the group model."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.derivatives import bids_uri, derivative_path, write_output
from ..bids.layout import collect_pairs, default_derivatives, index_dataset
from ..config import Config
from ..errors import DataError, UsageError
from ..templates.locate import find_templates_dir
from .cache import RunCache
from .execution import collect_warnings, record_config
from .inputs import prepare_run
from .outputs import MAP_DESCS, source_uri
from .results import Results, RunResult

logger = logging.getLogger("samba_bids.workflows")


#: Entities of the atlas a parcel-wise output was computed with.
_ATLAS_KEYS = ("atlas", "seg", "scale")


def collect_participant_outputs(output_dir, participant_label=()) -> list[dict]:
    """The participant level's runs found in OUTPUT_DIR, for the group level.

    A run is a ``desc-samba_metrics.tsv`` (with its JSON sidecar); its HRF table and model
    sidecar are found by name (:func:`~.bids.derivatives.derivative_path`).

    Parameters
    ----------
    output_dir : path-like
        The derivatives folder the participant level wrote.
    participant_label : sequence of str
        Participants to include (without ``sub-``); empty: all.

    Returns
    -------
    list of dict
        One per run, sorted by file name: ``entities`` (of the metrics file), ``metrics``,
        ``hrf`` (DataFrames), ``sidecar`` (the metrics JSON), ``model`` (the model JSON, or
        {} when absent), ``metrics_file``.

    Raises
    ------
    NoInputError
        If OUTPUT_DIR holds no participant run (for the selected participants).
    DataError
        If a run's HRF table is missing or a table cannot be read.
    """
    import json

    from ..bids.derivatives import parse_derivative_name, sidecar_path
    from ..errors import DataError, NoInputError

    output_dir = Path(output_dir)
    wanted = {str(p) for p in participant_label}
    runs = []
    for path in sorted(output_dir.glob("sub-*/**/func/*_desc-samba_metrics.tsv")):
        entities, _, _ = parse_derivative_name(path)
        if wanted and entities.get("subject") not in wanted:
            continue
        hrf_path = path.with_name(path.name.replace("_desc-samba_metrics.tsv",
                                                    "_desc-samba_hrf.tsv"))
        run_entities = {k: v for k, v in entities.items() if k not in _ATLAS_KEYS}
        model_json = sidecar_path(derivative_path(output_dir, run_entities, suffix="model",
                                                  extension=".pt", datatype="model",
                                                  desc="samba"))
        try:
            metrics = pd.read_csv(path, sep="\t", na_values="n/a")
            hrf = pd.read_csv(hrf_path, sep="\t", na_values="n/a")
            sidecar = json.loads(sidecar_path(path).read_text())
        except (OSError, ValueError) as err:
            raise DataError(
                f"{path.name}: cannot read this run's metrics, sidecar or HRF table ({err}); "
                f"rerun the participant level for sub-{entities.get('subject')}."
            ) from err
        if not model_json.is_file():  # a participant model across runs
            model_json = sidecar_path(derivative_path(
                output_dir, {"subject": entities.get("subject")}, suffix="model",
                extension=".pt", datatype="model", desc="samba"))
        model = json.loads(model_json.read_text()) if model_json.is_file() else {}
        runs.append({"entities": entities, "metrics": metrics, "hrf": hrf, "sidecar": sidecar,
                     "model": model, "metrics_file": path})
    if not runs:
        selection = f" for sub-{', sub-'.join(sorted(wanted))}" if wanted else ""
        raise NoInputError(
            f"{output_dir} holds no participant-level outputs (*_desc-samba_metrics.tsv)"
            f"{selection}; run 'samba-bids BIDS_DIR OUTPUT_DIR participant' first."
        )
    return runs


def group_table(runs) -> pd.DataFrame:
    """One row per participant and run: the headline scores of :func:`collect_participant_outputs`.

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``session``, ``task``, ``run``, ``space``, ``n_parcels``,
        ``median_pearson_r``, ``median_spearman_rho``, ``pooled_spearman``,
        ``ridge_median_pearson_r``, ``fraction_significant``, ``median_time_to_peak_s``,
        ``n_test_volumes``, ``best_epoch`` (NaN/None where the participant output lacks it).
    """
    rows = []
    for item in runs:
        e, metrics, sidecar = item["entities"], item["metrics"], item["sidecar"]
        summary = sidecar.get("Summary", {})
        rows.append({
            "participant_id": f"sub-{e['subject']}",
            "session": e.get("session"),
            "task": e.get("task"),
            "run": e.get("run"),
            "space": sidecar.get("Space"),
            "n_parcels": int(len(metrics)),
            "median_pearson_r": float(metrics["pearson_r"].median()),
            "median_spearman_rho": float(metrics["spearman_rho"].median()),
            "pooled_spearman": summary.get("pooled_spearman", np.nan),
            "ridge_median_pearson_r": (float(metrics["ridge_pearson_r"].median())
                                       if "ridge_pearson_r" in metrics else np.nan),
            "fraction_significant": summary.get("fraction_significant", np.nan),
            "median_time_to_peak_s": float(item["hrf"]["time_to_peak_s"].median()),
            "n_test_volumes": len(sidecar.get("TestVolumes", [])),
            "best_epoch": item["model"].get("BestEpoch"),
        })
    return pd.DataFrame(rows)


def run_group_level(config: Config) -> Results:
    """Summarise the participant level's outputs across participants.

    Reads every run's ``desc-samba_metrics.tsv`` / ``desc-samba_hrf.tsv`` in OUTPUT_DIR
    (:func:`collect_participant_outputs`) and writes, under ``OUTPUT_DIR/group/``, per task and
    atlas: ``desc-participants_metrics.tsv`` (one row per participant and run,
    :func:`group_table`) and ``desc-parcels_metrics.tsv`` (per parcel: mean, SD and count
    across participants of the test Pearson r, the ridge baseline's r and the HRF time to
    peak; :func:`~.metrics.group_parcel_summary`); per task and BOLD space, the mean and SD
    across participants of the participant maps (``desc-testr``/``desc-hrfttp`` ``_boldmap``)
    as ``desc-<map>mean``/``desc-<map>sd`` maps in the same format; and ``group.html``.

    Raises
    ------
    NoInputError
        If OUTPUT_DIR holds no participant outputs.
    """
    start = time.time()
    out = config.output_dir
    if config.pairing == "stimulus":
        return _stimulus_group_level(config, start)
    runs = collect_participant_outputs(out, config.participant_label)
    written = []
    table = group_table(runs)
    from ..training import init_distributed

    world, rank = init_distributed() if config.group_model else (1, 0)
    with collect_warnings() as warned:
        group_model = run_group_model(config, table) if config.group_model else None
        if rank != 0:  # torchrun: the other processes only helped to train
            return Results(output_dir=out)
        if group_model is not None:
            written += _write_group_model(out, group_model, runs)
        written += _group_maps(out)
        written += _group_outputs(config, runs, table, warned)
    seconds = time.time() - start
    logger.info("group level: %d runs of %d participants, %d files in %.1f s", len(runs),
                table["participant_id"].nunique(), len(written), seconds)
    summary = {"n_runs": len(runs), "n_participants": int(table["participant_id"].nunique()),
               "group_median_pearson_r": float(table["median_pearson_r"].median()),
               "n_outputs": len(written), "seconds": seconds}
    results = Results(output_dir=out)
    results.runs.append(RunResult(label="group", outputs=written, summary=summary))
    return results


def _stimulus_group_level(config: Config, start: float) -> Results:
    """``--pairing stimulus``: the translator across people (:mod:`.stimulus`).

    The settings are kept in ``logs/config_pairing-stimulus.json`` before any work
    (:func:`~.execution.record_config`): a rerun into the same OUTPUT_DIR with other settings
    is refused unless ``--overwrite``, as the participant level's is (whose
    ``logs/config.json`` is left alone).

    Raises
    ------
    UsageError
        With ``--group-model``; or if OUTPUT_DIR's stimulus outputs were made with other
        settings and ``config.overwrite`` is False.
    """
    from ..bids.derivatives import output_path, write_dataset_description
    from .stimulus import run_stimulus_translation
    from .stimulus_outputs import write_stimulus_outputs

    if config.group_model:
        raise UsageError("--group-model trains across participants paired with themselves; "
                         "with --pairing stimulus the group level trains its own model.")
    record_config(config, output_path(config.output_dir, "stimulus_config", {}).name)
    with collect_warnings() as warned:
        result = run_stimulus_translation(config)
        result.warnings = list(warned)
        write_dataset_description(config.output_dir, {"raw": config.bids_dir,
                                                      **(config.derivatives or {})})
        written = write_stimulus_outputs(result)
    summary = {"n_segments": len(result.segments),
               "n_ephys_participants": len(result.design.ephys_subjects),
               "n_bold_participants": len(result.design.bold_subjects),
               "median_pearson_r": float(result.summaries["median_pearson_r"].median()),
               "n_outputs": len(written), "seconds": time.time() - start}
    logger.info("group level (stimulus pairing): %d segments, %d EEG/MEG and %d BOLD "
                "participants, %d files in %.1f s", summary["n_segments"],
                summary["n_ephys_participants"], summary["n_bold_participants"], len(written),
                summary["seconds"])
    results = Results(output_dir=config.output_dir)
    results.runs.append(RunResult(label="group", outputs=written, summary=summary,
                                  detail=result))
    return results


def participant_settings(config: Config) -> Config:
    """``config`` with the settings the participant level recorded in ``logs/config.json``.

    The group model must see the data as the participant models did (atlases, filters,
    windows, model sizes); the command line of the group level only selects.

    Raises
    ------
    NoInputError
        If OUTPUT_DIR has no ``logs/config.json`` (no participant level ran there).
    """
    import json

    from ..errors import NoInputError

    path = Path(config.output_dir) / "logs" / "config.json"
    if not path.is_file():
        raise NoInputError(f"{path} is missing; run the participant level into "
                           f"{config.output_dir} first.")
    settings = json.loads(path.read_text()).get("Settings", {})
    known = {f.name for f in dataclasses.fields(Config)}
    settings = {k: v for k, v in settings.items() if k in known}
    settings["init_from"] = None  # the group model is trained from scratch
    return dataclasses.replace(config, analysis_level="participant", **settings)


@dataclass
class GroupModelResult:
    """Leave-one-participant-out evaluation of one model trained across participants."""

    table: pd.DataFrame
    metrics: dict  # run label -> per-parcel metrics frame
    names: list
    n_parameters: int
    sources: list
    processes: int = 1
    final: object = None  # FitResult of the model trained on every participant
    final_sidecar: dict = dataclasses.field(default_factory=dict)
    config: object = None  # the participant level's settings


def run_group_model(config: Config, participant_table) -> GroupModelResult:
    """One SAMBA model across participants, evaluated leave-one-participant-out.

    For each participant, a model is trained on the other participants' training blocks
    (windows never cross runs, :func:`~.training.concatenate_runs`; early stopping on their
    validation blocks) and scored on the held-out participant's test block, beside that
    participant's own model. Inputs come from the participant level's work-directory cache
    (same ``--work-dir``), else they are prepared again from BIDS_DIR. Under ``torchrun``
    every process trains on its share of each batch (DDP); rank 0 writes.

    Raises
    ------
    UsageError
        With fewer than two participants.
    """
    from ..metrics import parcel_metrics
    from ..training import concatenate_runs, distributed_world, fit_samba, predict_run

    pconfig = participant_settings(config)
    derivatives = pconfig.derivatives or default_derivatives(pconfig.bids_dir,
                                                              pconfig.output_dir)
    work_dir = pconfig.resolved_work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    layout = index_dataset(pconfig.bids_dir, derivatives, work_dir)
    pairs = collect_pairs(layout, participant_label=pconfig.participant_label,
                          session_label=pconfig.session_label, task_label=pconfig.task_label,
                          modality=pconfig.modality, bold_space=pconfig.bold_space)
    templates_dir = find_templates_dir(pconfig.templates_dir)
    prepared = []
    for pair in pairs:
        cache = RunCache(work_dir, pair, pconfig, templates_dir)
        inputs = cache.load_inputs()
        if inputs is None:
            inputs = prepare_run(pair, pconfig, templates_dir)
            cache.store_inputs(inputs)
        prepared.append((pair, inputs))
    subjects = sorted({pair.entities["subject"] for pair, _ in prepared})
    if len(subjects) < 2:
        raise UsageError("--group-model needs at least two participants; "
                         f"found {len(subjects)}.")
    own = {(pid, _label(run)): r for pid, run, r in zip(
        participant_table["participant_id"], participant_table["run"],
        participant_table["median_pearson_r"])}
    rows, metrics, n_parameters = [], {}, 0
    for held_out in subjects:
        train = [(i.features, i.observed, i.split) for p, i in prepared
                 if p.entities["subject"] != held_out]
        features, bold, split = concatenate_runs(train)
        reference = prepared[0][1]
        logger.info("group model without sub-%s: %d runs of %d participants", held_out,
                    len(train), len(subjects) - 1)
        fit = fit_samba(features, bold, split, reference.parcels.centroids_mm,
                        reference.atlas.centroids_mm, pconfig, tr_s=split.tr_s)
        n_parameters = fit.n_parameters
        for pair, inputs in prepared:
            if pair.entities["subject"] != held_out:
                continue
            predicted = predict_run(fit.model, inputs.features, history=inputs.split.history,
                                    window_trs=fit.window_trs)
            frame = parcel_metrics(predicted, inputs.observed, inputs.split.test,
                                   inputs.atlas.names)
            metrics[pair.label] = frame
            key = (f"sub-{held_out}", _label(pair.entities.get("run")))
            rows.append({"participant_id": f"sub-{held_out}",
                         "session": pair.entities.get("session"),
                         "task": pair.entities.get("task"), "run": pair.entities.get("run"),
                         "median_pearson_r": float(frame["pearson_r"].median()),
                         "participant_model_median_pearson_r": own.get(key, np.nan),
                         "n_training_participants": len(subjects) - 1,
                         "n_test_volumes": len(inputs.split.test),
                         "best_epoch": int(fit.best_epoch)})
    # the final group model, on every participant: what --models applies to new people
    from .translate import model_sidecar

    features, bold, split = concatenate_runs([(i.features, i.observed, i.split)
                                              for _, i in prepared])
    reference_pair, reference = prepared[0]
    logger.info("group model on all %d participants (%d runs)", len(subjects), len(prepared))
    final = fit_samba(features, bold, split, reference.parcels.centroids_mm,
                      reference.atlas.centroids_mm, pconfig, tr_s=split.tr_s)
    final_sidecar = {**model_sidecar(pconfig, reference, final, space=reference_pair.space),
                     "TrainedOn": [pair.label for pair, _ in prepared]}
    return GroupModelResult(table=pd.DataFrame(rows), metrics=metrics, final=final,
                            final_sidecar=final_sidecar, config=pconfig,
                            names=list(prepared[0][1].atlas.names), n_parameters=n_parameters,
                            processes=distributed_world()[0],
                            sources=[source_uri({"raw": pconfig.bids_dir, **derivatives}, f)
                                     for p, _ in prepared
                                     for f in [p.ephys_file, *p.bold_files]])


def _label(value):
    """An entity value as text; None for a missing one (None or NaN in a table)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _write_group_model(out, result: GroupModelResult, runs) -> list:
    """``group/..._desc-groupmodel_metrics.tsv``: the leave-one-participant-out scores; and
    ``group/desc-groupsamba_model.pt`` (+ JSON): the model trained on every participant."""
    from .outputs import save_model

    first = runs[0]["entities"]
    entities = {k: first.get(k) for k in ("task", "atlas", "seg", "scale")}
    written = []
    if result.final is not None:
        config = result.config
        written.append(write_output(out, "group_model", {}, result.final.model,
                                    writer=save_model, sources=result.sources, parameters={
            "Description": "SAMBA trained on every participant's runs (windows never cross "
                           "runs; early stopping on their validation blocks): translate a new "
                           "participant's EEG/MEG with 'samba-bids BIDS_DIR OUT participant "
                           "--models OUTPUT_DIR'.",
            "Config": config.to_dict(), "ConfigDigest": config.digest(),
            "Device": result.final.device, "TrainableParameters": result.final.n_parameters,
            "BestEpoch": result.final.best_epoch, **result.final_sidecar}))
    return written + [write_output(out, "group_model_metrics", entities, result.table,
                         sources=result.sources, parameters={
        "Description": "One SAMBA model trained across participants, evaluated "
                       "leave-one-participant-out: each row is a held-out participant's run, "
                       "scored on its test block by the model trained on the other "
                       "participants, beside the participant's own model.",
        "median_pearson_r": {"Description": "median over BOLD parcels of the test-block "
                                            "Pearson r of the group model"},
        "participant_model_median_pearson_r": {
            "Description": "the same for the participant's own model (participant level)"},
        "TrainableParameters": result.n_parameters,
        "DataParallelProcesses": result.processes,
    })]


def _group_outputs(config, runs, table, warned) -> list:
    """Group tables per task and atlas, and their reports (see :func:`run_group_level`)."""
    from ..metrics import group_parcel_summary

    out = config.output_dir
    written = []
    keys = sorted({(r["entities"].get("task"), r["entities"].get("scale")) for r in runs},
                  key=str)
    for task, scale in keys:
        chosen = [r for r in runs if (r["entities"].get("task"), r["entities"].get("scale"))
                  == (task, scale)]
        entities = {"task": task, "atlas": chosen[0]["entities"].get("atlas"),
                    "seg": chosen[0]["entities"].get("seg"), "scale": scale}
        who = [r["entities"]["subject"] for r in chosen]
        sources = [bids_uri("", out, r["metrics_file"]) for r in chosen]
        rows = table[[r in chosen for r in runs]]
        written.append(write_output(out, "group_participants", entities, rows, sources=sources,
                                    parameters={
            "Description": "Headline test-block scores, one row per participant and run.",
        }))
        parcels = group_parcel_summary([r["metrics"] for r in chosen], "pearson_r",
                                       participants=who)
        if all("ridge_pearson_r" in r["metrics"] for r in chosen):
            ridge = group_parcel_summary([r["metrics"] for r in chosen], "ridge_pearson_r",
                                         participants=who)
            parcels = parcels.merge(ridge, on="parcel", how="left")
        ttp = group_parcel_summary([r["hrf"] for r in chosen], "time_to_peak_s",
                                   participants=who)
        parcels = parcels.merge(ttp, on="parcel", how="left")
        written.append(write_output(out, "group_parcels", entities, parcels, sources=sources,
                                    parameters={
            "Description": "Per parcel across participants (runs of a participant averaged "
                           "first): mean, SD (ddof 1) and number of participants.",
        }))
        name = "group.html" if len(keys) == 1 else f"group_task-{task}_scale-{scale}.html"
        written.append(_group_report(config, chosen, rows, parcels, out / name,
                                     list(warned)))
    return written


def _group_report(config, runs, table, parcels, path, warnings=()) -> Path:
    """Render the group report of one task and atlas (:mod:`~.reports.group`)."""
    from ..bold import load_bold_atlas
    from ..reports.group import GroupReport, render_group_report

    space = runs[0]["sidecar"].get("Space", "fsaverage5")
    scale = int(runs[0]["entities"].get("scale", config.bold_atlas_scale))
    atlas = load_bold_atlas(find_templates_dir(config.templates_dir), space, scale)
    table = table.rename(columns={"participant_id": "participant"})
    parcels = parcels.assign(n=parcels["n_pearson_r"])
    report = GroupReport(
        table=table, parcels=parcels, centroids_mm=atlas.centroids_mm,
        parcel_names=list(atlas.names), parameters=config.to_dict(), warnings=list(warnings),
        provenance={"Participant outputs": str(config.output_dir), "BOLD space": space,
                    "Atlas": f"Schaefer 2018, 7 networks, {scale} parcels"},
        title=f"samba-bids group report: task {runs[0]['entities'].get('task')}",
    )
    return render_group_report(report, path)


def _group_maps(out) -> list:
    """Mean and SD across participants of the participant maps, per task, space and file."""
    from ..bids.derivatives import parse_derivative_name
    from ..bold.maps import mean_sd_images

    written = []
    for desc, (_, what) in MAP_DESCS.items():
        found = {}
        for path in sorted(Path(out).glob(f"sub-*/**/func/*_desc-{desc}_boldmap.*")):
            if path.name.endswith(".json"):
                continue
            entities, _, extension = parse_derivative_name(path)
            key = tuple(sorted((k, v) for k, v in entities.items()
                               if k not in ("subject", "session", "run", "desc"))) + (extension,)
            found.setdefault(key, []).append(path)
        for key, paths in found.items():
            entities, extension = dict(key[:-1]), key[-1]
            try:
                mean_img, sd_img = mean_sd_images(paths)
            except DataError as err:
                logger.warning("Group map of %s skipped: %s", paths[0].name, err)
                continue
            sources = [bids_uri("", out, p) for p in paths]
            for stat, img in (("mean", mean_img), ("sd", sd_img)):
                written.append(write_output(out, f"group_{desc}_{stat}", entities, img,
                                            extension=extension, sources=sources, parameters={
                    "Description": f"{'Mean' if stat == 'mean' else 'SD (ddof 1)'} across "
                                   f"{len(paths)} participant runs of the {what} map.",
                }))
    return written
