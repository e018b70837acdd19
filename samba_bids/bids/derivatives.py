"""Derivative file names, sidecars, ``dataset_description.json`` and atomic writes.

Every output name is made by :func:`derivative_path` from the source run's entities, in BIDS
entity order (never by string concatenation elsewhere), following fMRIPrep's
``DerivativesDataSink``; :func:`output_path` and :func:`write_output` name and write the kinds of
file listed in :data:`~.outputs.OUTPUTS`. Every file is written to a temporary name in its folder
and renamed, so a killed job leaves no partial file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import CantCreateError, UsageError
from .outputs import bidsignore_patterns, output

#: BIDS entity order, ``(long name, key)``, with the atlas entities samba-bids uses. The keys
#: are bidsschematools' ``objects.entities[...]["name"]`` in its ``rules.entities`` order
#: (tests/test_bids.py checks both). Not read from the schema: bidsschematools is no declared
#: dependency (pybids pulls it in) and schema versions differ at the end (atlas left in
#: bids-specification#1579 and came back with BEP038, with seg and scale), so names would follow
#: the installed version. Long names as callers pass them; the schema says hemisphere,
#: segmentation, description for hemi, seg, desc (pybids: segmentation, res, den).
ENTITY_ORDER = (
    ("subject", "sub"), ("session", "ses"), ("task", "task"), ("acquisition", "acq"),
    ("ceagent", "ce"), ("reconstruction", "rec"), ("direction", "dir"), ("run", "run"),
    ("echo", "echo"), ("part", "part"), ("hemi", "hemi"), ("space", "space"),
    ("atlas", "atlas"), ("seg", "seg"), ("scale", "scale"), ("resolution", "res"),
    ("density", "den"), ("desc", "desc"),
)
_KEYS = dict(ENTITY_ORDER)
#: Folder of the group level's outputs (names without the subject entity).
GROUP_FOLDER = "group"
#: Files samba-bids writes that BIDS does not define (the lines of .bidsignore), from the table
#: of outputs (:data:`~.outputs.OUTPUTS`).
NONSTANDARD = bidsignore_patterns(GROUP_FOLDER)


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
    # Not pybids' build_path: of its default path patterns (0.22) none fits our names but the
    # volume BOLD's, which drops res (tests/test_bids.py, test_pybids_default_patterns_...).
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


def output_path(output_dir, key, entities, *, extension=None, **overrides) -> Path:
    """Path of an output of :data:`~.outputs.OUTPUTS`, named from its row.

    The row ``key`` gives the folder, ``desc``, suffix and the entities the name may carry
    (:meth:`~.outputs.Output.carries`); the source's other entities are left out (e.g. the space
    of a parcel table), so callers pass only what the source lacks (``hemi``, atlas entities).

    Parameters
    ----------
    output_dir : path-like
        Root of the derivatives dataset.
    key : str
        Row of :data:`~.outputs.OUTPUTS`, e.g. ``"hrf"``.
    entities : dict
        pybids-style entities of the source (long names as in ``ENTITY_ORDER``).
    extension : str | None
        One of the row's extensions; None when it has only one.
    **overrides
        Entities to add or replace (None removes one), as in :func:`derivative_path`.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If ``extension`` is not the row's (or None where it has several), or an override
        gives an entity the row's names do not carry.

    Examples
    --------
    >>> output_path("/out", "hrf", {"subject": "01", "task": "rest", "space": "fsLR"},
    ...             atlas="Schaefer2018", seg="7n", scale=200)
    PosixPath('/out/sub-01/func/sub-01_task-rest_atlas-Schaefer2018_seg-7n_scale-200_desc-samba_hrf.tsv')
    """
    row = output(key)
    if extension is None:
        if len(row.extensions) != 1:
            raise ValueError(f"{key} files are written as {', '.join(row.extensions)}; pass "
                             "extension=.")
        (extension,) = row.extensions
    carried = row.carries(extension)
    extra = sorted(k for k, v in overrides.items() if v is not None and k not in carried)
    if extra:
        raise ValueError(f"{key} names do not carry {extra}; they carry {list(carried)}.")
    kept = {k: v for k, v in {**entities, **overrides}.items() if k in carried}
    if row.suffix is None:  # a file not named from entities, e.g. sub-<label>.html
        return Path(output_dir) / (row.name.format(**kept) + extension)
    if row.level == "group":
        return group_derivative_path(output_dir, kept, suffix=row.suffix, extension=extension,
                                     desc=row.desc)
    return derivative_path(output_dir, kept, suffix=row.suffix, extension=extension,
                           datatype=row.datatype, desc=row.desc)


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
    # Not pybids' parse_file_entities, which (0.22) drops scale, names seg "segmentation",
    # res/den "res"/"den", gives run as an int, finds sub only after a "/" and task only after
    # "_" or "/", and skips unknown key-value parts where this raises; on the rest it agrees
    # for every name samba-bids writes (tests/test_bids.py).
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


def cant_write(path, err: OSError, *, folder: bool = False) -> CantCreateError:
    """The :class:`CantCreateError` for an OSError met while writing ``path``.

    A full disk (``ENOSPC``, ``EDQUOT``) says so and names the folder; a read-only file system
    or a missing permission says to choose a writable place. ``folder=True``: ``path`` is a
    folder that could not be created.
    """
    path = Path(path)
    what, where = (f"create {path}", path.parent) if folder else (
        f"write {path.name}", path.parent)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return CantCreateError(
            f"Cannot {what}: the disk is full (no space left in {where}); free space or quota "
            "there, or choose another OUTPUT_DIR, and rerun."
        )
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return CantCreateError(
            f"Cannot {what} in {where} ({err.strerror}); choose a writable OUTPUT_DIR (in a "
            "container: bind-mount it read-write)."
        )
    return CantCreateError(
        f"Cannot {what} in {where} ({err.strerror or err}); check that the folder is writable "
        "and has space, then rerun."
    )


#: Lists that :func:`record_writes` blocks fill with the paths :func:`atomic_path` renames.
_WRITE_RECORDS: list = []


@contextlib.contextmanager
def record_writes():
    """Collect the paths written through :func:`atomic_path` inside the block.

    Yields
    ------
    list of Path
        Filled as files are renamed into place (so a run that fails part-way can remove the
        files it had written, and outputs appear whole or not at all).
    """
    written = []
    _WRITE_RECORDS.append(written)
    try:
        yield written
    finally:
        _WRITE_RECORDS.remove(written)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same extension); rename it into place on success.

    A failure (or a killed process) leaves no file at ``path``; the temporary file is removed
    when an exception passes through.

    Raises
    ------
    CantCreateError
        If the folder cannot be created, or writing or renaming fails with an OSError (disk
        full, read-only file system, no permission; see :func:`cant_write`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cant_write(path.parent, err, folder=True) from err
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
        for record in _WRITE_RECORDS:
            record.append(path)
    except OSError as err:
        raise cant_write(path, err) from err
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


def check_output_dir(bids_dir, output_dir, derivatives=None) -> None:
    """Refuse an OUTPUT_DIR that would write into an input dataset or cannot be written.

    Allowed: ``BIDS_DIR/derivatives/<name>`` (the usual place is
    ``BIDS_DIR/derivatives/samba-bids``) or a folder outside the inputs. Refused: BIDS_DIR
    itself, anywhere else inside it, ``BIDS_DIR/derivatives`` itself, an input derivatives
    folder (``derivatives``, or when None every other folder of ``BIDS_DIR/derivatives`` with
    a dataset_description.json) or a folder inside one, and a folder whose
    dataset_description.json was written by another pipeline.

    Parameters
    ----------
    bids_dir, output_dir : path-like
        BIDS_DIR and OUTPUT_DIR of the command line.
    derivatives : dict of str to path-like | None
        The ``-d`` folders (None: the defaults under ``BIDS_DIR/derivatives``).

    Raises
    ------
    UsageError
        If OUTPUT_DIR is (inside) an input as above.
    CantCreateError
        If a file stands where a folder is needed, or the nearest existing folder of
        OUTPUT_DIR is not writable (permissions, read-only file system).
    """
    bids_dir = Path(bids_dir).resolve()
    output_dir = Path(output_dir).resolve()
    deriv_root = bids_dir / "derivatives"
    usual = deriv_root / "samba-bids"
    if output_dir == bids_dir:
        raise UsageError(
            f"OUTPUT_DIR is the input dataset {bids_dir}; samba-bids never writes into its "
            f"input. Use {usual}."
        )
    if output_dir == deriv_root:
        raise UsageError(
            f"OUTPUT_DIR {output_dir} is the input dataset's derivatives folder itself; give "
            f"samba-bids its own folder in it: {usual}."
        )
    if bids_dir in output_dir.parents and deriv_root not in output_dir.parents:
        raise UsageError(
            f"OUTPUT_DIR {output_dir} is inside the input dataset; put it under {deriv_root} "
            f"(e.g. {usual}) or outside the dataset."
        )
    inputs = dict(derivatives or {})
    if not derivatives and deriv_root.is_dir():
        for folder in sorted(p for p in deriv_root.iterdir() if p.is_dir()):
            if folder.resolve() != output_dir and (folder / "dataset_description.json").is_file():
                inputs[folder.name] = folder
    for name, folder in inputs.items():
        folder = Path(folder).resolve()
        if output_dir == folder or folder in output_dir.parents:
            where = "" if output_dir == folder else "inside "
            raise UsageError(
                f"OUTPUT_DIR {output_dir} is {where}the input derivatives folder {folder} "
                f"({name}); samba-bids never writes into its inputs. Use {usual} or a folder "
                "outside the inputs."
            )
    others = [n for n in _generated_by(output_dir) if n != "samba-bids"]
    if others:
        raise UsageError(
            f"OUTPUT_DIR {output_dir} holds another pipeline's derivatives ({', '.join(others)} "
            f"in its dataset_description.json); samba-bids never writes into its inputs. Use "
            f"{usual} or another folder."
        )
    _check_writable(output_dir)


def _generated_by(folder: Path) -> list:
    """``GeneratedBy`` names of a folder's dataset_description.json ([] when none)."""
    try:
        content = json.loads((folder / "dataset_description.json").read_text())
        return [str(g.get("Name")) for g in content.get("GeneratedBy", []) if isinstance(g, dict)]
    except (OSError, ValueError, AttributeError):
        return []


