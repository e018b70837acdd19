"""Stimulus-locked pairing: electrophysiology and BOLD of different people, by the stimulus.

SAMBA's MEG-to-fMRI results come from people recorded with MEG and other people scanned with
fMRI while they watched the same film (studyforrest), aligned by film time only
(``SAMBA_NOTES.md``). Here a run's stimulus and its onset come from the run's ``events.tsv``:
the row with a ``stim_file`` (the default), or the row whose ``trial_type`` is the name given
with ``--stimulus-event``. Runs of one task that show the same stimulus make a *segment*:
film time ``t`` of an electrophysiology run (its recording clock minus its onset) meets film
time ``t`` of a BOLD run (the time since its first volume's acquisition started, minus its
onset, the BIDS convention for ``func`` events), whatever each recording's start.

Runs whose stimulus is missing, or shown to one modality only, are listed and left out
(:attr:`StimulusDesign.left_out`, logged as a warning).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, EmptySelectionError
from .layout import (
    BOLD_EXTENSIONS,
    EPHYS_EXTENSIONS,
    PAIR_ENTITIES,
    EphysRun,
    _as_str,
    _pair_bold,
    run_label,
)

logger = logging.getLogger(__name__)

#: ``--pairing`` values: the same participant's recordings (simultaneous EEG-fMRI, or MEG and
#: fMRI of one person), or different people's, by the stimulus they watched.
PAIRINGS = ("participant", "stimulus")


@dataclass
class StimulusEvent:
    """The stimulus shown in one run, read from its ``events.tsv``.

    Attributes
    ----------
    stimulus : str
        Its identity: the ``stim_file`` value, else the ``trial_type`` value.
    onset_s : float
        Onset, s: on the recording's clock (electrophysiology) or from the start of the first
        volume's acquisition (BOLD).
    duration_s : float or None
        Duration, s (None when ``n/a``).
    events_file : Path
    """

    stimulus: str
    onset_s: float
    duration_s: float | None
    events_file: Path


@dataclass
class StimulusRun:
    """One run of one participant, with its stimulus.

    Attributes
    ----------
    kind : {'ephys', 'bold'}
    run : samba_bids.bids.layout.EphysRun or samba_bids.bids.layout.BoldRun
    event : StimulusEvent
    """

    kind: str
    run: object
    event: StimulusEvent

    @property
    def label(self) -> str:
        return self.run.label

    @property
    def subject(self) -> str:
        return self.run.entities["subject"]


@dataclass
class StimulusSegment:
    """The runs of every participant that show one stimulus of one task.

    Attributes
    ----------
    task : str
    stimulus : str
    ephys : list of StimulusRun
        Electrophysiology runs, sorted by participant.
    bold : list of StimulusRun
        BOLD runs, sorted by participant.
    """

    task: str
    stimulus: str
    ephys: list = field(default_factory=list)
    bold: list = field(default_factory=list)

    @property
    def label(self) -> str:
        """``task-<task>_stim-<stimulus without extension>`` (for messages)."""
        return f"task-{self.task}_stim-{Path(self.stimulus).stem}"

    @property
    def duration_s(self) -> float | None:
        """The shortest duration any run's events give (None if none gives one)."""
        values = [r.event.duration_s for r in self.ephys + self.bold
                  if r.event.duration_s is not None]
        return min(values) if values else None

    @property
    def run(self) -> str | None:
        """The run entity shared by every run of the segment, else None."""
        runs = {_as_str(r.run.entities.get("run")) for r in self.ephys + self.bold}
        return runs.pop() if len(runs) == 1 else None


@dataclass
class StimulusDesign:
    """Segments that pair, and the runs left out with the reason."""

    segments: list
    left_out: list = field(default_factory=list)  # (run label or file, reason)

    @property
    def ephys_subjects(self) -> list:
        return sorted({r.subject for s in self.segments for r in s.ephys})

    @property
    def bold_subjects(self) -> list:
        return sorted({r.subject for s in self.segments for r in s.bold})


