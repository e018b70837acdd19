"""Run control shared by both levels: SIGTERM, warnings for the reports, stale temporaries,
and the settings recorded in OUTPUT_DIR."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from .. import __version__
from ..config import Config
from ..errors import UsageError

logger = logging.getLogger("samba_bids.workflows")


@contextlib.contextmanager
def terminate_cleanly():
    """Turn SIGTERM into :class:`~.errors.TerminatedError` inside the block.

    SLURM's time limit and ``docker stop`` send SIGTERM; raising an exception lets every
    atomic write in progress delete its temporary file (:func:`~.bids.derivatives.
    atomic_path`) before the process exits with 143. Only in the main thread.
    """
    import signal
    import threading

    from ..errors import TerminatedError

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


def record_config(config: Config, name: str = "config.json") -> Path:
    """Keep the settings of OUTPUT_DIR in ``logs/<name>``; refuse different ones.

    Parallel participant jobs of one cohort share OUTPUT_DIR and the file (written under a
    file lock). Selections (participants, sessions, tasks, BOLD space, device) may differ:
    only :meth:`~samba_bids.config.Config.settings` (the sections that change results) are
    recorded and compared.

    Parameters
    ----------
    config : Config
        The run's configuration (``output_dir``, ``overwrite`` and the result settings).
    name : str
        File name under ``OUTPUT_DIR/logs``: ``config.json`` for the participant level (and
        the group level that reads it), ``config_pairing-stimulus.json`` for the group level
        of ``--pairing stimulus``, whose outputs another level's settings do not describe.

    Returns
    -------
    pathlib.Path
        ``OUTPUT_DIR/logs/<name>``.

    Raises
    ------
    UsageError
        If OUTPUT_DIR was made with other settings and ``config.overwrite`` is False; the
        message names the file and lists the settings that differ.
    ValueError
        If ``name`` is not a plain ``.json`` file name.
    """
    import json

    from filelock import FileLock

    from ..bids.derivatives import write_json

    if Path(name).name != name or not name.endswith(".json"):
        raise ValueError(f"record_config: name must be a .json file name; got {name!r}.")
    path = Path(config.output_dir) / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = config.settings()
    with FileLock(str(path.parent / f".{name}.lock")):
        if path.is_file():
            previous = json.loads(path.read_text()).get("Settings", {})
            # a setting added by a newer version is absent from older files: at its default
            # it changes nothing those outputs were made with; one that no longer counts
            # among the result settings (skip_bids_validation, before 0.1.1) is not compared
            defaults = Config().settings()
            previous = {**{k: defaults[k] for k in set(settings) - set(previous)
                           if k in defaults}, **previous}
            differ = sorted(k for k in settings if settings.get(k) != previous.get(k))
            if not differ:
                return path
            if not getattr(config, "overwrite", False):
                shown = ", ".join(f"{k} ({previous.get(k)!r} -> {settings.get(k)!r})"
                                  for k in differ[:6])
                raise UsageError(
                    f"{config.output_dir} was made with other settings (logs/{name}): {shown}; "
                    "use another OUTPUT_DIR, the same settings, or --overwrite to replace its "
                    "outputs."
                )
            logger.warning("--overwrite: %s was made with other settings (%s); its outputs "
                           "are replaced as runs finish.", config.output_dir, ", ".join(differ))
        write_json(path, {"Settings": settings, "Version": __version__,
                          "Description": "Settings that made the outputs in this folder "
                                         "(selections and locations excluded)."})
    return path
