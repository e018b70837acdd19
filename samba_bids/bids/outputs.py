"""Every kind of file samba-bids writes, in one table (:data:`OUTPUTS`).

A row gives what names the file (level, folder, ``desc``, suffix, extensions), which entities
its name carries and what it holds. :func:`~samba_bids.bids.derivatives.output_path` names a
file from its row and :func:`~samba_bids.bids.derivatives.write_output` writes it with its JSON
sidecar; the ``.bidsignore`` lines come from the rows (:func:`bidsignore_patterns`).

This module is data only: it imports nothing of the package, so every module can read it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Entities of a run as the participant level's names carry them (long names as in
#: ``derivatives.ENTITY_ORDER``; an entity appears only when the source BOLD run has it).
RUN = ("subject", "session", "task", "acquisition", "run")
#: Entities of the atlas a parcel-wise output was computed with.
ATLAS = ("atlas", "seg", "scale")
#: Entities of a group-level map: the run's, less subject, session and run.
GROUP_RUN = ("task", "acquisition")
#: Entities that files in the BOLD run's grid add to a row's, by extension: the predicted BOLD
#: and the maps keep the input's space; the parcel-level CIFTI files (one value per parcel)
#: lose the density and gain the atlas entities.
GRID_ENTITIES = {
    ".func.gii": ("hemi", "space", "resolution", "density"),
    ".nii.gz": ("space", "resolution", "density"),
    ".dtseries.nii": ("space", "resolution", "density"),
    ".ptseries.nii": ("space", "resolution", *ATLAS),
    ".pscalar.nii": ("space", "resolution", *ATLAS),
}
#: Extensions of the files written in the BOLD run's grid.
BOLD_GRID = (".dtseries.nii", ".ptseries.nii", ".func.gii", ".nii.gz")
#: Extensions of the per-parcel maps (parcel values over the grid of the input).
MAP_GRID = (".func.gii", ".pscalar.nii", ".nii.gz")


@dataclass(frozen=True)
class Output:
    """One kind of file samba-bids writes.

    Attributes
    ----------
    key : str
        Name of the row, e.g. ``"hrf"``; what :func:`output` looks up.
    level : str
        The analysis level that writes it, ``"participant"`` or ``"group"``. Files named from
        entities go under ``sub-<label>[/ses-<label>]/<datatype>/`` (participant) or
        ``group/`` (group, no subject entity); the others at ``name`` under OUTPUT_DIR.
    desc : str or None
        The ``desc`` entity of the name; None for files not named from entities.
    suffix : str or None
        e.g. ``"timeseries"``; None for files not named from entities.
    extensions : tuple of str
        With the dot; one file per run (and hemisphere) in one of them.
    entities : tuple of str
        Entities the name carries (long names), besides ``desc``; for extensions of
        :data:`GRID_ENTITIES` also those (see :meth:`carries`).
    description : str
        What the file holds, one line.
    datatype : str or None
        Folder under ``sub-<label>[/ses-<label>]`` of participant-level files.
    name : str or None
        Path under OUTPUT_DIR, without the extension, of the files not named from entities,
        with ``{entity}`` fields, e.g. ``"sub-{subject}"``.
    sidecar : bool
        Whether a JSON sidecar (``Sources`` and the parameters) goes with it.
    in_bids : bool
        Whether BIDS knows the suffix (or the file); the others are listed in ``.bidsignore``.
    """

    key: str
    level: str
    desc: str | None
    suffix: str | None
    extensions: tuple
    entities: tuple
    description: str
    datatype: str | None = "func"
    name: str | None = None
    sidecar: bool = True
    in_bids: bool = True

    def carries(self, extension: str) -> tuple:
        """Entities a name of this kind with ``extension`` may carry (besides ``desc``).

        Raises
        ------
        ValueError
            If this kind is never written with ``extension``.
        """
        if extension not in self.extensions:
            raise ValueError(f"{self.key} files are written as {', '.join(self.extensions)}, "
                             f"not {extension!r}.")
        return self.entities + GRID_ENTITIES.get(extension, ())


def _file(key, level, name, extensions, description, *, entities=(), in_bids=False):
    """A row of a file not named from entities (reports, logs, dataset files)."""
    return Output(key, level, None, None, extensions, entities, description, datatype=None,
                  name=name, sidecar=False, in_bids=in_bids)


def _group(key, desc, suffix, extensions, entities, description):
    """A row of a group-level file, under ``group/``."""
    return Output(key, "group", desc, suffix, extensions, entities, description, datatype=None,
                  in_bids=suffix == "bold")


_P = "participant"  # the level of most rows
#: Every kind of file samba-bids writes. The order is that of the ``.bidsignore`` lines.
OUTPUTS = (
    # --- participant level, forward direction (EEG/MEG -> BOLD), sub-<label>/func/ -----------
    Output("bold", _P, "samba", "bold", BOLD_GRID, RUN,
           "SAMBA-predicted BOLD in the input's space and format; parcel values repeated over "
           "grayordinates, vertices (one file per hemi) or voxels; .ptseries.nii one per parcel."),
    # ``timeseries`` is in no bidsschematools suffix list (schema 1.11.2); fMRIPrep's
    # desc-confounds_timeseries.tsv uses it too, so it stays out of .bidsignore as before.
    Output("timeseries", _P, "samba", "timeseries", (".tsv",), RUN + ATLAS,
           "SAMBA-predicted parcel BOLD (z), one column per BOLD parcel, one row per volume."),
    Output("observed_timeseries", _P, "observed", "timeseries", (".tsv",), RUN + ATLAS,
           "Observed parcel BOLD (z, confounds regressed), one column per parcel."),
    Output("hrf", _P, "samba", "hrf", (".tsv",), RUN + ATLAS,
           "Learned double-gamma HRF parameters, one row per BOLD parcel.", in_bids=False),
    Output("metrics", _P, "samba", "metrics", (".tsv",), RUN + ATLAS,
           "Per-parcel test-block Pearson r, Spearman rho, p, FDR p; ridge baseline scores.",
           in_bids=False),
    Output("runs_metrics", _P, "sambaruns", "metrics", (".tsv",), RUN + ATLAS,
           "A participant model across runs: one row per parcel and paired run, held-out "
           "scores with the fold that made them.", in_bids=False),
    Output("decoding", _P, "decoding", "metrics", (".tsv",), RUN + ATLAS,
           "Which stimulus (events.tsv) a window of a held-out run shows, decoded from SAMBA's "
           "latent drive, band power, the ridge prediction and the observed BOLD: one row per "
           "feature set (a participant model across runs whose events name stimuli).",
           in_bids=False),
    # --- participant level, reverse direction (BOLD -> EEG/MEG band power) ------------------
    Output("reverse_timeseries", _P, "sambareverse", "timeseries", (".tsv",), RUN + ATLAS,
           "Band power predicted from BOLD, one column per <source parcel>_<band>."),
    Output("observed_power", _P, "observedpower", "timeseries", (".tsv",), RUN + ATLAS,
           "Observed band power, one column per <source parcel>_<band>."),
    Output("reverse_metrics", _P, "sambareverse", "metrics", (".tsv",), RUN + ATLAS,
           "Per source parcel and band test-block agreement of the reverse direction.",
           in_bids=False),
    Output("reverse_runs_metrics", _P, "sambareverseruns", "metrics", (".tsv",), RUN + ATLAS,
           "A reverse participant model across runs: one row per source parcel, band and "
           "paired run, held-out scores with the fold that made them.", in_bids=False),
    # --- participant level, trained models, sub-<label>/model/ -------------------------------
    Output("model", _P, "samba", "model", (".pt",), RUN,
           "Trained SAMBA model (torch checkpoint); sidecar with the resolved config.",
           datatype="model", in_bids=False),
    Output("history", _P, "samba", "history", (".tsv",), RUN,
           "Training and validation loss per epoch of the SAMBA model.", datatype="model",
           in_bids=False),
    Output("reverse_model", _P, "sambareverse", "model", (".pt",), RUN,
           "Trained reverse-direction model (torch checkpoint).", datatype="model",
           in_bids=False),
    Output("reverse_history", _P, "sambareverse", "history", (".tsv",), RUN,
           "Loss per epoch of the reverse-direction model.", datatype="model", in_bids=False),
    # --- participant level, per-parcel maps in the input's grid ------------------------------
    Output("testr_map", _P, "testr", "boldmap", MAP_GRID, RUN,
           "Test-block Pearson r of each parcel, repeated over the parcel's grid elements.",
           in_bids=False),
    Output("hrfttp_map", _P, "hrfttp", "boldmap", MAP_GRID, RUN,
           "Learned HRF time to peak (s) of each parcel, repeated over its grid elements.",
           in_bids=False),
    # --- participant level, files not named from entities ------------------------------------
    _file("report", _P, "sub-{subject}", (".html",),
          "Participant report, a section per run.", entities=("subject",)),
    _file("config", _P, "logs/config", (".json",),
          "Settings the participant level ran with (a rerun must match them)."),
    _file("citation", _P, "logs/CITATION", (".md", ".bib", ".html"),
          "Methods boilerplate with its references."),
    # --- group level, group/ ------------------------------------------------------------------
    _group("group_model_metrics", "groupmodel", "metrics", (".tsv",), ("task", *ATLAS),
           "Leave-one-participant-out scores of one model trained across participants."),
    _group("group_model", "groupsamba", "model", (".pt",), (),
           "The group model trained on every participant (torch checkpoint), for --models."),
    _group("group_participants", "participants", "metrics", (".tsv",), ("task", *ATLAS),
           "Headline test-block scores, one row per participant and run."),
    _group("group_parcels", "parcels", "metrics", (".tsv",), ("task", *ATLAS),
           "Per-parcel mean, SD and count of the scores across participants."),
    _group("group_testr_mean", "testrmean", "boldmap", MAP_GRID, GROUP_RUN,
           "Mean across participant runs of the testr maps."),
    _group("group_testr_sd", "testrsd", "boldmap", MAP_GRID, GROUP_RUN,
           "SD (ddof 1) across participant runs of the testr maps."),
    _group("group_hrfttp_mean", "hrfttpmean", "boldmap", MAP_GRID, GROUP_RUN,
           "Mean across participant runs of the hrfttp maps."),
    _group("group_hrfttp_sd", "hrfttpsd", "boldmap", MAP_GRID, GROUP_RUN,
           "SD (ddof 1) across participant runs of the hrfttp maps."),
    # --- group level, stimulus pairing (--pairing stimulus), group/ -------------------------
    _group("stimulus_predicted", "stimsamba", "timeseries", (".tsv",), ("task", "run", *ATLAS),
           "SAMBA-predicted group BOLD of a held-out stimulus segment (z), one column per "
           "parcel, one row per volume of the stimulus-time grid."),
    _group("stimulus_ridge", "stimridge", "timeseries", (".tsv",), ("task", "run", *ATLAS),
           "The ridge baseline's prediction of the same (z)."),
    _group("stimulus_observed", "stimgroup", "timeseries", (".tsv",), ("task", "run", *ATLAS),
           "Mean BOLD of the fMRI participants on the stimulus-time grid (z): the target."),
    _group("stimulus_bold", "stimsamba", "bold", BOLD_GRID, ("task", "run"),
           "SAMBA-predicted group BOLD of a held-out segment in the BOLD space and format."),
    _group("stimulus_parcels", "stimsamba", "metrics", (".tsv",), ("task", "run", *ATLAS),
           "Per-parcel scores of a held-out segment: Pearson r, Spearman rho, ridge r, ISC, "
           "ceiling."),
    _group("stimulus_metrics", "stimulus", "metrics", (".tsv",), ("task", *ATLAS),
           "One row per held-out segment: median r, pooled Spearman (whole, 30 s, 60 s), the "
           "ridge's, ISC and ceiling."),
    _group("stimulus_hrf", "stimsamba", "hrf", (".tsv",), ("task", *ATLAS),
           "HRFs of the model trained on every segment, one row per BOLD parcel."),
    _group("stimulus_hrfttp_map", "stimhrfttp", "boldmap", MAP_GRID, ("task",),
           "Time to peak of the HRFs of the model trained on every segment, as a map in the "
           "BOLD space."),
    _group("stimulus_testr_map", "stimtestr", "boldmap", MAP_GRID, ("task",),
           "Mean over held-out segments of SAMBA's per-parcel Pearson r, as a map in the BOLD "
           "space."),
    _group("stimulus_decoding", "decoding", "metrics", (".tsv",), ("task", *ATLAS),
           "Which segment is this 30-s window? Cross-validated accuracy from SAMBA's latent "
           "drive, band power, observed BOLD and the ridge's prediction, with chance and p."),
    _group("stimulus_model", "stimsamba", "model", (".pt",), ("task",),
           "SAMBA trained on every segment (torch checkpoint)."),
    _file("stimulus_report", "group", "group_task-{task}_pairing-stimulus", (".html",),
          "Group report of the stimulus pairing (one per task).", entities=("task",)),
    _file("stimulus_config", "group", "logs/config_pairing-stimulus", (".json",),
          "Settings the stimulus-pairing group level ran with (a rerun must match them)."),
    _file("stimulus_citation", "group", "logs/CITATION_pairing-stimulus", (".md", ".bib", ".html"),
          "Methods boilerplate of the stimulus pairing with its references."),
    _file("group_report", "group", "group", (".html",),
          "Group report (one task and atlas scale in OUTPUT_DIR)."),
    _file("group_task_report", "group", "group_task-{task}_scale-{scale}", (".html",),
          "Group report of one task and atlas scale (several in OUTPUT_DIR).",
          entities=("task", "scale")),
    # --- the derivatives dataset ----------------------------------------------------------------
    _file("dataset_description", _P, "dataset_description", (".json",),
          "DatasetType derivative, GeneratedBy, SourceDatasets, DatasetLinks.", in_bids=True),
    _file("bidsignore", _P, ".bidsignore", ("",),
          "Patterns of the files BIDS does not define (from this table).", in_bids=True),
)

_BY_KEY = {row.key: row for row in OUTPUTS}


def output(key: str) -> Output:
    """The row of :data:`OUTPUTS` named ``key``.

    Raises
    ------
    KeyError
        If no row has that key (the message lists them).
    """
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"No output {key!r}; one of {sorted(_BY_KEY)}.") from None


def bidsignore_patterns(group_folder: str = "group") -> tuple:
    """The ``.bidsignore`` lines: the files of :data:`OUTPUTS` that BIDS does not define.

    Per suffix BIDS does not know, in table order: ``*_<suffix><ext>`` (``*_<suffix>.*`` when
    written with several extensions) and its sidecar ``*_<suffix>.json``; then ``*<ext>`` of
    top-level files, the folders of the others (``logs/``) and the group folder.
    """
    patterns = []
    for row in OUTPUTS:
        if row.in_bids:
            continue
        if row.level == "group" and row.suffix is not None:
            patterns.append(f"{group_folder}/")
        elif row.suffix is not None:
            extensions = {ext for r in OUTPUTS if r.suffix == row.suffix for ext in r.extensions}
            ext = extensions.pop() if len(extensions) == 1 else ".*"
            patterns += [f"*_{row.suffix}{ext}", f"*_{row.suffix}.json"]
        elif "/" in row.name:
            patterns.append(row.name.split("/")[0] + "/")
        else:
            patterns += [f"*{ext}" for ext in row.extensions]
    return tuple(dict.fromkeys(patterns))