def read_stimulus_events(events_file, *, stimulus_event: str | None = None):
    """Every stimulus a run's ``events.tsv`` names, in the order of its rows.

    Parameters
    ----------
    events_file : path-like
        A BIDS ``_events.tsv`` (``onset`` and ``duration`` in s; ``trial_type``,
        ``stim_file`` optional).
    stimulus_event : str, optional
        The ``trial_type`` of the stimulus rows. Default: the rows with a ``stim_file``.

    Returns
    -------
    list of StimulusEvent or str
        The events (at least one), or the reason there is none (a one-line text).

    Raises
    ------
    DataError
        If the file cannot be read as a table with an ``onset`` column.
    """
    events_file = Path(events_file)
    try:
        table = pd.read_csv(events_file, sep="\t", na_values=["n/a", ""], keep_default_na=False)
    except Exception as err:  # any unreadable table
        raise DataError(f"{events_file}: cannot read the events table ({err}).") from err
    if "onset" not in table.columns:
        raise DataError(f"{events_file} has no 'onset' column; BIDS events need one.")
    if stimulus_event is not None:
        if "trial_type" not in table.columns:
            return f"no trial_type column (--stimulus-event {stimulus_event})"
        rows = table[table["trial_type"].astype(str) == stimulus_event]
        what = f"trial_type {stimulus_event!r}"
    else:
        if "stim_file" not in table.columns:
            return "no stim_file column (name the stimulus event with --stimulus-event)"
        rows = table[table["stim_file"].notna()]
        what = "stim_file"
    if rows.empty:
        return f"no row with a {what}"
    events = []
    for _, row in rows.iterrows():
        if "stim_file" in rows.columns and pd.notna(row.get("stim_file")):
            stimulus = str(row["stim_file"])
        else:
            stimulus = str(row["trial_type"])
        onset = float(row["onset"])
        if not np.isfinite(onset):
            return f"a {what} row has no onset"
        duration = row.get("duration")
        duration = float(duration) if duration is not None and pd.notna(duration) else None
        if duration is not None and duration <= 0:
            return f"a {what} row has duration {duration:g} s"
        events.append(StimulusEvent(stimulus=stimulus, onset_s=onset, duration_s=duration,
                                    events_file=events_file))
    return events


def read_stimulus_event(events_file, *, stimulus_event: str | None = None):
    """The stimulus of a run from its ``events.tsv`` (one stimulus per run).

    Parameters
    ----------
    events_file : path-like
        A BIDS ``_events.tsv`` (``onset`` and ``duration`` in s; ``trial_type``,
        ``stim_file`` optional).
    stimulus_event : str, optional
        The ``trial_type`` of the stimulus row. Default: the row with a ``stim_file``.

    Returns
    -------
    StimulusEvent or str
        The event, or the reason there is none or several (a one-line text).

    Raises
    ------
    DataError
        If the file cannot be read as a table with an ``onset`` column.
    """
    events = read_stimulus_events(events_file, stimulus_event=stimulus_event)
    if isinstance(events, str):
        return events
    if len(events) > 1:
        what = f"trial_type {stimulus_event!r}" if stimulus_event is not None else "stim_file"
        return f"{len(events)} rows with a {what}; one stimulus per run is expected"
    return events[0]


def find_events_file(layout, entities, datatype: str = "func"):
    """The raw dataset's ``events.tsv`` of a run (``entities``: subject, session, task,
    acquisition, run; pybids' inheritance applies) in ``datatype``'s folder, or None."""
    from .layout import _entity_filters

    found = layout.get(suffix="events", extension=".tsv", datatype=datatype, scope="raw",
                       **_entity_filters(entities))
    return Path(found[0].path) if found else None


