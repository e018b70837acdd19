"""What a run of samba-bids returns: per participant run, and for the whole invocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__


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
    #: The level's in-memory result, for callers in Python (the stimulus pairing's
    #: :class:`~.stimulus.StimulusResult`).
    detail: object = None


@dataclass
class ParticipantOutcome:
    """What a participant produced: a :class:`RunResult` per run, and the report's summary."""

    subject: str
    runs: list = field(default_factory=list)
    summary: object = None  # samba_bids.reports.participant.ParticipantSummary


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
                ridge = (f" (ridge baseline {s['ridge_median_pearson_r']:.3f})"
                         if "ridge_median_pearson_r" in s else "")
                held = {"runs": " (held-out run)", "blocks": ""}.get(s.get("cross_validation"),
                                                                     "")
                lines.append(
                    f"  {run.label}: test median Pearson r{held} {s['median_pearson_r']:.3f}"
                    f"{ridge}, {s['fraction_significant']:.0%} of {s['n_parcels']} parcels "
                    f"significant (FDR 0.05)"
                )
            if s.get("ephys_only"):
                lines.append(f"  {run.label}: no BOLD recorded; {s['n_volumes']} volumes "
                             f"predicted with {s['model']}")
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
