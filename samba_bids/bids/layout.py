"""Index a BIDS dataset with pybids and pair each electrophysiology recording with its BOLD run.

A *pair* is one EEG/MEG recording of ``BIDS_DIR`` and the preprocessed BOLD run (fMRIPrep-style,
from a ``-d/--derivatives`` folder) of the same subject, session, task and run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    DataError,
    EmptySelectionError,
    NoInputError,
    SambaBidsError,
    UsageError,
    ValidationError,
)
from ..templates.spaces import CIFTI_SPACES, SURFACE_SPACES, VOLUME_SPACES

logger = logging.getLogger(__name__)

#: Extensions of electrophysiology recordings that MNE-BIDS reads.
EPHYS_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif", ".con", ".sqd", ".ds")
#: pybids parses ``_bold.dtseries.nii`` with extension ``.dtseries.nii`` (and ``den`` entity).
BOLD_EXTENSIONS = (".func.gii", ".nii.gz", ".nii", ".dtseries.nii")
#: Spaces a BOLD run may be in.
BOLD_SPACES = SURFACE_SPACES + VOLUME_SPACES + CIFTI_SPACES
#: pybids entity names of the derivatives config -> the long names of derivative_path.
_BOLD_ENTITY_NAMES = {"subject": "subject", "session": "session", "task": "task",
                      "acquisition": "acquisition", "run": "run", "space": "space",
                      "res": "resolution", "resolution": "resolution", "den": "density",
                      "density": "density"}
#: Entities that identify a run on both sides of a pair.
PAIR_ENTITIES = ("subject", "session", "task", "run")


@dataclass
class RunPair:
    """One electrophysiology recording and its preprocessed BOLD run.

    Attributes
    ----------
    entities : dict
        subject, session, task, run (None when absent) shared by both modalities.
    ephys_file : Path
        The EEG/MEG recording (e.g. ``_eeg.vhdr``, ``_meg.fif``).
    bold_files : list of Path
        One NIfTI, the ``hemi-L`` and ``hemi-R`` GIFTI files (in that order), or one CIFTI
        ``_bold.dtseries.nii`` (space ``fsLR``).
    space : str
        The BOLD run's ``space`` entity, e.g. ``fsaverage5``, ``MNI152NLin6Asym`` or ``fsLR``.
    tr_s : float | None
        ``RepetitionTime`` from the sidecar, in s (None when the sidecar lacks it).
    confounds_file : Path | None
        The run's ``desc-confounds_timeseries.tsv`` when present.
    bold_entities : dict
        Entities of the BOLD file (used to name the outputs), with the long names of
        :func:`~samba_bids.bids.derivatives.derivative_path` (pybids' ``res``/``den`` become
        ``resolution``/``density``).
    ephys_derivatives : str | None
        The ``-d`` name of the derivatives folder the recording was read from (a cleaned
        copy preferred to the raw one, :func:`collect_participants`); None: the raw dataset.
    """

    entities: dict
    ephys_file: Path
    bold_files: list
    space: str
    tr_s: float | None = None
    confounds_file: Path | None = None
    bold_entities: dict = field(default_factory=dict)
    ephys_derivatives: str | None = None

    @property
    def label(self) -> str:
        """Short name, e.g. ``sub-01_ses-1_task-rest_run-1``."""
        return run_label(self.entities)


def run_label(entities) -> str:
    """``sub-01_ses-1_task-rest_run-1`` from subject, session, task and run (None: absent)."""
    keys = {"subject": "sub", "session": "ses", "task": "task", "run": "run"}
    return "_".join(f"{keys[k]}-{entities[k]}" for k in keys if entities.get(k) is not None)


@dataclass
class EphysRun:
    """An electrophysiology recording without a BOLD run (for example outside the scanner).

    Attributes
    ----------
    entities : dict
        subject, session, task, run (None when absent).
    ephys_file : Path
        The EEG/MEG recording.
    bold_files : list
        Always empty (no BOLD); present so that the work-directory cache keys it like a pair.
    confounds_file : None
        As ``bold_files``.
    ephys_derivatives : str | None
        As :attr:`RunPair.ephys_derivatives`.
    """

    entities: dict
    ephys_file: Path
    bold_files: list = field(default_factory=list)
    confounds_file: Path | None = None
    ephys_derivatives: str | None = None

    @property
    def label(self) -> str:
        """Short name, e.g. ``sub-01_ses-2_task-rest``."""
        return run_label(self.entities)


@dataclass
class BoldRun:
    """A preprocessed BOLD run without an EEG/MEG recording of the same run.

    The reverse direction (BOLD -> band power) translates it with the participant's model.
    Attributes as :class:`RunPair`, without a recording (``ephys_file`` is None).
    """

    entities: dict
    bold_files: list
    space: str
    tr_s: float | None = None
    confounds_file: Path | None = None
    bold_entities: dict = field(default_factory=dict)
    ephys_file: None = None

    @property
    def label(self) -> str:
        """Short name, e.g. ``sub-01_ses-1_task-rest_run-3``."""
        return run_label(self.entities)


@dataclass
class ParticipantRuns:
    """A participant's selected runs: paired with BOLD, and electrophysiology only.

    Attributes
    ----------
    subject : str
        The label, without ``sub-``.
    pairs : list of RunPair
        Runs with both recordings, sorted by session, task, run.
    ephys_only : list of EphysRun
        Runs with an EEG/MEG recording and no BOLD run in any derivative folder.
    bold_only : list of BoldRun
        Preprocessed BOLD runs (in the pairs' space) with no EEG/MEG recording.
    """

    subject: str
    pairs: list
    ephys_only: list = field(default_factory=list)
    bold_only: list = field(default_factory=list)

    @property
    def label(self) -> str:
        """``sub-<label>``."""
        return f"sub-{self.subject}"

    @property
    def space(self) -> str | None:
        """The BOLD space of the paired runs (None without any)."""
        return self.pairs[0].space if self.pairs else None


def validate_dataset(bids_dir) -> None:
    """Check that ``bids_dir`` looks like a BIDS dataset.

    Checks ``dataset_description.json`` (present, JSON, with ``Name`` and ``BIDSVersion``), at
    least one ``sub-*`` folder, and that every file under ``sub-*`` has a BIDS-valid path
    (``bids_validator.BIDSValidator``, the filename rules of the BIDS validator).

    Raises
    ------
    NoInputError
        If ``bids_dir`` does not exist.
    ValidationError
        If a check fails; the message lists the first offending files.
    """
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise NoInputError(f"{bids_dir} does not exist or is not a folder; pass a BIDS dataset.")
    description = bids_dir / "dataset_description.json"
    if not description.is_file():
        raise ValidationError(
            f"{description} is missing: {bids_dir} is not a BIDS dataset "
            "(add dataset_description.json, or pass --skip-bids-validation)."
        )
    try:
        content = json.loads(description.read_text())
    except (OSError, ValueError) as err:
        raise ValidationError(f"{description} is not valid JSON ({err}).") from err
    missing = [k for k in ("Name", "BIDSVersion") if k not in content]
    if missing:
        raise ValidationError(f"{description} lacks {', '.join(missing)}; add them.")
    subjects = sorted(p for p in bids_dir.glob("sub-*") if p.is_dir())
    if not subjects:
        raise ValidationError(f"{bids_dir} has no sub-* folders: no participant to process.")
    from bids_validator import BIDSValidator

    validator = BIDSValidator()
    bad = []
    for path in sorted(bids_dir.glob("sub-*/**/*")):
        if path.is_dir() and path.suffix != ".ds":
            continue
        if any(parent.suffix == ".ds" for parent in path.parents):
            continue
        rel = "/" + path.relative_to(bids_dir).as_posix()
        if not validator.is_bids(rel):
            bad.append(rel)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValidationError(
            f"{bids_dir}: file names that BIDS does not allow: {shown}. Rename them, "
            "or pass --skip-bids-validation."
        )


def default_derivatives(bids_dir, output_dir=None) -> dict:
    """Derivative folders under ``BIDS_DIR/derivatives`` that have a dataset_description.json.

    The output folder itself (``BIDS_DIR/derivatives/samba-bids``) is left out.
    """
    found = {}
    root = Path(bids_dir) / "derivatives"
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if output_dir is not None and folder.resolve() == Path(output_dir).resolve():
            continue
        if (folder / "dataset_description.json").is_file():
            found[folder.name] = folder
    return found


def index_dataset(bids_dir, derivatives, work_dir):
    """Index ``bids_dir`` and the derivative folders with pybids.

    Parameters
    ----------
    bids_dir : path-like
        The raw BIDS dataset.
    derivatives : dict of str to Path
        Derivative folders (preprocessed BOLD, confounds).
    work_dir : path-like
        The database goes to ``work_dir/pybids_db/<hash of the inputs>-<unique>``: one per
        invocation (parallel jobs never share one), never inside the dataset.

    Returns
    -------
    bids.BIDSLayout
    """
    from bids import BIDSLayout

    for name, path in derivatives.items():
        if not (Path(path) / "dataset_description.json").is_file():
            raise NoInputError(
                f"{path}/dataset_description.json is missing: -d {name}={path} is not a BIDS "
                "derivatives folder (fMRIPrep writes one; add it with DatasetType 'derivative')."
            )
    key = json.dumps([str(Path(bids_dir).resolve())] + sorted(map(str, derivatives.values())))
    # one database per invocation: parallel jobs (SLURM array tasks) sharing a work directory
    # never write the same SQLite file
    parent = Path(work_dir) / "pybids_db"
    parent.mkdir(parents=True, exist_ok=True)
    db = Path(tempfile.mkdtemp(prefix=hashlib.sha1(key.encode()).hexdigest()[:12] + "-",
                               dir=parent))
    try:
        return BIDSLayout(
            str(bids_dir),
            validate=False,
            derivatives=[str(p) for p in derivatives.values()],
            database_path=str(db),
            reset_database=True,
        )
    except Exception as err:  # pybids raises several types for unreadable datasets
        raise ValidationError(f"{bids_dir}: pybids could not index the dataset ({err}).") from err


def _entity_filters(entities):
    """pybids filters for the pair entities (absent entity -> must be absent)."""
    from bids.layout import Query

    return {k: (v if v is not None else Query.NONE) for k, v in entities.items()}


def collect_pairs(layout, *, participant_label=(), session_label=(), task_label=(),
                  modality="auto", bold_space=None) -> list[RunPair]:
    """Pair each electrophysiology recording with the preprocessed BOLD run it goes with.

    The paired runs of :func:`collect_participants`, in order; runs without BOLD of a
    participant who has paired runs are left out (logged).

    Parameters
    ----------
    layout : bids.BIDSLayout
        From :func:`index_dataset`.
    participant_label, session_label, task_label : sequence of str
        Selections (empty: all).
    modality : {'auto', 'eeg', 'meg'}
        Which recordings to use; 'auto' takes both kinds (MEG wins when a run has both).
    bold_space : str | None
        The BOLD space to use; None picks the only one present.

    Returns
    -------
    list of RunPair
        Sorted by subject, session, task, run.

    Raises
    ------
    EmptySelectionError, NoInputError, UsageError
        As :func:`collect_participants`.
    """
    participants = collect_participants(
        layout, participant_label=participant_label, session_label=session_label,
        task_label=task_label, modality=modality, bold_space=bold_space)
    for participant in participants:
        for run in participant.ephys_only:
            logger.info("%s: no BOLD run; left out of the pairs.", run.ephys_file.name)
    return [pair for participant in participants for pair in participant.pairs]


def collect_participants(layout, *, participant_label=(), session_label=(), task_label=(),
                         modality="auto", bold_space=None,
                         allow_ephys_only=False, ephys_derivatives=None) -> list[ParticipantRuns]:
    """A participant's runs: each recording paired with its BOLD run, or on its own.

    A recording pairs with the preprocessed BOLD run of the same subject, session, task and
    run. A recording with no such BOLD run is an electrophysiology-only run (for example a
    session outside the scanner): kept beside the pairs, to be translated with the
    participant's model. A cleaned copy of a recording in one of ``ephys_derivatives`` (e.g.
    gradient- and pulse-corrected EEG exported by BrainVision Analyzer, or a ``desc-preproc``
    recording) is read instead of the raw one (logged).

    Parameters
    ----------
    layout : bids.BIDSLayout
        From :func:`index_dataset`.
    participant_label, session_label, task_label : sequence of str
        Selections (empty: all).
    modality : {'auto', 'eeg', 'meg'}
        Which recordings to use; 'auto' takes both kinds (MEG wins when a run has both).
    bold_space : str | None
        The BOLD space to use; None picks the only one present.
    allow_ephys_only : bool
        Accept a participant with no BOLD run at all (trained models are reused,
        ``--models``); otherwise that is an error.
    ephys_derivatives : dict of str to Path | None
        Derivative folders named with ``-d`` (indexed in ``layout``) whose EEG/MEG recordings
        replace the raw recordings of the same subject, session, task and run. Only folders
        named explicitly: recordings in folders found under ``BIDS_DIR/derivatives`` are not
        used (logged), so that adding a folder never changes silently what is read.

    Returns
    -------
    list of ParticipantRuns
        Sorted by subject; runs sorted by session, task, run.

    Raises
    ------
    EmptySelectionError
        If a label selects no participant, session or task.
    NoInputError
        If a selected participant has BOLD but no recording, or (without
        ``allow_ephys_only``) recordings but no BOLD run.
    UsageError
        If several BOLD spaces exist and ``bold_space`` is not given, or it is not supported.
    """
    subjects = layout.get_subjects(scope="raw")
    if participant_label:
        unknown = sorted(set(participant_label) - set(subjects))
        for subject in unknown:  # BOLD in a derivatives folder but no recording in BIDS_DIR
            bold = layout.get(subject=subject, suffix="bold", extension=list(BOLD_EXTENSIONS),
                              scope="derivatives")
            if bold:
                raise NoInputError(
                    f"sub-{subject} has preprocessed BOLD ({Path(bold[0].path).name}) but no "
                    f"EEG/MEG recording in {layout.root}; add the recording "
                    f"(sub-{subject}/eeg/ or sub-{subject}/meg/) or deselect the participant."
                )
        if unknown:
            raise EmptySelectionError(
                f"Participant label(s) {', '.join(unknown)} not found in {layout.root} "
                f"(participants present: {', '.join(subjects) or 'none'}); choose among "
                "those with --participant-label."
            )
        subjects = list(participant_label)
    if not subjects:
        raise EmptySelectionError(f"{layout.root} has no participants.")
    suffixes = {"auto": ["eeg", "meg"], "eeg": ["eeg"], "meg": ["meg"]}[modality]
    filters = {}
    if session_label:
        filters["session"] = list(session_label)
    if task_label:
        filters["task"] = list(task_label)
    participants = []
    for subject in subjects:
        ephys = layout.get(subject=subject, suffix=suffixes, extension=list(EPHYS_EXTENSIONS),
                           scope="raw", **filters)
        bold = layout.get(subject=subject, suffix="bold", extension=list(BOLD_EXTENSIONS),
                          scope="derivatives", **filters)
        bold = [f for f in bold if f.entities.get("space")]
        if not ephys and not bold:
            what = _describe_filters(filters)
            raise EmptySelectionError(f"sub-{subject}{what}: no EEG/MEG recording and no BOLD run.")
        if not ephys:
            raise NoInputError(
                f"sub-{subject} has preprocessed BOLD ({Path(bold[0].path).name}) but no "
                f"EEG/MEG recording in {layout.root}{_describe_filters(filters)}; add the "
                "recording or deselect the participant."
            )
        if not bold and not allow_ephys_only:
            raise NoInputError(
                f"sub-{subject} has EEG/MEG ({Path(ephys[0].path).name}) but no preprocessed BOLD "
                "with a space entity in the derivative folders; pass the fMRIPrep output "
                "with -d PATH, or translate it with trained models: --models TRAINED_OUTPUT_DIR."
            )
        by_run = {}
        for f in ephys:
            key = tuple(f.entities.get(k) for k in PAIR_ENTITIES)
            # MEG wins over EEG for the same run in auto mode (MEG files come first here)
            if key not in by_run or f.entities["suffix"] == "meg":
                by_run[key] = f
        cleaned = _cleaned_recordings(layout, subject, suffixes, filters, ephys_derivatives,
                                      by_run)
        participant = ParticipantRuns(subject=subject, pairs=[])
        for key, efile in sorted(by_run.items(), key=lambda kv: [str(x) for x in kv[0]]):
            entities = dict(zip(PAIR_ENTITIES, key))
            entities["run"] = _as_str(entities["run"])
            folder = None
            if key in cleaned:
                folder, efile = cleaned[key]
            pair = _pair_bold(layout, efile, entities, bold, bold_space)
            if pair is None:
                participant.ephys_only.append(EphysRun(entities=entities,
                                                       ephys_file=Path(efile.path),
                                                       ephys_derivatives=folder))
            else:
                pair.ephys_derivatives = folder
                participant.pairs.append(pair)
        if not participant.pairs and not allow_ephys_only:
            raise NoInputError(
                f"{participant.ephys_only[0].ephys_file.name} has no preprocessed BOLD run with "
                "the same subject/session/task/run in the derivative folders, nor has any other "
                f"run of sub-{subject}; add it (-d PATH), translate it with trained models "
                "(--models TRAINED_OUTPUT_DIR) or deselect the participant."
            )
        spaces = sorted({pair.space for pair in participant.pairs})
        if len(spaces) > 1:
            raise UsageError(
                f"sub-{subject}'s BOLD runs come in several spaces ({', '.join(spaces)}); "
                "choose one with --bold-space.")
        participant.bold_only = _bold_only_runs(layout, subject, bold, by_run,
                                                participant.space or bold_space)
        participants.append(participant)
    if not any(p.pairs or p.ephys_only for p in participants):
        raise EmptySelectionError(f"The selection{_describe_filters(filters)} matched no run.")
    return participants


def _cleaned_recordings(layout, subject, suffixes, filters, ephys_derivatives, by_run) -> dict:
    """Recordings of ``ephys_derivatives`` folders that replace raw ones, by run key.

    Returns
    -------
    dict
        ``{(subject, session, task, run): (folder name, pybids file)}`` for every raw
        recording in ``by_run`` with a copy in a named folder (the first by file name when a
        folder holds several, e.g. two ``desc`` values: logged).
    """
    found = layout.get(subject=subject, suffix=suffixes, extension=list(EPHYS_EXTENSIONS),
                       scope="derivatives", **filters)
    if not found:
        return {}
    folders = {name: Path(path).resolve() for name, path in (ephys_derivatives or {}).items()}

    def folder_of(f):
        path = Path(f.path).resolve()
        return next((name for name, root in folders.items() if root in path.parents), None)

    unnamed = sorted({str(next(q.parent for q in Path(f.path).parents
                               if q.name.startswith("sub-")))
                      for f in found if folder_of(f) is None})
    if unnamed:
        logger.info("sub-%s: EEG/MEG recordings in %s are not used (name the folder with -d "
                    "to read them instead of the raw recordings).", subject, ", ".join(unnamed))
    cleaned = {}
    for f in sorted(found, key=lambda f: f.path):
        name = folder_of(f)
        key = tuple(f.entities.get(k) for k in PAIR_ENTITIES)
        if name is None:
            continue
        if key not in by_run:
            logger.warning("%s (-d %s) has no raw recording of the same run in the dataset; "
                           "left out.", Path(f.path).name, name)
        elif key in cleaned:
            logger.warning("%s (-d %s) left out: %s is used for the same run.",
                           Path(f.path).name, name, Path(cleaned[key][1].path).name)
        else:
            cleaned[key] = (name, f)
            logger.info("%s: the recording %s from -d %s is read instead of the raw %s.",
                        run_label(dict(zip(PAIR_ENTITIES, key))), Path(f.path).name, name,
                        Path(by_run[key].path).name)
    return cleaned


def _bold_only_runs(layout, subject, bold, by_run, bold_space) -> list:
    """The participant's BOLD runs that no recording pairs with, as :class:`BoldRun`.

    A run whose files do not make a usable BOLD run in ``bold_space`` (a missing hemisphere,
    another space) is named in a warning and left out.
    """
    recorded = {tuple(_as_str(v) for v in key[1:]) for key in by_run}
    keys = sorted({tuple(_as_str(f.entities.get(k)) for k in PAIR_ENTITIES[1:]) for f in bold}
                  - recorded, key=lambda key: [str(x) for x in key])
    runs = []
    for key in keys:
        entities = {"subject": subject, **dict(zip(PAIR_ENTITIES[1:], key))}
        try:
            run = _pair_bold(layout, None, entities, bold, bold_space)
        except SambaBidsError as err:
            logger.warning("sub-%s: a BOLD run with no EEG/MEG recording is left out: %s",
                           subject, err)
            continue
        runs.append(run)
    return runs


def _describe_filters(filters):
    if not filters:
        return ""
    return " (" + ", ".join(f"{k}={'/'.join(map(str, v))}" for k, v in filters.items()) + ")"


def _as_str(value):
    return None if value is None else str(value)


def _pair_bold(layout, efile, entities, bold, bold_space):
    """The :class:`RunPair` of a recording, or None when no BOLD run has its entities."""
    def same_run(f):
        return all(_as_str(f.entities.get(k)) == _as_str(v) for k, v in entities.items())

    candidates = [f for f in bold if same_run(f)]
    if efile is None and candidates:  # a BOLD run without a recording
        ephys_name = f"the BOLD-only run {run_label(entities)}"
    else:
        ephys_name = Path(efile.path).name
    if not candidates:  # an electrophysiology-only run
        return None
    spaces = sorted({f.entities["space"] for f in candidates})
    if bold_space is None:
        if len(spaces) > 1:
            raise UsageError(
                f"The BOLD runs for {ephys_name} come in several spaces ({', '.join(spaces)}); "
                "choose one with --bold-space."
            )
        space = spaces[0]
    else:
        space = bold_space
        if space not in spaces:
            raise NoInputError(
                f"No BOLD run in space {space} for {ephys_name} (present: {', '.join(spaces)}); "
                "choose one of those with --bold-space."
            )
    if space not in BOLD_SPACES:
        raise UsageError(
            f"BOLD space {space} ({ephys_name}'s run) is not supported; supported spaces: "
            f"{', '.join(BOLD_SPACES)}."
        )
    in_space = [f for f in candidates if f.entities["space"] == space]
    # prefer desc-preproc (fMRIPrep volumes) or no desc (fMRIPrep surfaces)
    in_space = [f for f in in_space if f.entities.get("desc") in (None, "preproc")] or in_space
    if space in SURFACE_SPACES:
        hemis = {f.entities.get("hemi"): f for f in in_space if f.path.endswith(".func.gii")}
        missing = [h for h in ("L", "R") if h not in hemis]
        if missing:
            raise DataError(
                f"The {space} BOLD run for {ephys_name} lacks the hemi-{'/'.join(missing)} "
                "GIFTI file; both _hemi-L_ and _hemi-R_ ..._bold.func.gii are needed."
            )
        files = [hemis["L"], hemis["R"]]
    elif space in CIFTI_SPACES:
        dense = [f for f in in_space if f.path.endswith(".dtseries.nii")]
        if len(dense) != 1:
            found = ", ".join(Path(f.path).name for f in dense) or "none"
            raise DataError(
                f"Expected one {space} ..._bold.dtseries.nii (fMRIPrep --cifti-output) for "
                f"{ephys_name}, found {len(dense)}: {found}; narrow it with the entity filters."
            )
        files = dense
    else:
        volumes = [f for f in in_space if not f.path.endswith((".func.gii", ".dtseries.nii"))]
        if len(volumes) != 1:
            raise DataError(
                f"Expected one {space} BOLD NIfTI for {ephys_name}, found {len(volumes)}: "
                f"{', '.join(Path(f.path).name for f in volumes)}; narrow it with the entity filters."
            )
        files = volumes
    metadata = layout.get_metadata(files[0].path)
    tr = metadata.get("RepetitionTime")
    confounds = layout.get(
        suffix="timeseries", desc="confounds", extension=".tsv", scope="derivatives",
        **_entity_filters(entities),
    )
    bold_entities = {_BOLD_ENTITY_NAMES[k]: v for k, v in files[0].entities.items()
                     if k in _BOLD_ENTITY_NAMES}
    if efile is None:
        return BoldRun(entities=entities, bold_files=[Path(f.path) for f in files], space=space,
                       tr_s=float(tr) if tr is not None else None,
                       confounds_file=Path(confounds[0].path) if confounds else None,
                       bold_entities=bold_entities)
    return RunPair(
        entities=entities,
        ephys_file=Path(efile.path),
        bold_files=[Path(f.path) for f in files],
        space=space,
        tr_s=float(tr) if tr is not None else None,
        confounds_file=Path(confounds[0].path) if confounds else None,
        bold_entities=bold_entities,
    )
