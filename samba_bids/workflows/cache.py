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

    Attributes
    ----------
    folder : pathlib.Path
        The folder of the finished run's ``result.pkl``.
    inputs_folder : pathlib.Path
        The folder of the prepared inputs' ``inputs.pkl``.
    """

    def __init__(self, work_dir, pair, config: Config, templates_dir):
        files = [Path(pair.ephys_file), *map(Path, pair.bold_files)]
        if pair.confounds_file is not None:
            files.append(Path(pair.confounds_file))
        stem = Path(pair.ephys_file).name.split(".")[0]
        files += sorted(Path(pair.ephys_file).parent.glob(stem + ".*"))  # .eeg, .vmrk, ...
        stats = sorted({(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns)
                        for f in files if f.exists()})
        common = {"files": stats, "templates": str(Path(templates_dir).resolve()),
                  "version": __version__}
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
        self._store(self.inputs_folder, "inputs.pkl", dataclasses.replace(inputs, bold=None))

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


def _key(payload: dict) -> str:
    """The first 16 hex digits of the SHA-1 of ``payload`` as sorted JSON."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]
