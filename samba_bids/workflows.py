"""Participant and group levels, composed from the stages (reads top to bottom like DESIGN.md).

``run(config)`` is what the command line calls. Each stage is a plain function of another module;
this module only wires them together, names the outputs and writes the sidecars.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .alignment import blocked_split, segment_ephys, standardize, volume_onsets
from .bids.derivatives import (
    bids_uri,
    derivative_path,
    write_dataset_description,
    write_image,
    write_tsv,
    write_with_sidecar,
)
from .bids.layout import collect_pairs, default_derivatives, index_dataset, validate_dataset
from .config import Config
from .errors import CantCreateError, DataError, UsageError
from .templates import CIFTI_SPACES, SURFACE_SPACES, find_templates_dir

logger = logging.getLogger(__name__)

#: Atlas entities of parcel-wise outputs (Schaefer 2018, 7 networks).
ATLAS = "Schaefer2018"
SEG = "7n"
#: The ephys source space: a FreeSurfer template subject in the templates folder.
EPHYS_SUBJECT = "fsaverage5"
#: Entities removed from the names of parcel-wise outputs (no longer in the BOLD's grid).
NO_SPACE = {"space": None, "resolution": None, "density": None}
#: Phase-randomised surrogates per parcel for the metrics' p-values.
N_NULL = 1000


@dataclass
class RunResult:
    """What one participant run produced."""

    label: str
    outputs: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    #: :class:`~.reports.participant.ParticipantReport` of the run (forward direction only).
    report: object = None
    #: :class:`~.reports.boilerplate.MethodsContext` of the run.
    methods: object = None


@dataclass
class Results:
    """Results of a whole invocation."""

    output_dir: Path
    runs: list = field(default_factory=list)

    def summary_lines(self):
        """Lines printed by the command line at the end."""
        lines = [f"samba-bids {__version__}: outputs in {self.output_dir}"]
        for run in self.runs:
            s = run.summary
            if "median_pearson_r" in s:
                lines.append(
                    f"  {run.label}: test median Pearson r {s['median_pearson_r']:.3f} "
                    f"(ridge baseline {s['ridge_median_pearson_r']:.3f}), "
                    f"{s['fraction_significant']:.0%} of {s['n_parcels']} parcels significant "
                    f"(FDR 0.05)"
                )
            if "group_median_pearson_r" in s:
                lines.append(
                    f"  group: {s['n_participants']} participants, {s['n_runs']} runs; median "
                    f"over runs of the test median Pearson r {s['group_median_pearson_r']:.3f}"
                )
            if "reverse_median_pearson_r" in s:
                lines.append(
                    f"  {run.label} reverse (BOLD -> band power): test median Pearson r "
                    f"{s['reverse_median_pearson_r']:.3f}, "
                    f"{s['reverse_fraction_significant']:.0%} of source parcel x band "
                    f"significant (FDR 0.05)"
                )
            lines.append(f"  {run.label}: {len(run.outputs)} files"
                         + (f", {s['seconds']:.0f} s" if "seconds" in s else ""))
        return lines


def run(config: Config) -> Results:
    """Run the level named in ``config.analysis_level``.

    Raises
    ------
    SambaBidsError
        Subclasses carry the BEP027 exit code (see :mod:`samba_bids.errors`).
    """
    from .resources import budget_config, thread_limits

    check_locations(config)
    config = budget_config(config)  # --mem-mb: electrophysiology chunks that fit
    with thread_limits(config.nprocs, config.omp_nthreads):  # --nprocs, --omp-nthreads
        if config.analysis_level == "participant":
            return run_participant_level(config)
        return run_group_level(config)


def check_locations(config: Config) -> None:
    """Refuse an output folder that would write into an input, or that cannot be written.

    OUTPUT_DIR may be ``BIDS_DIR/derivatives/<name>`` (the usual place,
    ``BIDS_DIR/derivatives/samba-bids``) or outside the dataset; see
    :func:`~.bids.derivatives.check_output_dir`. Checked before anything is read or written.

    Raises
    ------
    UsageError
        If OUTPUT_DIR is BIDS_DIR, inside it outside ``derivatives/<name>``, or (inside) an
        input derivatives folder.
    CantCreateError
        If OUTPUT_DIR cannot be created or written.
    """
    from .bids.derivatives import check_output_dir

    if config.bids_dir is None or config.output_dir is None:
        raise UsageError("Both BIDS_DIR and OUTPUT_DIR are required.")
    check_output_dir(config.bids_dir, config.output_dir, config.derivatives)


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


@contextlib.contextmanager
def terminate_cleanly():
    """Turn SIGTERM into :class:`~.errors.TerminatedError` inside the block.

    SLURM's time limit and ``docker stop`` send SIGTERM; raising an exception lets every
    atomic write in progress delete its temporary file (:func:`~.bids.derivatives.
    atomic_path`) before the process exits with 143. Only in the main thread.
    """
    import signal
    import threading

    from .errors import TerminatedError

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise TerminatedError("terminated by SIGTERM; rerun the same command to resume "
                              "(finished participants are skipped).")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _participant_run(pair, config, templates_dir, links, work_dir, results) -> None:
    """One run of the participant level, from the cache when it finished before."""
    remove_stale_temporaries(config.output_dir, pair.entities["subject"])
    cache = RunCache(work_dir, pair, config, templates_dir)
    result = cache.load_result()
    if result is not None:
        logger.info("%s: finished before with the same inputs and settings (%s); skipped.",
                    pair.label, cache.folder)
    else:
        from .bids.derivatives import record_writes

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


#: Settings that select what to process or where, not how: a cohort's array tasks differ in
#: them and still write into one OUTPUT_DIR.
_SELECTION_FIELDS = ("participant_label", "session_label", "task_label", "analysis_level",
                     "derivatives", "bold_space", "device", "overwrite", "omp_nthreads",
                     "mem_mb")


def _settings(config: Config) -> dict:
    """The settings that make the outputs (locations and selections left out)."""
    from .config import _LOCATION_FIELDS

    return {k: v for k, v in config.to_dict().items()
            if k not in _LOCATION_FIELDS and k not in _SELECTION_FIELDS}


def record_config(config: Config) -> Path:
    """Keep the settings of OUTPUT_DIR in ``logs/config.json``; refuse different ones.

    Parallel participant jobs of one cohort share OUTPUT_DIR and the file (written under a
    file lock). Selections (participants, sessions, tasks, BOLD space, device) may differ.

    Raises
    ------
    UsageError
        If OUTPUT_DIR was made with other settings and ``config.overwrite`` is False; the
        message lists the settings that differ.
    """
    import json

    from filelock import FileLock

    from .bids.derivatives import write_json

    path = Path(config.output_dir) / "logs" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = _settings(config)
    with FileLock(str(path.parent / ".config.json.lock")):
        if path.is_file():
            previous = json.loads(path.read_text()).get("Settings", {})
            # a setting added by a newer version is absent from older files: at its default
            # it changes nothing those outputs were made with
            defaults = _settings(Config())
            previous = {**{k: defaults[k] for k in set(settings) - set(previous)
                           if k in defaults}, **previous}
            differ = sorted(k for k in set(settings) | set(previous)
                            if settings.get(k) != previous.get(k))
            if not differ:
                return path
            if not getattr(config, "overwrite", False):
                shown = ", ".join(f"{k} ({previous.get(k)!r} -> {settings.get(k)!r})"
                                  for k in differ[:6])
                raise UsageError(
                    f"{config.output_dir} was made with other settings: {shown}; use another "
                    "OUTPUT_DIR, the same settings, or --overwrite to replace its outputs."
                )
            logger.warning("--overwrite: %s was made with other settings (%s); its outputs "
                           "are replaced as runs finish.", config.output_dir, ", ".join(differ))
        write_json(path, {"Settings": settings, "Version": __version__,
                          "Description": "Settings that made the outputs in this folder "
                                         "(selections and locations excluded)."})
    return path


def remove_stale_temporaries(output_dir, subject) -> list:
    """Delete the temporary files a killed job left in a participant's output folder.

    Outputs are written to ``.tmp-<id>-<name>`` and renamed (:func:`~.bids.derivatives.
    atomic_path`); a job killed with SIGKILL leaves that temporary behind, never a partial
    file under the final name.
    """
    folder = Path(output_dir) / f"sub-{subject}"
    stale = list(folder.rglob(".tmp-*")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        logger.info("Removed %d temporary file(s) of an interrupted run in %s.", len(stale),
                    folder)
    return stale


class RunCache:
    """The work-directory cache of one run, keyed by its inputs and the resolved settings.

    ``work_dir/cache/<run label>/<key>/``: ``inputs.pkl`` (the prepared :class:`RunInputs`)
    and ``result.pkl`` (the :class:`RunResult` of a finished run). The key hashes the input
    files (name, size, modification time), the templates folder, the package version and
    the settings that change results, so a rerun with the same inputs and settings skips
    what is done, and any change starts afresh.

    Parameters
    ----------
    work_dir : path-like
    pair : samba_bids.bids.layout.RunPair
    config : Config
    templates_dir : path-like
    """

    def __init__(self, work_dir, pair, config: Config, templates_dir):
        import hashlib
        import json

        files = [Path(pair.ephys_file), *map(Path, pair.bold_files)]
        if pair.confounds_file is not None:
            files.append(Path(pair.confounds_file))
        stem = Path(pair.ephys_file).name.split(".")[0]
        files += sorted(Path(pair.ephys_file).parent.glob(stem + ".*"))  # .eeg, .vmrk, ...
        stats = sorted({(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns)
                        for f in files if f.exists()})
        payload = {"files": stats, "templates": str(Path(templates_dir).resolve()),
                   "version": __version__, "settings": _settings(config),
                   "output_dir": str(Path(config.output_dir).resolve())}
        key = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode())
        self.folder = Path(work_dir) / "cache" / pair.label / key.hexdigest()[:16]

    def _load(self, name):
        import pickle

        path = self.folder / name
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as fid:
                return pickle.load(fid)
        except Exception as err:  # a cache written by another version, or cut short
            logger.warning("Ignoring the unreadable cache file %s (%s).", path, err)
            return None

    def _store(self, name, obj) -> None:
        import pickle

        from .bids.derivatives import atomic_path

        with atomic_path(self.folder / name) as tmp, open(tmp, "wb") as fid:
            pickle.dump(obj, fid, protocol=pickle.HIGHEST_PROTOCOL)

    def load_inputs(self):
        """The prepared :class:`RunInputs`, or None."""
        return self._load("inputs.pkl")

    def store_inputs(self, inputs: RunInputs) -> None:
        """Keep the prepared inputs (without the loaded BOLD data)."""
        self._store("inputs.pkl", dataclasses.replace(inputs, bold=None))

    def load_result(self):
        """The :class:`RunResult` of a finished run whose outputs all exist, or None."""
        result = self._load("result.pkl")
        if result is None:
            return None
        if not all(Path(p).is_file() for p in result.outputs):
            logger.info("%s: some outputs of the earlier run are missing; running again.",
                        self.folder.parent.name)
            return None
        return result

    def store_result(self, result: RunResult) -> None:
        """Mark the run finished (after every output was written)."""
        self._store("result.pkl", result)


@contextlib.contextmanager
def collect_warnings():
    """Collect the WARNING (and worse) log messages of samba-bids and MNE inside the block.

    Yields
    ------
    list of str
        Filled with ``"<logger>: <message>"`` as records arrive (for the report).
    """
    messages = []

    class _Collector(logging.Handler):
        def emit(self, record):
            messages.append(f"{record.name}: {record.getMessage()}")

    handler = _Collector(level=logging.WARNING)
    loggers = [logging.getLogger("samba_bids"), logging.getLogger("mne")]
    for log in loggers:
        log.addHandler(handler)
    try:
        yield messages
    finally:
        for log in loggers:
            log.removeHandler(handler)


def _write_reports(config: Config, pairs, runs) -> None:
    """``sub-<label>.html`` per participant (all its runs) and ``logs/CITATION.*``."""
    from .reports.boilerplate import render_boilerplate
    from .reports.participant import render_participant_report

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


#: Entities of the atlas a parcel-wise output was computed with.
_ATLAS_KEYS = ("atlas", "seg", "scale")
#: Per-parcel maps written by the participant level: desc -> (value column, description).
MAP_DESCS = {"testr": ("pearson_r", "test-block Pearson r of SAMBA's prediction"),
             "hrfttp": ("time_to_peak_s", "learned HRF time to peak, s")}


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

    from .bids.derivatives import parse_derivative_name, sidecar_path
    from .errors import DataError, NoInputError

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
    runs = collect_participant_outputs(out, config.participant_label)
    written = []
    table = group_table(runs)
    from .training import init_distributed

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

    from .errors import NoInputError

    path = Path(config.output_dir) / "logs" / "config.json"
    if not path.is_file():
        raise NoInputError(f"{path} is missing; run the participant level into "
                           f"{config.output_dir} first.")
    settings = json.loads(path.read_text()).get("Settings", {})
    known = {f.name for f in dataclasses.fields(Config)}
    return dataclasses.replace(config, analysis_level="participant",
                               **{k: v for k, v in settings.items() if k in known})


@dataclass
class GroupModelResult:
    """Leave-one-participant-out evaluation of one model trained across participants."""

    table: pd.DataFrame
    metrics: dict  # run label -> per-parcel metrics frame
    names: list
    n_parameters: int
    sources: list
    processes: int = 1


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
    from .metrics import parcel_metrics
    from .training import _distributed, concatenate_runs, fit_samba, predict_run

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
    return GroupModelResult(table=pd.DataFrame(rows), metrics=metrics,
                            names=list(prepared[0][1].atlas.names), n_parameters=n_parameters,
                            processes=_distributed()[0],
                            sources=[_uri({"raw": pconfig.bids_dir, **derivatives}, f)
                                     for p, _ in prepared
                                     for f in [p.ephys_file, *p.bold_files]])


def _label(value):
    """An entity value as text; None for a missing one (None or NaN in a table)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _write_group_model(out, result: GroupModelResult, runs) -> list:
    """``group/..._desc-groupmodel_metrics.tsv``: the leave-one-participant-out scores."""
    from .bids.derivatives import group_derivative_path

    first = runs[0]["entities"]
    entities = {k: first.get(k) for k in ("task", "atlas", "seg", "scale")}
    path = group_derivative_path(out, entities, suffix="metrics", extension=".tsv",
                                 desc="groupmodel")
    return [write_with_sidecar(path, write_tsv, result.table, {
        "Sources": result.sources,
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
    from .bids.derivatives import group_derivative_path
    from .metrics import group_parcel_summary

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
        path = group_derivative_path(out, entities, suffix="metrics", extension=".tsv",
                                     desc="participants")
        written.append(write_with_sidecar(path, write_tsv, rows, {
            "Sources": sources,
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
        path = group_derivative_path(out, entities, suffix="metrics", extension=".tsv",
                                     desc="parcels")
        written.append(write_with_sidecar(path, write_tsv, parcels, {
            "Sources": sources,
            "Description": "Per parcel across participants (runs of a participant averaged "
                           "first): mean, SD (ddof 1) and number of participants.",
        }))
        name = "group.html" if len(keys) == 1 else f"group_task-{task}_scale-{scale}.html"
        written.append(_group_report(config, chosen, rows, parcels, out / name,
                                     list(warned)))
    return written


def _group_report(config, runs, table, parcels, path, warnings=()) -> Path:
    """Render the group report of one task and atlas (:mod:`~.reports.group`)."""
    from .bold import load_bold_atlas
    from .reports.group import GroupReport, render_group_report

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
    from .bids.derivatives import group_derivative_path, parse_derivative_name

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
                mean_img, sd_img = _mean_sd_images(paths)
            except DataError as err:
                logger.warning("Group map of %s skipped: %s", paths[0].name, err)
                continue
            sources = [bids_uri("", out, p) for p in paths]
            for stat, img in (("mean", mean_img), ("sd", sd_img)):
                path = group_derivative_path(out, entities, suffix="boldmap",
                                             extension=extension, desc=f"{desc}{stat}")
                written.append(write_with_sidecar(path, write_image, img, {
                    "Sources": sources,
                    "Description": f"{'Mean' if stat == 'mean' else 'SD (ddof 1)'} across "
                                   f"{len(paths)} participant runs of the {what} map.",
                }))
    return written


def _mean_sd_images(paths):
    """Element-wise mean and SD of maps of one format and shape (NIfTI, GIFTI, CIFTI).

    Raises
    ------
    DataError
        If the maps differ in shape.
    """
    import nibabel as nib

    imgs = [nib.load(str(p)) for p in paths]

    def data(img):
        if isinstance(img, nib.GiftiImage):
            return np.stack([np.asarray(d.data, dtype=np.float64) for d in img.darrays])
        return np.asanyarray(img.dataobj, dtype=np.float64)

    stack = [data(img) for img in imgs]
    if len({a.shape for a in stack}) != 1:
        raise DataError(f"the participant maps differ in shape ({sorted({a.shape for a in stack})}).")
    stack = np.stack(stack)
    mean = np.nanmean(stack, axis=0).astype(np.float32)
    with np.errstate(invalid="ignore"):
        sd = (np.nanstd(stack, axis=0, ddof=1) if len(stack) > 1
              else np.full_like(mean, np.nan)).astype(np.float32)
    ref = imgs[0]

    def like(values):
        if isinstance(ref, nib.GiftiImage):
            arrays = [nib.gifti.GiftiDataArray(np.ascontiguousarray(row), intent=d.intent,
                                               datatype="NIFTI_TYPE_FLOAT32", meta=d.meta)
                      for row, d in zip(values, ref.darrays)]
            return nib.GiftiImage(meta=ref.meta, darrays=arrays)
        if isinstance(ref, nib.Cifti2Image):
            return nib.Cifti2Image(values, header=ref.header, nifti_header=ref.nifti_header)
        header = ref.header.copy()
        header.set_data_dtype(np.float32)
        return nib.Nifti1Image(values, ref.affine, header)

    return like(mean), like(sd)


@dataclass
class RunInputs:
    """One run made ready for the model: features, parcel BOLD and the split, on one clock.

    Attributes
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features of the electrophysiology segment of each volume.
    observed : ndarray, shape (M, V)
        Parcel BOLD after confound regression, z-scored with training-block statistics.
    split : samba_bids.alignment.Split
        Blocked train / validation / test split.
    parcels : samba_bids.ephys.SourceParcels
        Source-parcel time courses and centroids.
    atlas : samba_bids.bold.ParcelAtlas
        BOLD atlas (names, centroids).
    tr_s : float
        Repetition time, s.
    modality : str
        ``'eeg'`` or ``'meg'``.
    clock : str
        How the two recordings were put on one clock.
    bold : object
        The loaded BOLD data or image (None when the inputs come from the work-directory
        cache; the outputs are projected onto the input files' grids, not onto this).
    n_channels : int
        Data channels used after preprocessing.
    sfreq_hz : float
        Sampling rate of the recording as read, Hz.
    confound_columns : list of str
        Confound regressors removed from the parcel BOLD.
    """

    features: np.ndarray
    observed: np.ndarray
    split: object
    parcels: object
    atlas: object
    tr_s: float
    modality: str
    clock: str
    bold: object
    n_channels: int = 0
    sfreq_hz: float = 0.0
    confound_columns: list = field(default_factory=list)


def prepare_run(pair, config: Config, templates_dir: Path) -> RunInputs:
    """Electrophysiology + BOLD of one run -> features, parcel BOLD and split.

    Stages: BOLD parcellation, confound regression and the blocked split (first, so that a
    bad BOLD run fails before the costly electrophysiology); read and preprocess the
    recording; template source reconstruction to parcel time courses; one clock, segments;
    BOLD standardised with training statistics; wavelet features.

    Parameters
    ----------
    pair : samba_bids.bids.layout.RunPair
        The recording and the BOLD run to translate between.
    config : Config
        Resolved configuration.
    templates_dir : pathlib.Path
        Templates folder.

    Returns
    -------
    RunInputs

    Raises
    ------
    samba_bids.errors.DataError
        As the stages it calls (unreadable files, trigger count mismatch, too few volumes).
    """
    from .bold import (
        bold_repetition_time,
        clean_parcel_bold,
        load_bold_atlas,
        load_cifti_bold,
        load_surface_bold,
        load_volume_bold,
        parcellate_bold,
        select_confounds,
    )
    from .ephys import (
        compute_source_parcels,
        detect_modality,
        empty_room_noise_cov,
        preprocess_raw,
        read_ephys,
    )
    from .model.wavelet import wavelet_band_features

    # --- BOLD -> parcel time series, split (first: its errors are cheap to find) -----------
    tr_s = bold_repetition_time(pair.bold_files, config.repetition_time_s or pair.tr_s)
    atlas = load_bold_atlas(templates_dir, pair.space, config.bold_atlas_scale)
    if pair.space in SURFACE_SPACES:
        bold, _ = load_surface_bold(pair.bold_files)
    elif pair.space in CIFTI_SPACES:
        bold, _, _ = load_cifti_bold(pair.bold_files[0], atlas=atlas)
    else:
        bold = load_volume_bold(pair.bold_files[0])
    observed_raw = parcellate_bold(bold, atlas, name=pair.bold_files[0].name)
    n_volumes = observed_raw.shape[1]
    confounds = None
    if pair.confounds_file is not None:
        confounds = select_confounds(pair.confounds_file, config.confounds)
    observed_clean = clean_parcel_bold(
        observed_raw, tr_s=tr_s, confounds=None if confounds is None else confounds.to_numpy()
    )

    split = blocked_split(n_volumes, tr_s, hrf_support_s=config.hrf_support_s,
                          train_fraction=config.train_fraction,
                          validation_fraction=config.validation_fraction,
                          window_trs=config.window_trs, source=pair.bold_files[0].name)

    # --- electrophysiology -> source-parcel time courses ---------------------------------
    raw = read_ephys(pair.ephys_file, modality=config.modality)
    sfreq_hz = float(raw.info["sfreq"])
    modality = detect_modality(raw, config.modality)
    raw = preprocess_raw(raw, modality=modality, l_freq_hz=config.l_freq_hz,
                         h_freq_hz=config.h_freq_hz, sfreq_hz=config.resample_sfreq_hz,
                         n_jobs=config.nprocs or 1)
    noise_cov = empty_room_noise_cov(pair.ephys_file, raw) if modality == "meg" else None
    parcels = compute_source_parcels(
        raw, templates_dir, modality=modality, subject=EPHYS_SUBJECT,
        n_parcels=config.ephys_atlas_scale, method=config.inverse_method, snr=config.snr,
        noise_cov=noise_cov, chunk_seconds=config.chunk_s, progress=True,
    )

    # --- one clock, segments ------------------------------------------------------------
    onsets, clock = volume_onsets(raw, n_volumes, tr_s, trigger=config.volume_trigger,
                                  source=pair.ephys_file.name)
    segments, _ = segment_ephys(parcels.data, parcels.sfreq_hz, onsets, tr_s,
                                source=pair.ephys_file.name)
    observed, _, _ = standardize(observed_clean, split.train)
    observed = np.nan_to_num(observed)
    features = wavelet_band_features(segments, wavelet=config.wavelet, level=config.wavelet_level)
    return RunInputs(features=features, observed=observed, split=split, parcels=parcels,
                     atlas=atlas, tr_s=tr_s, modality=modality, clock=clock, bold=bold,
                     n_channels=len(raw.ch_names), sfreq_hz=sfreq_hz,
                     confound_columns=[] if confounds is None else list(confounds.columns))


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
    sources = [_uri(links, f) for f in [pair.ephys_file, *pair.bold_files]]
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
    from .reports.boilerplate import methods_context

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


def translate_forward(pair, config: Config, inputs: RunInputs, common: dict):
    """SAMBA (electrophysiology -> BOLD) and the ridge baseline on one run; write the outputs.

    Returns
    -------
    written : list of pathlib.Path
    summary : dict
        ``median_pearson_r``, ``ridge_median_pearson_r``, ``fraction_significant``.
    """
    from .bold import parcel_series_cifti, project_parcels
    from .metrics import parcel_metrics, pooled_spearman, summarise
    from .model.baselines import fit_ridge_baseline
    from .training import fit_samba, predict_run

    features, observed, split = inputs.features, inputs.observed, inputs.split
    parcels, atlas, tr_s = inputs.parcels, inputs.atlas, inputs.tr_s
    sources = common["Sources"]
    entities = dict(pair.bold_entities)
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.bold_atlas_scale}
    out = config.output_dir

    # --- SAMBA ---------------------------------------------------------------------------
    fit = fit_samba(features, observed, split, parcels.centroids_mm, atlas.centroids_mm, config,
                    tr_s=tr_s, progress=True)
    predicted, attention = predict_run(fit.model, features, history=split.history,
                                       window_trs=fit.window_trs, device=fit.device,
                                       return_attention=True)
    metrics = parcel_metrics(predicted, observed, split.test, atlas.names, n_null=N_NULL,
                             seed=config.seed)
    summary = summarise(metrics)
    summary["pooled_spearman"] = float(pooled_spearman(predicted, observed, split.test))

    # --- baseline on the same split: canonical-HRF band-power ridge regression -------------
    ridge = fit_ridge_baseline(features, observed, split, tr_s=tr_s)
    ridge_predicted = ridge.predict(features)
    ridge_metrics = parcel_metrics(ridge_predicted, observed, split.test, atlas.names)
    metrics["ridge_pearson_r"] = ridge_metrics["pearson_r"].to_numpy()
    metrics["ridge_spearman_rho"] = ridge_metrics["spearman_rho"].to_numpy()
    summary["ridge_median_pearson_r"] = float(ridge_metrics["pearson_r"].median())

    units = ("z: observed parcel BOLD after confound regression and detrending, standardised "
             "with the training block's mean and SD")
    written = []

    if pair.space in SURFACE_SPACES:
        reference = pair.bold_files
    else:  # the dtseries or the NIfTI of the run (only its header and grid are read)
        reference = pair.bold_files[0]
    images = project_parcels(predicted.astype(np.float32), atlas, reference, tr_s=tr_s)
    if pair.space in CIFTI_SPACES:
        path = derivative_path(out, entities, suffix="bold", extension=".dtseries.nii",
                               desc="samba")
        written.append(write_with_sidecar(path, write_image, images[0], {
            **common, "Units": units,
            "Description": "SAMBA-predicted BOLD as a dense time series; each parcel's "
                           "predicted value is REPEATED over all of its grayordinates (0 outside "
                           "every parcel, including the subcortical grayordinates), so this "
                           "file has no more spatial detail than the parcel-level .ptseries.nii "
                           "beside it.",
        }))
        path = derivative_path(out, entities, suffix="bold", extension=".ptseries.nii",
                               density=None, desc="samba", **atlas_entities)
        written.append(write_with_sidecar(
            path, write_image, parcel_series_cifti(predicted.astype(np.float32), atlas, tr_s), {
                **common, "Units": units,
                "Description": "SAMBA-predicted BOLD, one row per parcel (CIFTI parcellated "
                               "time series; parcels from the fsLR 91k dlabel).",
            }))
    elif pair.space in SURFACE_SPACES:
        for hemi, img in zip(("L", "R"), images):
            path = derivative_path(out, entities, suffix="bold", extension=".func.gii",
                                   hemi=hemi, desc="samba")
            written.append(write_with_sidecar(path, write_image, img, {
                **common, "Units": units,
                "Description": "SAMBA-predicted BOLD; each parcel's predicted value is repeated "
                               "over its vertices (medial wall 0).",
            }))
    else:
        path = derivative_path(out, entities, suffix="bold", extension=".nii.gz", desc="samba")
        written.append(write_with_sidecar(path, write_image, images[0], {
            **common, "Units": units,
            "Description": "SAMBA-predicted BOLD; each parcel's predicted value is repeated over "
                           "its voxels (background 0).",
        }))

    for desc, values, what in (("samba", predicted, "SAMBA-predicted"),
                               ("observed", observed, "Observed")):
        path = derivative_path(out, entities, suffix="timeseries", extension=".tsv",
                               **NO_SPACE, desc=desc, **atlas_entities)
        frame = pd.DataFrame(values.T, columns=atlas.names)
        written.append(write_with_sidecar(path, write_tsv, frame, {
            **common, "Units": units,
            "Description": f"{what} parcel BOLD, one column per parcel, one row per volume.",
        }))

    hrf = fit.model.hrf.parameters_frame(atlas.names)
    path = derivative_path(out, entities, suffix="hrf", extension=".tsv", **NO_SPACE,
                           desc="samba", **atlas_entities)
    written.append(write_with_sidecar(path, write_tsv, hrf, {
        "Sources": sources,
        "Description": "Learned double-gamma HRF per BOLD parcel (SPM parametrisation, "
                       "initialised at the SPM canonical HRF).",
        **{col: _hrf_column_doc(col) for col in hrf.columns if col != "parcel"},
    }))

    path = derivative_path(out, entities, suffix="metrics", extension=".tsv", **NO_SPACE,
                           desc="samba", **atlas_entities)
    written.append(write_with_sidecar(path, write_tsv, metrics, {
        **common,
        "Description": "Per-parcel agreement of predicted and observed BOLD on the test block.",
        **_metric_column_docs("parcels"),
        "ridge_pearson_r": {"Description": "Pearson r of the canonical-HRF band-power ridge "
                                           "baseline (penalty chosen on the validation block)"},
        "ridge_spearman_rho": {"Description": "Spearman rho of the ridge baseline"},
        "RidgePenalty": float(ridge.alpha),
        "Summary": summary,
        **split.to_sidecar(),
    }))

    written += _write_model(out, entities, "samba", fit, config, sources, split,
                            parcels.provenance)
    written += _write_maps(out, entities, atlas, pair, metrics, hrf, common, atlas_entities)

    report = _participant_report(pair, config, inputs, fit, predicted, attention, metrics, hrf,
                                 summary, ridge_metrics, ridge_predicted)
    return written, {
        "median_pearson_r": float(np.median(metrics["pearson_r"])),
        "ridge_median_pearson_r": summary["ridge_median_pearson_r"],
        "fraction_significant": float(summary.get("fraction_significant", 0.0)),
        "best_epoch": int(fit.best_epoch),
        "n_parameters": int(fit.n_parameters),
        "device": str(fit.device),
        "ridge_alpha": float(ridge.alpha),
    }, report, fit


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
    """
    from .metrics import parcel_metrics, summarise
    from .model.wavelet import band_names
    from .training import fit_reverse, predict_reverse

    features, observed, split = inputs.features, inputs.observed, inputs.split
    parcels = inputs.parcels
    fit = fit_reverse(features, observed, split, parcels.centroids_mm, inputs.atlas.centroids_mm,
                      config, tr_s=inputs.tr_s, progress=True)
    predicted = predict_reverse(fit.model, observed, window_trs=fit.window_trs,
                                device=fit.device)  # (N, V, bands)
    power = features[..., 0]
    bands = band_names(config.wavelet_level)
    columns = [f"{name}_{band}" for name in parcels.names for band in bands]
    n_src, n_volumes, n_bands = power.shape
    flat_pred = predicted.transpose(0, 2, 1).reshape(n_src * n_bands, n_volumes)
    flat_obs = power.transpose(0, 2, 1).reshape(n_src * n_bands, n_volumes)
    metrics = parcel_metrics(flat_pred, flat_obs, split.test, columns, n_null=N_NULL,
                             seed=config.seed)
    metrics.insert(1, "band", [band for _ in parcels.names for band in bands])
    metrics.insert(1, "source_parcel", [name for name in parcels.names for _ in bands])
    summary = summarise(metrics)

    entities = dict(pair.bold_entities)
    atlas_entities = {"atlas": ATLAS, "seg": SEG, "scale": config.ephys_atlas_scale}
    out = config.output_dir
    units = ("natural log of the mean squared wavelet coefficient of the band over the "
             "volume's segment of source-parcel activity (dSPM units squared)")
    band_doc = {band: f"{config.wavelet} wavelet band {band}, about {lo:g}-{hi:g} Hz"
                for band, (lo, hi) in zip(bands, _band_ranges(config))}
    written = []
    for desc, values, what in (("sambareverse", flat_pred, "SAMBA-predicted (from BOLD)"),
                               ("observedpower", flat_obs, "Observed")):
        path = derivative_path(out, entities, suffix="timeseries", extension=".tsv",
                               **NO_SPACE, desc=desc, **atlas_entities)
        written.append(write_with_sidecar(path, write_tsv,
                                          pd.DataFrame(values.T, columns=columns), {
            **common, "Units": units, "Bands": band_doc,
            "Description": f"{what} band power per source parcel and volume, one column per "
                           "<parcel>_<band>, one row per volume.",
        }))
    path = derivative_path(out, entities, suffix="metrics", extension=".tsv", **NO_SPACE,
                           desc="sambareverse", **atlas_entities)
    written.append(write_with_sidecar(path, write_tsv, metrics, {
        **common, "Bands": band_doc,
        "Description": "Per source parcel and band agreement of the band power predicted from "
                       "BOLD and the observed band power, on the test block.",
        "parcel": {"Description": "<source parcel>_<band>"},
        **_metric_column_docs("all rows"),
        "Summary": summary,
        **split.to_sidecar(),
    }))
    written += _write_model(out, entities, "sambareverse", fit, config, common["Sources"],
                            split, parcels.provenance)
    return written, {
        "reverse_median_pearson_r": float(metrics["pearson_r"].median()),
        "reverse_fraction_significant": float(summary.get("fraction_significant", 0.0)),
    }, metrics, fit


def _band_ranges(config: Config) -> list:
    """Approximate frequency range (Hz) of each wavelet band, coarse (A) to fine (D1)."""
    nyquist = config.resample_sfreq_hz / 2.0
    edges = [0.0] + [nyquist / 2 ** j for j in range(config.wavelet_level, 0, -1)] + [nyquist]
    return list(zip(edges[:-1], edges[1:]))


def _write_maps(out, entities, atlas, pair, metrics, hrf, common, atlas_entities) -> list:
    """Test Pearson r and HRF time to peak per parcel as maps in the input's space.

    ``desc-testr`` / ``desc-hrfttp`` ``_boldmap``: ``.pscalar.nii`` (fsLR CIFTI input),
    ``.func.gii`` per hemisphere (fsaverage input), ``.nii.gz`` (MNI input); each parcel's
    value over its grayordinates, vertices or voxels (:func:`~.bold.parcel_map_images`).
    """
    from .bold import parcel_map_images

    columns = {"pearson_r": metrics.set_index("parcel")["pearson_r"],
               "time_to_peak_s": hrf.set_index("parcel")["time_to_peak_s"]}
    reference = pair.bold_files if pair.space in SURFACE_SPACES else pair.bold_files[0]
    written = []
    for desc, (column, what) in MAP_DESCS.items():
        values = columns[column].reindex(atlas.names).to_numpy(dtype=np.float32)
        images = parcel_map_images({desc: values}, atlas, reference)
        sidecar = {"Sources": common["Sources"], "Space": pair.space,
                   "Description": f"Per-parcel {what}, repeated over each parcel's "
                                  f"{_ELEMENTS.get(atlas.kind, 'elements')} (0 outside "
                                  "every parcel)."}
        if atlas.kind == "surface":
            for hemi, img in zip(("L", "R"), images):
                path = derivative_path(out, entities, suffix="boldmap", extension=".func.gii",
                                       hemi=hemi, desc=desc)
                written.append(write_with_sidecar(path, write_image, img, sidecar))
        elif atlas.kind == "cifti":  # parcel-level file: named like the .ptseries.nii
            path = derivative_path(out, entities, suffix="boldmap", extension=".pscalar.nii",
                                   density=None, desc=desc, **atlas_entities)
            written.append(write_with_sidecar(path, write_image, images[0], sidecar))
        else:
            path = derivative_path(out, entities, suffix="boldmap", extension=".nii.gz",
                                   desc=desc)
            written.append(write_with_sidecar(path, write_image, images[0], sidecar))
    return written


_ELEMENTS = {"surface": "vertices", "volume": "voxels", "cifti": "grayordinates"}


def _participant_report(pair, config, inputs, fit, predicted, attention, metrics, hrf,
                        summary, ridge_metrics, ridge_predicted):
    """The :class:`~.reports.participant.ParticipantReport` of one run's forward direction."""
    from .metrics import pooled_spearman
    from .model.hrf import spm_canonical_hrf
    from .model.wavelet import band_names
    from .reports.participant import ParticipantReport

    split, observed = inputs.split, inputs.observed
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
        centroids_mm=inputs.atlas.centroids_mm, observed=observed, predicted=predicted,
        test_volumes=split.test, train_volumes=split.train,
        validation_volumes=split.validation, metrics=metrics, hrf=hrf,
        hrf_time_s=hrf_time_s, hrf_curves=fit.model.hrf.curves(hrf_time_s),
        canonical_hrf=canonical / canonical.max(), attention=attention,
        band_names=band_names(config.wavelet_level), band_ranges_hz=_band_ranges(config),
        history=fit.history, best_epoch=int(fit.best_epoch), comparison=comparison,
        parameters=config.to_dict(), provenance=provenance,
        source_names=list(inputs.parcels.names),
    )


def _uri(links, path):
    """BIDS URI of ``path`` in whichever linked dataset holds it."""
    path = Path(path).resolve()
    # most specific dataset first (derivatives live inside the raw dataset)
    for name, root in sorted(links.items(), key=lambda kv: -len(str(Path(kv[1]).resolve()))):
        root = Path(root).resolve()
        if root in path.parents:
            return bids_uri(name, root, path)
    return path.as_uri()


def _metric_column_docs(fdr_over: str) -> dict:
    """Sidecar entries of the metric columns that :func:`~.metrics.parcel_metrics` writes."""
    return {
        "pearson_r": {"Description": "Pearson correlation over test volumes"},
        "spearman_rho": {"Description": "Spearman rank correlation over test volumes"},
        "p_value": {"Description": f"Two-sided p of pearson_r against {N_NULL} "
                                   "phase-randomised surrogates of the prediction"},
        "p_fdr": {"Description": f"p_value after Benjamini-Hochberg FDR over {fdr_over}"},
        "significant": {"Description": "p_fdr < 0.05"},
    }


def _write_model(out, entities, desc, fit, config, sources, split, provenance) -> list:
    """The trained model (``.pt`` + JSON with the resolved config) and its loss history."""
    model_path = derivative_path(out, entities, suffix="model", extension=".pt", datatype="model",
                                 **NO_SPACE, desc=desc)
    history_path = derivative_path(out, entities, suffix="history", extension=".tsv",
                                   datatype="model", **NO_SPACE, desc=desc)
    return [
        write_with_sidecar(model_path, _save_model, fit.model, {
            "Sources": sources, "Config": config.to_dict(), "ConfigDigest": config.digest(),
            "Device": fit.device, "TrainableParameters": fit.n_parameters,
            "BestEpoch": fit.best_epoch, "Split": split.to_sidecar(),
            "SourceReconstruction": provenance,
        }),
        write_with_sidecar(history_path, write_tsv, fit.history, {
            "Sources": sources,
            "Description": "Training and validation loss per epoch (1 - Pearson r + MSE term).",
        }),
    ]


def _save_model(path, model):
    import torch

    from .bids.derivatives import atomic_path

    with atomic_path(path) as tmp:
        torch.save(model.to_checkpoint(), tmp)
    return path


_HRF_DOCS = {
    "response_delay_s": ("Delay of the response gamma (SPM p1)", "s"),
    "undershoot_delay_s": ("Delay of the undershoot gamma (SPM p2)", "s"),
    "response_dispersion_s": ("Dispersion of the response gamma (SPM p3)", "s"),
    "undershoot_dispersion_s": ("Dispersion of the undershoot gamma (SPM p4)", "s"),
    "response_undershoot_ratio": ("Ratio of response to undershoot (SPM p5)", None),
    "onset_s": ("Onset shift (SPM p6)", "s"),
    "time_to_peak_s": ("Time from neural event to the HRF's maximum", "s"),
}


def _hrf_column_doc(column):
    description, unit = _HRF_DOCS.get(column, (column.replace("_", " "), None))
    doc = {"Description": description}
    if unit:
        doc["Units"] = unit
    return doc