def collect_stimulus_design(layout, *, participant_label=(), session_label=(), task_label=(),
                            modality="auto", bold_space=None,
                            stimulus_event: str | None = None) -> StimulusDesign:
    """Pair electrophysiology and BOLD runs across participants by task and stimulus.

    Every EEG/MEG recording of ``BIDS_DIR`` and every preprocessed BOLD run (derivatives, in
    ``bold_space``) of the selected participants is read with its ``events.tsv`` (the
    recording's, in its ``eeg``/``meg`` folder; the BOLD run's in the raw ``func`` folder).
    A participant may have either or both kinds.

    Parameters
    ----------
    layout : bids.BIDSLayout
        From :func:`~.layout.index_dataset`.
    participant_label, session_label, task_label : sequence of str
        Selections (empty: all).
    modality : {'auto', 'eeg', 'meg'}
    bold_space : str, optional
        Default: the only space present.
    stimulus_event : str, optional
        See :func:`read_stimulus_event`.

    Returns
    -------
    StimulusDesign
        Segments with at least one run of each kind, sorted by task and stimulus.

    Raises
    ------
    EmptySelectionError
        If no segment has runs of both kinds (exit 18); the message lists what was left out.
    DataError
        If an events table cannot be read.
    UsageError
        If several BOLD spaces are present and ``bold_space`` is not given.
    """
    filters = {}
    if session_label:
        filters["session"] = list(session_label)
    if task_label:
        filters["task"] = list(task_label)
    subjects = list(participant_label) or layout.get_subjects(scope="raw")
    suffixes = {"auto": ["eeg", "meg"], "eeg": ["eeg"], "meg": ["meg"]}[modality]
    ephys = layout.get(subject=subjects, suffix=suffixes, extension=list(EPHYS_EXTENSIONS),
                       scope="raw", **filters)
    bold = [f for f in layout.get(subject=subjects, suffix="bold",
                                  extension=list(BOLD_EXTENSIONS), scope="derivatives",
                                  **filters) if f.entities.get("space")]
    if bold_space is None:
        spaces = sorted({f.entities["space"] for f in bold})
        bold_space = spaces[0] if len(spaces) == 1 else None
    runs, left_out = [], []
    by_run = {}
    for f in ephys:  # MEG wins over EEG for the same run in auto mode
        key = tuple(_as_str(f.entities.get(k)) for k in PAIR_ENTITIES)
        if key not in by_run or f.entities["suffix"] == "meg":
            by_run[key] = f
    for key, f in sorted(by_run.items(), key=lambda kv: [str(x) for x in kv[0]]):
        entities = dict(zip(PAIR_ENTITIES, key))
        run = EphysRun(entities=entities, ephys_file=Path(f.path))
        runs.append(("ephys", run, find_events_file(layout, entities, f.entities["suffix"])))
    keys = sorted({tuple(_as_str(f.entities.get(k)) for k in PAIR_ENTITIES) for f in bold},
                  key=lambda key: [str(x) for x in key])
    for key in keys:
        entities = dict(zip(PAIR_ENTITIES, key))
        run = _pair_bold(layout, None, entities, bold, bold_space)
        runs.append(("bold", run, find_events_file(layout, entities, "func")))
    segments = {}
    for kind, run, events in runs:
        name = run.ephys_file.name if kind == "ephys" else run_label(run.entities) + " (BOLD)"
        if events is None:
            left_out.append((name, "no events.tsv"))
            continue
        event = read_stimulus_event(events, stimulus_event=stimulus_event)
        if isinstance(event, str):
            left_out.append((name, f"{events.name}: {event}"))
            continue
        key = (run.entities["task"], event.stimulus)
        segment = segments.setdefault(key, StimulusSegment(task=key[0], stimulus=key[1]))
        (segment.ephys if kind == "ephys" else segment.bold).append(
            StimulusRun(kind=kind, run=run, event=event))
    paired = []
    for key in sorted(segments):
        segment = segments[key]
        if segment.ephys and segment.bold:
            paired.append(segment)
            continue
        shown = "EEG/MEG" if segment.ephys else "BOLD"
        for run in segment.ephys + segment.bold:
            left_out.append((run.label, f"stimulus {segment.stimulus} of task {segment.task} "
                                        f"is shown in {shown} runs only"))
    for name, reason in left_out:
        logger.warning("stimulus pairing: %s left out: %s", name, reason)
    if not paired:
        listed = "; ".join(f"{n}: {r}" for n, r in left_out[:5]) or "no runs found"
        raise EmptySelectionError(
            f"--pairing stimulus: no stimulus is shown in both EEG/MEG and BOLD runs of "
            f"{layout.root} ({listed}); each run's events.tsv needs the stimulus row "
            "(stim_file, or --stimulus-event NAME for its trial_type).")
    return StimulusDesign(segments=paired, left_out=left_out)