def _check_writable(output_dir: Path) -> None:
    """CantCreateError unless ``output_dir`` is a writable folder or can be made in one."""
    existing = output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CantCreateError(
            f"Cannot create OUTPUT_DIR {output_dir}: {existing} is not a folder (a file stands "
            "where a folder is needed); choose another OUTPUT_DIR."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        reason = "read-only file system" if read_only else "no write permission"
        raise CantCreateError(
            f"Cannot write OUTPUT_DIR {output_dir}: {existing} is not writable ({reason}); "
            "choose a writable OUTPUT_DIR (in a container: bind-mount it read-write)."
        )


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj)} is not JSON serialisable")


def _json_text(content) -> str:
    """``content`` as indented JSON text (numpy values and paths allowed)."""
    return json.dumps(content, indent=2, default=_json_default) + "\n"


def write_json(path, content) -> Path:
    """Write ``content`` as indented JSON, atomically."""
    text = _json_text(content)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
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
    """Write ``obj`` with ``writer`` and its JSON ``sidecar`` dict together: neither or both.

    The sidecar becomes JSON text first (a value JSON cannot hold fails before any file is
    written); ``writer(path, obj)`` (:func:`write_tsv`, :func:`write_image`, ...) writes
    atomically, then the sidecar is renamed into place (:func:`atomic_path`); if that fails the
    data file is removed.

    Raises
    ------
    TypeError
        If ``sidecar`` holds a value JSON cannot represent.
    CantCreateError
        If a file cannot be written (see :func:`atomic_path`).
    """
    path = Path(path)
    text = _json_text(sidecar)
    data_written = False
    try:
        with atomic_path(sidecar_path(path)) as tmp:
            tmp.write_text(text)
            writer(path, obj)
            data_written = True
    except BaseException:  # including the sidecar's rename on leaving the block
        if data_written:
            _unwrite(path)
        raise
    return path


