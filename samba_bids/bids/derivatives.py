"""Derivative file names, sidecars, ``dataset_description.json`` and atomic writes.

Every output name is made by :func:`derivative_path` from the source run's entities, in BIDS
entity order (never by string concatenation elsewhere), following fMRIPrep's
``DerivativesDataSink``. Every file is written to a temporary name in its folder and renamed, so
a killed job leaves no partial file.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import CantCreateError

#: Entity order of the BIDS specification (plus the atlas entities samba-bids uses).
ENTITY_ORDER = (
    ("subject", "sub"), ("session", "ses"), ("task", "task"), ("acquisition", "acq"),
    ("ceagent", "ce"), ("reconstruction", "rec"), ("direction", "dir"), ("run", "run"),
    ("echo", "echo"), ("part", "part"), ("hemi", "hemi"), ("space", "space"),
    ("atlas", "atlas"), ("seg", "seg"), ("scale", "scale"), ("resolution", "res"),
    ("density", "den"), ("desc", "desc"),
)
_KEYS = dict(ENTITY_ORDER)
#: Suffixes samba-bids writes that BIDS does not define (listed in .bidsignore).
NONSTANDARD = ("*_hrf.tsv", "*_hrf.json", "*_metrics.tsv", "*_metrics.json", "*_model.pt",
               "*_model.json", "*_history.tsv", "*_history.json", "*_boldmap.*",
               "*_boldmap.json", "*.html", "logs/", "group/")
#: Folder of the group level's outputs (names without the subject entity).
GROUP_FOLDER = "group"


def derivative_path(output_dir, entities, *, suffix, extension, datatype="func", **overrides):
    """Path of a derivative file named from its source's entities.

    Parameters
    ----------
    output_dir : path-like
        Root of the derivatives dataset.
    entities : dict
        pybids-style entities of the source (``subject``, ``session``, ``task``, ``run``, ...);
        None values are left out.
    suffix : str
        e.g. ``bold``, ``timeseries``, ``hrf``.
    extension : str
        With the dot, e.g. ``.tsv``, ``.func.gii``, ``.nii.gz``.
    datatype : str
        Folder under ``sub-X[/ses-Y]``, e.g. ``func`` or ``model``.
    **overrides
        Entities to add or replace (long names as in ``ENTITY_ORDER``, e.g. ``desc="samba"``,
        ``hemi="L"``, ``atlas="Schaefer2018"``); None removes one.

    Returns
    -------
    Path

    Examples
    --------
    >>> derivative_path("/out", {"subject": "01", "task": "rest"}, suffix="bold",
    ...                 extension=".func.gii", hemi="L", space="fsaverage5", desc="samba")
    PosixPath('/out/sub-01/func/sub-01_task-rest_hemi-L_space-fsaverage5_desc-samba_bold.func.gii')
    """
    merged = _merge_entities(entities, overrides)
    if merged.get("subject") is None:
        raise ValueError("A derivative name needs the subject entity.")
    folder = Path(output_dir) / f"sub-{merged['subject']}"
    if merged.get("session") is not None:
        folder = folder / f"ses-{merged['session']}"
    return folder / datatype / _file_name(merged, suffix, extension)


def _merge_entities(entities, overrides) -> dict:
    """The known entities of ``entities`` updated with ``overrides`` (ValueError if unknown)."""
    merged = {k: v for k, v in entities.items() if k in _KEYS}
    unknown = set(overrides) - set(_KEYS)
    if unknown:
        raise ValueError(f"Unknown entities {sorted(unknown)}; use one of {list(_KEYS)}.")
    merged.update(overrides)
    return merged


def _file_name(merged, suffix, extension) -> str:
    """``key-value`` parts in BIDS entity order, then the suffix and extension."""
    parts = [f"{key}-{merged[name]}" for name, key in ENTITY_ORDER if merged.get(name) is not None]
    if not parts:
        raise ValueError("A file name needs at least one entity (e.g. task).")
    return "_".join(parts) + f"_{suffix}{extension}"


def group_derivative_path(output_dir, entities, *, suffix, extension, **overrides) -> Path:
    """Path of a group-level output: ``OUTPUT_DIR/group/<entities>_<suffix><extension>``.

    As :func:`derivative_path`, in BIDS entity order, but without the subject (and session)
    entities, which a summary over participants does not have (MNE-BIDS-Pipeline's
    ``sub-average`` would make pybids index a participant that does not exist).

    Examples
    --------
    >>> group_derivative_path("/out", {"subject": "01", "task": "rest"}, suffix="metrics",
    ...                       extension=".tsv", desc="samba")
    PosixPath('/out/group/task-rest_desc-samba_metrics.tsv')
    """
    merged = _merge_entities(entities, overrides)
    merged["subject"] = merged["session"] = None
    return Path(output_dir) / GROUP_FOLDER / _file_name(merged, suffix, extension)


def parse_derivative_name(path) -> tuple[dict, str, str]:
    """Entities, suffix and extension of a file named by :func:`derivative_path`.

    The inverse of :func:`derivative_path` for the entities in :data:`ENTITY_ORDER`.

    Parameters
    ----------
    path : path-like
        e.g. ``sub-01_task-rest_hemi-L_space-fsaverage5_desc-samba_bold.func.gii``.

    Returns
    -------
    entities : dict
        Long entity names to values, e.g. ``{"subject": "01", "task": "rest", "hemi": "L"}``.
    suffix : str
        e.g. ``bold``.
    extension : str
        With the dot, every part after the first dot, e.g. ``.func.gii``.

    Raises
    ------
    ValueError
        If a part of the name is not ``key-value`` or uses an unknown key.

    Examples
    --------
    >>> parse_derivative_name("sub-01_task-rest_desc-samba_hrf.tsv")
    ({'subject': '01', 'task': 'rest', 'desc': 'samba'}, 'hrf', '.tsv')
    """
    name = Path(path).name
    stem, dot, rest = name.partition(".")
    *pairs, suffix = stem.split("_")
    long_names = {key: long for long, key in ENTITY_ORDER}
    entities = {}
    for pair in pairs:
        key, sep, value = pair.partition("-")
        if not sep or key not in long_names or not value:
            raise ValueError(f"{name}: {pair!r} is not a known BIDS entity (key-value).")
        entities[long_names[key]] = value
    return entities, suffix, dot + rest


def sidecar_path(path) -> Path:
    """JSON sidecar of a data file (``x_bold.func.gii`` -> ``x_bold.json``)."""
    path = Path(path)
    name = path.name
    for ext in (".dtseries.nii", ".ptseries.nii", ".pscalar.nii", ".func.gii", ".nii.gz"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + ".json")
    return path.with_suffix(".json")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same extension); rename it into place on success.

    A failure (or a killed process) leaves no file at ``path``; the temporary file is removed
    when an exception passes through.

    Raises
    ------
    CantCreateError
        If the folder cannot be created.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CantCreateError(f"Cannot create {path.parent} ({err.strerror}).") from err
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj)} is not JSON serialisable")


def write_json(path, content) -> Path:
    """Write ``content`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2, default=_json_default) + "\n")
    return Path(path)


def write_tsv(path, frame) -> Path:
    """Write a pandas DataFrame as a BIDS TSV (tab-separated, ``n/a`` for missing), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    return Path(path)


def write_image(path, img) -> Path:
    """Save a nibabel image (NIfTI, GIFTI, CIFTI), atomically."""
    import nibabel as nib

    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def write_with_sidecar(path, writer, obj, sidecar) -> Path:
    """Write ``obj`` with ``writer`` (e.g. :func:`write_tsv`) and then its JSON sidecar."""
    writer(path, obj)
    write_json(sidecar_path(path), sidecar)
    return Path(path)


def bids_uri(dataset_name, dataset_root, path) -> str:
    """BIDS URI of ``path`` in a linked dataset, e.g. ``bids:raw:sub-01/eeg/x_eeg.vhdr``."""
    rel = Path(path).resolve().relative_to(Path(dataset_root).resolve())
    return f"bids:{dataset_name}:{rel.as_posix()}"


def write_dataset_description(output_dir, dataset_links) -> Path:
    """Write ``dataset_description.json`` and ``.bidsignore`` under a file lock.

    Participant jobs run in parallel into one folder; the first one writes, the others find
    the file in place. ``DatasetLinks`` maps the names used in ``Sources`` BIDS URIs to the
    input datasets.

    Parameters
    ----------
    output_dir : path-like
        Root of the derivatives dataset.
    dataset_links : dict of str to Path
        e.g. ``{"raw": BIDS_DIR, "preproc": DERIV_DIR}``.

    Returns
    -------
    Path
        The ``dataset_description.json`` path.
    """
    from filelock import FileLock

    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CantCreateError(
            f"Cannot create the output folder {output_dir} ({err.strerror}); choose a writable place."
        ) from err
    path = output_dir / "dataset_description.json"
    links = {k: Path(v).resolve().as_uri() for k, v in dataset_links.items()}
    generated_by = {
        "Name": "samba-bids",
        "Version": __version__,
        "CodeURL": "https://github.com/samba-bids/samba-bids",
        "Description": "SAMBA translation of electrophysiology into BOLD (arXiv 2409.18462)",
    }
    if os.environ.get("SAMBA_CONTAINER_TAG"):
        generated_by["Container"] = {"Type": os.environ.get("SAMBA_CONTAINER_TYPE", "docker"),
                                     "Tag": os.environ["SAMBA_CONTAINER_TAG"]}
    with FileLock(str(output_dir / ".dataset_description.json.lock")):
        if path.is_file():
            content = json.loads(path.read_text())
            merged = dict(content.get("DatasetLinks", {}))
            if all(merged.get(k) == v for k, v in links.items()):
                return path
            merged.update(links)
            content["DatasetLinks"] = merged
        else:
            content = {
                "Name": "samba-bids: electrophysiology-to-BOLD translation",
                "BIDSVersion": "1.10.0",
                "DatasetType": "derivative",
                "GeneratedBy": [generated_by],
                "SourceDatasets": [{"URL": uri} for uri in links.values()],
                "DatasetLinks": links,
            }
        write_json(path, content)
        ignore = output_dir / ".bidsignore"
        if not ignore.is_file():
            with atomic_path(ignore) as tmp:
                tmp.write_text("\n".join(NONSTANDARD) + "\n")
    return path
