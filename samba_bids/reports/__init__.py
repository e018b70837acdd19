"""HTML reports: the participant report (one section per run) and the group report.

Figures (:mod:`samba_bids.reports.figures`) are plain functions of arrays and frames that
return matplotlib figures; the pages inline them as base64 PNG, with inline CSS and no scripts
or external resources, so a report is one file that opens anywhere. Importing this package
imports neither matplotlib nor nilearn.
"""

from .group import GroupReport, render_group_report
from .participant import (
    EphysOnlyRun,
    ParticipantReport,
    ParticipantSummary,
    render_participant_report,
)

__all__ = ["EphysOnlyRun", "GroupReport", "ParticipantReport", "ParticipantSummary",
           "render_group_report", "render_participant_report"]
