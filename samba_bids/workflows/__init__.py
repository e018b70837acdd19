"""Participant and group levels, composed from the stages (read top to bottom like DESIGN.md).

``run(config)`` is what the command line calls. Each stage is a plain function of another
module; this package only wires them together:

- :mod:`.participant`: the participant level (:func:`run_participant_level`, per run
  :func:`process_run`);
- :mod:`.inputs`: one run made ready for the model (:func:`prepare_run`);
- :mod:`.translate`: SAMBA and its baselines in each direction on one run;
- :mod:`.outputs`: the derivatives and their sidecars;
- :mod:`.group`: the group level and the group model;
- :mod:`.cache`: the work-directory cache, keyed per stage; :mod:`.execution`: SIGTERM,
  warnings, the settings recorded in OUTPUT_DIR; :mod:`.results`: what a run returns.
"""

from __future__ import annotations

from ..config import Config
from ..errors import UsageError
from .cache import RunCache
from .execution import (
    collect_warnings,
    record_config,
    remove_stale_temporaries,
    terminate_cleanly,
)
from .group import (
    collect_participant_outputs,
    group_table,
    run_group_level,
    run_group_model,
)
from .inputs import RunInputs, prepare_run
from .participant import process_run, run_participant_level
from .results import Results, RunResult
from .translate import translate_forward, translate_reverse

__all__ = [
    "Config", "Results", "RunCache", "RunInputs", "RunResult", "check_locations",
    "collect_participant_outputs", "collect_warnings", "group_table", "prepare_run",
    "process_run", "record_config", "remove_stale_temporaries", "run", "run_group_level",
    "run_group_model", "run_participant_level", "terminate_cleanly", "translate_forward",
    "translate_reverse",
]


def run(config: Config) -> Results:
    """Run the level named in ``config.analysis_level``.

    Raises
    ------
    SambaBidsError
        Subclasses carry the BEP027 exit code (see :mod:`samba_bids.errors`).
    """
    from ..resources import budget_config, thread_limits

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
    from ..bids.derivatives import check_output_dir

    if config.bids_dir is None or config.output_dir is None:
        raise UsageError("Both BIDS_DIR and OUTPUT_DIR are required.")
    check_output_dir(config.bids_dir, config.output_dir, config.derivatives)