def write_output(output_dir, key, entities, data, *, sources, parameters=None, extension=None,
                 writer=None, **overrides) -> Path:
    """Write an output of :data:`~.outputs.OUTPUTS` and its JSON sidecar, together.

    Parameters
    ----------
    output_dir, key, entities, extension, **overrides
        Name the file, as in :func:`output_path`.
    data : object
        A pandas DataFrame (``.tsv``), a nibabel image (NIfTI, GIFTI, CIFTI) or what ``writer``
        writes.
    sources : list of str
        The sidecar's ``Sources``: BIDS URIs of the inputs (:func:`bids_uri`).
    parameters : dict | None
        The rest of the sidecar: the parameters that made the file, ``Description``, columns.
    writer : callable | None
        ``writer(path, data)``, atomic; None: :func:`write_tsv` or :func:`write_image`.

    Returns
    -------
    Path
        The data file (its sidecar: :func:`sidecar_path`).

    Raises
    ------
    ValueError
        If the row has no sidecar (reports, logs), there is no default writer for the
        extension, or as :func:`output_path`.
    CantCreateError
        If a file cannot be written; neither is left (:func:`write_with_sidecar`).
    """
    path = output_path(output_dir, key, entities, extension=extension, **overrides)
    if not output(key).sidecar:
        raise ValueError(f"{key} files have no JSON sidecar; write {path.name} directly.")
    if writer is None:
        writer = write_tsv if path.name.endswith(".tsv") else write_image
        if not path.name.endswith((".tsv", ".nii", ".nii.gz", ".gii")):
            raise ValueError(f"No default writer for {path.name}; pass writer=.")
    return write_with_sidecar(path, writer, data, {"Sources": list(sources),
                                                   **(parameters or {})})


def _unwrite(path: Path) -> None:
    """Remove a file :func:`atomic_path` wrote, and from the :func:`record_writes` lists."""
    with contextlib.suppress(OSError):
        path.unlink()
    for record in _WRITE_RECORDS:
        while path in record:
            record.remove(path)


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
        raise cant_write(output_dir, err, folder=True) from err
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
    try:
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
    except OSError as err:  # the lock file itself (read-only or full file system)
        raise cant_write(path, err) from err
    return path
