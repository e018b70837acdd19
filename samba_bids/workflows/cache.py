"""The work-directory cache of a participant run, keyed per stage (MNE-BIDS-Pipeline style)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

from .. import __version__
from ..config import PREPARE_SECTIONS, Config

logger = logging.getLogger("samba_bids.workflows")


class RunCache:
    """The work-directory cache of one run, keyed per stage by its inputs and settings.

    ``work_dir/cache/<run label>/<key>/``: ``inputs.pkl`` (the prepared
    :class:`~samba_bids.workflows.inputs.RunInputs`) under the key of the preparation stage,
    ``result.pkl`` (the :class:`~samba_bids.workflows.results.RunResult` of a finished run)
    under the key of the whole run. Both keys hash the input files (name, size, modification
    time), the templates folder and the package version; the preparation key adds the
    settings that :func:`~samba_bids.workflows.inputs.prepare_run` reads
    (:data:`~samba_bids.config.PREPARE_SECTIONS`), the run key every setting that changes
    results (:data:`~samba_bids.config.RESULT_SECTIONS`) and OUTPUT_DIR. So a rerun with the
    same inputs and settings skips what is done, and changing, say, the learning rate retrains
    without redoing the source reconstruction.

    Parameters
    ----------
    work_dir : path-like
    pair : samba_bids.bids.layout.RunPair
    config : Config
    templates_dir : path-like
    extra : dict, optional
        More of what the prepared inputs depend on (the model's TR for a recording without
        BOLD), added to both keys.

    Attributes
    ----------
    folder : pathlib.Path
        The folder of the finished run's ``result.pkl``.
    inputs_folder : pathlib.Path
        The folder of the prepared inputs' ``inputs.pkl``.
    """

    def __init__(self, work_dir, pair, config: Config, templates_dir, *, extra=None):
        common = {"files": _file_stats(pair), "templates": str(Path(templates_dir).resolve()),
                  "version": __version__}
        if extra:
            common["extra"] = extra
        root = Path(work_dir) / "cache" / pair.label
        self.inputs_folder = root / _key({**common, "stage": "prepare",
                                          "settings": config.settings(*PREPARE_SECTIONS)})
        self.folder = root / _key({**common, "settings": config.settings(),
                                   "output_dir": str(Path(config.output_dir).resolve())})

    def _load(self, folder, name):
        import pickle

        path = folder / name
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as fid:
                return pickle.load(fid)
        except Exception as err:  # a cache written by another version, or cut short
            logger.warning("Ignoring the unreadable cache file %s (%s).", path, err)
            return None

    def _store(self, folder, name, obj) -> None:
        import pickle

        from ..bids.derivatives import atomic_path

        with atomic_path(folder / name) as tmp, open(tmp, "wb") as fid:
            pickle.dump(obj, fid, protocol=pickle.HIGHEST_PROTOCOL)

    def load_inputs(self):
        """The prepared :class:`~samba_bids.workflows.inputs.RunInputs`, or None."""
        return self._load(self.inputs_folder, "inputs.pkl")

    def store_inputs(self, inputs) -> None:
        """Keep the prepared inputs (without the loaded BOLD data)."""
        if hasattr(inputs, "bold"):
            inputs = dataclasses.replace(inputs, bold=None)
        self._store(self.inputs_folder, "inputs.pkl", inputs)

    def load_result(self):
        """The :class:`~samba_bids.workflows.results.RunResult` of a finished run whose
        outputs all exist, or None."""
        result = self._load(self.folder, "result.pkl")
        if result is None:
            return None
        if not all(Path(p).is_file() for p in result.outputs):
            logger.info("%s: some outputs of the earlier run are missing; running again.",
                        self.folder.parent.name)
            return None
        return result

    def store_result(self, result) -> None:
        """Mark the run finished (after every output was written)."""
        self._store(self.folder, "result.pkl", result)


class ParticipantCache(RunCache):
    """The work-directory cache of a participant's finished runs (one model across them).

    ``work_dir/cache/sub-<label>/<key>/result.pkl``: the
    :class:`~samba_bids.workflows.participant.ParticipantOutcome`, under a key of every input
    file of the participant's selected runs (paired, electrophysiology-only, BOLD-only), the
    templates, the version, the settings that change results and OUTPUT_DIR.
    """

    def __init__(self, work_dir, participant, config: Config, templates_dir):
        runs = [*participant.pairs, *participant.ephys_only, *participant.bold_only]
        payload = {"files": [_file_stats(run) for run in runs],
                   "templates": str(Path(templates_dir).resolve()), "version": __version__,
                   "settings": config.settings(),
                   "output_dir": str(Path(config.output_dir).resolve())}
        root = Path(work_dir) / "cache" / participant.label
        self.folder = root / _key(payload)
        self.inputs_folder = self.folder

    def load_result(self):
        """The participant's outcome when every output file exists, or None."""
        outcome = self._load(self.folder, "result.pkl")
        if outcome is None:
            return None
        if not all(Path(p).is_file() for run in outcome.runs for p in run.outputs):
            logger.info("%s: some outputs of the earlier run are missing; running again.",
                        self.folder.parent.name)
            return None
        return outcome


def _file_stats(run) -> list:
    """(path, size, mtime) of a run's input files: the recording (and its companions, e.g.
    ``.eeg``, ``.vmrk``), the BOLD files and confounds."""
    files = [*map(Path, run.bold_files)]
    if run.confounds_file is not None:
        files.append(Path(run.confounds_file))
    if run.ephys_file is not None:  # None: a BOLD-only run
        stem = Path(run.ephys_file).name.split(".")[0]
        files += [Path(run.ephys_file)]
        files += sorted(Path(run.ephys_file).parent.glob(stem + ".*"))  # .eeg, .vmrk, ...
    return sorted({(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns)
                   for f in files if f.exists()})


def _key(payload: dict) -> str:
    """The first 16 hex digits of the SHA-1 of ``payload`` as sorted JSON."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]
