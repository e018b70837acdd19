"""Fetch the real templates from their official sources (``samba-bids-fetch-templates``).

The only place samba-bids downloads anything, and only when asked: CBIG's Schaefer 2018
annotations and fs_LR 32k dlabels, TemplateFlow's MNI152NLin6Asym volumes and fsLR meshes, HCP
Pipelines' 91k grayordinates, MNE-Python's fsaverage BEM archive. The folder is built in a
temporary sibling, checked with the atlas readers of :mod:`samba_bids.templates.atlases`, and
renamed into place.

The download itself stays our own :func:`download` rather than the libraries that know these
sources: :func:`mne.datasets.fetch_fsaverage` has its URLs written in its code (no mirror, no
``file://`` for offline sites and tests), also downloads the whole fsaverage subject and
writes ``SUBJECTS_DIR`` into the MNE configuration; ``templateflow.api.get`` (not a
dependency) reads from one archive root for all files (no per-file mirror) and takes no
expected hash. Both would write into their own caches, not into the temporary folder that
makes a failed fetch leave nothing behind.

About 600 lines: the download table, the download, and one builder per space, which share the
temporary-folder handling; split further they would pass that state between modules.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CantCreateError, DataError, NoInputError, UsageError
from .atlases import check_atlas, dlabel_axes, dlabel_names, load_cifti_header
from .fallback import nilearn_fsaverage5, write_fsaverage5_surfaces
from .locate import find_three_layer_bem
from .spaces import (
    FALLBACK_SURFACES,
    FSLR_MIDTHICKNESS,
    cifti_dlabel_name,
    fslr_table_name,
    schaefer_annot_name,
    volume_atlas_name,
    volume_table_name,
)

# The package's logger, as before the split into modules: log lines keep their name.
logger = logging.getLogger(__package__)

#: Parts of a templates folder that :func:`fetch_templates` can fetch. ``fsaverage`` is MNE's
#: fsaverage head model only (``fsaverage/bem/``: the three-layer BEM used by EEG forwards).
FETCH_SPACES = ("fsaverage5", "MNI152NLin6Asym", "fsLR", "fsaverage")
#: What ``samba-bids-fetch-templates`` fetches without ``--spaces``.
DEFAULT_FETCH_SPACES = ("fsaverage5", "MNI152NLin6Asym", "fsLR")
#: Schaefer 2018 scales published by CBIG and TemplateFlow (the readers use 100, 200, 400).
SCHAEFER_SCALES = tuple(range(100, 1001, 100))
#: ``GeneratedBy`` name in the ``dataset_description.json`` of a fetched folder.
FETCH_GENERATOR = "samba-bids-fetch-templates"

#: CBIG repository, pinned to the commit that XCP-D also pins for these files.
_CBIG = ("https://github.com/ThomasYeoLab/CBIG/raw/eca7bc9f63d732834f74b44beac30af360608347/"
         "stable_projects/brain_parcellation/Schaefer2018_LocalGlobal/Parcellations")
#: The TemplateFlow archive: the bucket the ``templateflow`` client downloads from
#: (``templateflow.conf.TF_S3_ROOT``), so these are the files ``templateflow.api.get`` returns.
_TEMPLATEFLOW = "https://templateflow.s3.amazonaws.com"
#: HCP Pipelines' 91,282-grayordinate template (the standard fsLR 91k structure).
_HCP_GREYORDINATES = ("https://github.com/Washington-University/HCPpipelines/raw/"
                      "e2d5bbad6d48452deb15c4293556b535c1973a75/global/templates/"
                      "91282_Greyordinates/91282_Greyordinates.dscalar.nii")
#: MNE-Python's fsaverage BEM archive: URL and MD5 of ``mne.datasets.fetch_fsaverage``
#: (mne/datasets/_fsaverage/base.py, MNE 1.8-1.13; a test checks them against the installed MNE).
MNE_FSAVERAGE_BEM_URL = "https://osf.io/download/7ve8g?version=4"
MNE_FSAVERAGE_BEM_MD5 = "b31509cdcf7908af6a83dc5ee8f49fb1"
#: Files kept from MNE's fsaverage BEM archive (its ``-src.fif`` source spaces are not needed).
_MNE_BEM_FILES = ("bem/fsaverage-5120-5120-5120-bem-sol.fif", "bem/fsaverage-trans.fif",
                  "bem/fsaverage-fiducials.fif", "bem/fsaverage-head.fif",
                  "bem/fsaverage-inner_skull-bem.fif")


def fetch_sources(scales=(100, 200, 400), spaces=DEFAULT_FETCH_SPACES) -> dict:
    """The official download table of :func:`fetch_templates`.

    Parameters
    ----------
    scales : sequence of int
        Schaefer 2018 scales (total parcels).
    spaces : sequence of str
        Parts of :data:`FETCH_SPACES`.

    Returns
    -------
    dict of str to dict
        Source name (a relative path such as ``fsaverage5/lh.Schaefer2018_200Parcels_7Networks_order.annot``)
        to ``{"url": str, "known_hash": str | None, "provider": str}``. ``known_hash`` is set
        only where it could be verified (MNE's archive MD5); every downloaded file's SHA256 is
        recorded in the folder's ``dataset_description.json``.
    """
    table = {}

    def add(name, url, provider, known_hash=None):
        table[name] = {"url": url, "known_hash": known_hash, "provider": provider}

    for n in scales:
        annot = schaefer_annot_name(n)
        if "fsaverage5" in spaces:
            for hemi in ("lh", "rh"):
                add(f"fsaverage5/{hemi}.{annot}.annot",
                    f"{_CBIG}/FreeSurfer5.3/fsaverage5/label/{hemi}.{annot}.annot",
                    "CBIG Schaefer2018_LocalGlobal (MIT licence)")
        if "MNI152NLin6Asym" in spaces:
            for fname in (volume_atlas_name(n), volume_table_name(n)):
                add(f"MNI152NLin6Asym/{fname}", f"{_TEMPLATEFLOW}/tpl-MNI152NLin6Asym/{fname}",
                    "TemplateFlow tpl-MNI152NLin6Asym (Schaefer 2018 atlas, MIT licence)")
        if "fsLR" in spaces:
            add(f"fsLR/{annot}.dlabel.nii", f"{_CBIG}/HCP/fslr32k/cifti/{annot}.dlabel.nii",
                "CBIG Schaefer2018_LocalGlobal, HCP fs_LR 32k (MIT licence)")
    if "fsLR" in spaces:
        add("fsLR/91282_Greyordinates.dscalar.nii", _HCP_GREYORDINATES,
            "HCP Pipelines global/templates/91282_Greyordinates")
        for hemi in ("L", "R"):
            fname = FSLR_MIDTHICKNESS.format(hemi=hemi)
            add(f"fsLR/{fname}", f"{_TEMPLATEFLOW}/tpl-fsLR/{fname}", "TemplateFlow tpl-fsLR")
    if "fsaverage" in spaces:
        add("fsaverage/MNE-fsaverage-bem.zip", MNE_FSAVERAGE_BEM_URL,
            "MNE-Python fsaverage (mne.datasets.fetch_fsaverage BEM archive)",
            f"md5:{MNE_FSAVERAGE_BEM_MD5}")
    return table


def _resolve_sources(scales, spaces, sources) -> dict:
    """Default table with ``sources`` entries (URL or ``(url, known_hash)``) over it."""
    table = fetch_sources(scales, spaces)
    known = fetch_sources(SCHAEFER_SCALES, FETCH_SPACES)
    for name, value in dict(sources or {}).items():
        if name not in known:
            raise UsageError(
                f"unknown source {name!r}; the sources of this fetch are: {', '.join(table)} "
                "(samba-bids-fetch-templates --list-sources prints them)."
            )
        if name not in table:  # a mirror table may cover more than this fetch needs
            continue
        if isinstance(value, str):
            url, known_hash = value, None
        elif isinstance(value, dict):
            url, known_hash = value["url"], value.get("known_hash")
        else:
            url, known_hash = value
        table[name] = {**table[name], "url": str(url), "known_hash": known_hash,
                       "provider": table[name]["provider"] + f" (mirror: {url})"}
    return table


def download(name: str, source: dict, folder: Path) -> Path:
    """Download one source into ``folder`` (the one place :func:`fetch_templates` downloads).

    Parameters
    ----------
    name : str
        Source name (a key of :func:`fetch_sources`); the file is written as ``folder/name``.
    source : dict
        ``{"url": ..., "known_hash": ...}``. ``http(s)://`` URLs go through :func:`pooch.retrieve`;
        ``file://`` URLs and plain paths are copied (local mirrors, tests). ``known_hash`` is
        ``"sha256:..."`` or ``"md5:..."`` (pooch's format) or None.

    Returns
    -------
    Path
        The downloaded file.

    Raises
    ------
    NoInputError
        If the URL cannot be reached or answers with an error.
    DataError
        If the file's hash differs from ``known_hash``.
    """
    import urllib.parse
    import urllib.request

    import pooch

    url, known_hash = source["url"], source.get("known_hash")
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    hint = ("run this command on a machine with internet, or copy a templates folder and pass "
            "--templates-dir")
    parsed = urllib.parse.urlparse(url)
    try:
        if parsed.scheme in ("http", "https", "ftp"):
            pooch.retrieve(url, known_hash=None, fname=target.name, path=target.parent,
                           downloader=pooch.HTTPDownloader(timeout=60) if parsed.scheme != "ftp"
                           else None, progressbar=False)
        elif parsed.scheme in ("file", ""):
            local = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme else url)
            shutil.copyfile(local, target)
        else:
            raise ValueError(f"unsupported URL scheme {parsed.scheme!r}")
    except Exception as err:  # requests, OSError, ValueError: all mean "not fetched"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise NoInputError(f"cannot download {name} from {url} ({reason}); {hint}.") from err
    if known_hash:
        algorithm, _, expected = known_hash.partition(":")
        actual = pooch.file_hash(str(target), alg=algorithm)
        if actual.lower() != expected.lower():
            raise DataError(
                f"{name} downloaded from {url} has {algorithm} {actual}, expected {expected}: "
                f"the file changed at its source or the download is corrupt; {hint}."
            )
    return target


def _read_fetch_description(dest: Path) -> dict | None:
    path = dest / "dataset_description.json"
    try:
        description = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    generated = description.get("GeneratedBy") or [{}]
    if generated[0].get("Name") != FETCH_GENERATOR:
        return None
    return description


def fetch_templates(dest, *, scales=(100, 200, 400), spaces=DEFAULT_FETCH_SPACES,
                    sources=None) -> Path:
    """Fetch the templates and atlases from their official sources into a templates folder.

    The folder has the layout :func:`find_templates_dir` and the atlas readers expect::

        fsaverage5/surf/{lh,rh}.{white,pial,inflated,sphere,sphere.reg}
        fsaverage5/label/{lh,rh}.Schaefer2018_{N}Parcels_7Networks_order.annot
        MNI152NLin6Asym/tpl-MNI152NLin6Asym_res-02_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.nii.gz + .tsv
        fsLR/tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.dlabel.nii + .tsv
        fsLR/tpl-fsLR_den-32k_hemi-{L,R}_midthickness.surf.gii
        fsaverage/bem/fsaverage-5120-5120-5120-bem-sol.fif (+ trans, fiducials, head)
        dataset_description.json, README.md

    * ``fsaverage5``: the CBIG Schaefer 2018 annotations for FreeSurfer's fsaverage5
      (``Parcellations/FreeSurfer5.3/fsaverage5/label``); the surfaces are nilearn's shipped
      fsaverage5 meshes (FreeSurfer fsaverage5, same vertex order; nothing downloaded),
      written with :func:`nibabel.freesurfer.write_geometry`.
    * ``MNI152NLin6Asym``: TemplateFlow's 2 mm Schaefer 2018 volumes and label tables (the
      files ``templateflow.api.get("MNI152NLin6Asym", resolution=2, atlas="Schaefer2018",
      desc="{N}Parcels7Networks", suffix="dseg")`` returns). A table without an ``index``
      column is rewritten with one (index, name, colour as published).
    * ``fsLR``: the CBIG HCP fs_LR 32k Schaefer dlabels (cortex only) placed into the
      91,282-grayordinate structure of HCP Pipelines' ``91282_Greyordinates.dscalar.nii``
      with nibabel: each cortical grayordinate takes the CBIG label of its 32k vertex, the
      subcortical grayordinates take 0; label names and colours are CBIG's. This is what
      ``wb_command -cifti-create-label`` with the HCP medial-wall masks produces. The
      TemplateFlow fsLR 32k midthickness meshes give the parcel centroids.
    * ``fsaverage``: MNE-Python's fsaverage BEM archive (the one
      :func:`mne.datasets.fetch_fsaverage` downloads; MD5 checked), of which the three-layer
      BEM solution, transform, fiducials and head surface are kept.

    Everything is built in a temporary sibling folder under a file lock, checked with the
    package's own readers (:func:`samba_bids.templates.atlases.check_atlas`, the checks of
    :func:`samba_bids.bold.load_bold_atlas`, for every space and scale; the EEG forward's BEM
    finder :func:`samba_bids.templates.locate.find_three_layer_bem`) and renamed to
    ``dest``: a failed fetch leaves no ``dest``. A rerun whose request ``dest`` already
    covers does nothing.

    Parameters
    ----------
    dest : path-like
        Folder to create (must not exist, or be empty).
    scales : sequence of int
        Schaefer 2018 scales (total parcels), each in :data:`SCHAEFER_SCALES`.
    spaces : sequence of str
        Parts to fetch, from :data:`FETCH_SPACES`.
    sources : mapping of str to str or (str, str) | None
        Replacement URLs (a mirror, local files in tests), keyed as :func:`fetch_sources`;
        a value is a URL (``http(s)://``, ``file://`` or a path) or ``(url, known_hash)``.
        Names this fetch does not need are ignored (a mirror table may cover more).

    Returns
    -------
    Path
        ``dest``, resolved.

    Raises
    ------
    UsageError
        If a scale, space or source name is unknown.
    NoInputError
        If a source cannot be downloaded.
    DataError
        If a download has the wrong hash or does not read as the atlas it should be.
    CantCreateError
        If ``dest`` exists with other content or cannot be written.
    """
    from filelock import FileLock

    dest = Path(dest).expanduser().absolute()
    scales = tuple(sorted({int(s) for s in scales}))
    unknown = sorted(set(spaces) - set(FETCH_SPACES))
    spaces = tuple(s for s in FETCH_SPACES if s in set(spaces))
    bad_scales = [s for s in scales if s not in SCHAEFER_SCALES]
    if not scales or bad_scales:
        raise UsageError(f"scales must be among {', '.join(map(str, SCHAEFER_SCALES))}; "
                         f"got {bad_scales or 'none'}.")
    if not spaces or unknown:
        raise UsageError(f"spaces must be among {', '.join(FETCH_SPACES)}; got "
                         f"{', '.join(unknown) or 'none'}.")
    table = _resolve_sources(scales, spaces, sources)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(dest.parent / f".{dest.name}.lock"))
        lock.acquire()
    except OSError as err:
        raise CantCreateError(
            f"Cannot write beside {dest} ({err.strerror or err}); choose a writable folder."
        ) from err
    try:
        if _covers(dest, scales, spaces):
            logger.info("%s already holds %s at scales %s; nothing to fetch.", dest,
                        ", ".join(spaces), ", ".join(map(str, scales)))
            return dest.resolve()
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise CantCreateError(
                f"{dest} exists and is not a templates folder fetched with these scales and "
                "spaces; remove it or fetch into another folder."
            )
        _fetch_into_temporary(dest, scales, spaces, table)
    finally:
        lock.release()
    return dest.resolve()


def _covers(dest: Path, scales, spaces) -> bool:
    """Whether ``dest`` is a fetched folder holding every requested scale and space."""
    description = _read_fetch_description(dest)
    if description is None:
        return False
    have_scales = set(description.get("Scales", ()))
    have_spaces = set(description.get("Spaces", ()))
    files = description.get("Files", {})
    return (set(scales) <= have_scales and set(spaces) <= have_spaces
            and all((dest / f).is_file() for f in files))


def _fetch_into_temporary(dest: Path, scales, spaces, table) -> None:
    import pooch

    from .. import __version__

    t_start = time.perf_counter()
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    except OSError as err:
        raise CantCreateError(
            f"Cannot write the templates beside {dest} ({err.strerror}); choose a writable "
            "folder."
        ) from err
    try:
        downloads = tmp / ".downloads"
        fetched = {}
        for name, source in table.items():
            logger.info("Downloading %s from %s", name, source["url"])
            path = download(name, source, downloads)
            fetched[name] = {"URL": source["url"], "Provider": source["provider"],
                             "SHA256": pooch.file_hash(str(path), alg="sha256")}
        files = {}
        if "fsaverage5" in spaces:
            files.update(_build_fsaverage5(tmp, downloads, scales))
        if "MNI152NLin6Asym" in spaces:
            files.update(_build_mni(tmp, downloads, scales))
        if "fsLR" in spaces:
            files.update(_build_fslr(tmp, downloads, scales))
        if "fsaverage" in spaces:
            files.update(_build_fsaverage_bem(tmp, downloads))
        shutil.rmtree(downloads)
        _verify_fetched(tmp, scales, spaces)
        description = _fetch_description(scales, spaces, fetched, files, __version__)
        (tmp / "README.md").write_text(_fetch_readme(description))
        (tmp / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes 0o700; the folder is shared read-only
        os.replace(tmp, dest)  # atomic; replaces an empty ``dest``
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CantCreateError(
            f"Cannot write the templates into {dest} ({err.strerror or err}); choose a "
            "writable folder."
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Templates (%s; scales %s) written to %s in %.1f s.", ", ".join(spaces),
                ", ".join(map(str, scales)), dest, time.perf_counter() - t_start)


def _build_fsaverage5(tmp: Path, downloads: Path, scales) -> dict:
    """fsaverage5/surf from nilearn, fsaverage5/label from the CBIG annotations."""
    import nibabel as nib

    subject_dir = tmp / "fsaverage5"
    (subject_dir / "surf").mkdir(parents=True)
    (subject_dir / "label").mkdir()
    meshes = nilearn_fsaverage5()
    write_fsaverage5_surfaces(subject_dir / "surf", meshes, "samba-bids-fetch-templates")
    files = {f"fsaverage5/surf/{h}.{s}": "nilearn.datasets.load_fsaverage('fsaverage5') "
             f"'{FALLBACK_SURFACES[s]}' mesh" for h in ("lh", "rh") for s in FALLBACK_SURFACES}
    n_vertices = {"lh": len(meshes["sphere"].parts["left"].coordinates),
                  "rh": len(meshes["sphere"].parts["right"].coordinates)}
    for n in scales:
        for hemi in ("lh", "rh"):
            name = f"fsaverage5/{hemi}.{schaefer_annot_name(n)}.annot"
            labels, _, _ = nib.freesurfer.read_annot(str(downloads / name))
            if len(labels) != n_vertices[hemi]:
                raise DataError(
                    f"{name} has {len(labels)} vertices, fsaverage5 has {n_vertices[hemi]}: "
                    "not an fsaverage5 annotation; check the source URL."
                )
            target = f"fsaverage5/label/{hemi}.{schaefer_annot_name(n)}.annot"
            shutil.copyfile(downloads / name, tmp / target)
            files[target] = name
    return files


def _build_mni(tmp: Path, downloads: Path, scales) -> dict:
    """MNI152NLin6Asym/: TemplateFlow volumes as published, tables with an ``index`` column."""
    folder = tmp / "MNI152NLin6Asym"
    folder.mkdir()
    files = {}
    for n in scales:
        for fname in (volume_atlas_name(n), volume_table_name(n)):
            name = f"MNI152NLin6Asym/{fname}"
            shutil.copyfile(downloads / name, folder / fname)
            files[name] = name
        table_path = folder / volume_table_name(n)
        df = pd.read_csv(table_path, sep="\t")
        if "index" not in df.columns:
            first = df.columns[0]
            if "name" not in df.columns or not str(first).startswith("Unnamed"):
                raise DataError(
                    f"{table_path.name} has columns {list(df.columns)}, not index and name; "
                    "check the source URL."
                )
            df = df.rename(columns={first: "index"})
            df.to_csv(table_path, sep="\t", index=False)
            files[f"MNI152NLin6Asym/{table_path.name}"] += " (index column named)"
    return files


def _build_fslr(tmp: Path, downloads: Path, scales) -> dict:
    """fsLR/: CBIG 32k Schaefer labels placed into HCP's 91k grayordinates; the meshes."""
    import nibabel as nib
    from nibabel.cifti2.cifti2_axes import BrainModelAxis, LabelAxis

    folder = tmp / "fsLR"
    folder.mkdir()
    grid_name = "fsLR/91282_Greyordinates.dscalar.nii"
    grid = load_cifti_header(downloads / grid_name)
    try:
        brain_models = grid.header.get_axis(1)
    except Exception as err:
        raise DataError(f"{grid_name}: no grayordinate axis ({err}); check the source URL.") \
            from err
    if not isinstance(brain_models, BrainModelAxis) or len(brain_models) != 91282:
        raise DataError(f"{grid_name} does not hold the 91,282 fsLR grayordinates; check the "
                        "source URL.")
    files = {}
    for hemi in ("L", "R"):
        fname = FSLR_MIDTHICKNESS.format(hemi=hemi)
        shutil.copyfile(downloads / "fsLR" / fname, folder / fname)
        files[f"fsLR/{fname}"] = f"fsLR/{fname}"
    for n in scales:
        name = f"fsLR/{schaefer_annot_name(n)}.dlabel.nii"
        source_path = downloads / name
        label_axis, source_models = dlabel_axes(load_cifti_header(source_path), source_path)
        source_labels = np.rint(np.asanyarray(nib.load(str(source_path)).dataobj)[0])
        labels = np.zeros(len(brain_models), dtype=np.float32)
        for structure in ("CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT"):
            n_vertices = brain_models.nvertices[structure]
            if source_models.nvertices.get(structure) != n_vertices:
                raise DataError(
                    f"{name}: {structure} has {source_models.nvertices.get(structure)} "
                    f"vertices, the 91k grayordinates {n_vertices}; not an fs_LR 32k file."
                )
            per_vertex = np.zeros(n_vertices)
            rows = source_models.name == structure
            per_vertex[source_models.vertex[rows]] = source_labels[rows]
            rows = brain_models.name == structure
            labels[rows] = per_vertex[brain_models.vertex[rows]]
        names = dlabel_names(label_axis, source_path)
        present = np.unique(labels[labels > 0]).astype(int)
        if len(names) != n or len(present) != n:
            raise DataError(
                f"{name} names {len(names)} parcels and {len(present)} of them lie on the 91k "
                f"cortex, expected {n}; check the source URL."
            )
        out_axis = LabelAxis([f"Schaefer2018_{n}Parcels_7Networks"], [label_axis.label[0]])
        header = nib.Cifti2Header.from_axes((out_axis, brain_models))
        img = nib.Cifti2Image(labels[None, :], header)
        img.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_LABELS")
        target = f"fsLR/{cifti_dlabel_name(n)}"
        img.to_filename(str(tmp / target))
        files[target] = f"{name} on the grayordinates of {grid_name}"
        pd.DataFrame({"index": np.arange(1, n + 1), "name": names}).to_csv(
            folder / fslr_table_name(n), sep="\t", index=False)
        files[f"fsLR/{fslr_table_name(n)}"] = f"label table of {name}"
    return files


def _build_fsaverage_bem(tmp: Path, downloads: Path) -> dict:
    """fsaverage/bem/ from MNE's fsaverage BEM archive."""
    import zipfile

    name = "fsaverage/MNE-fsaverage-bem.zip"
    folder = tmp / "fsaverage"
    try:
        with zipfile.ZipFile(downloads / name) as archive:
            members = set(archive.namelist())
            missing = [m for m in _MNE_BEM_FILES if m not in members]
            if missing:
                raise DataError(f"{name} lacks {', '.join(missing)}; check the source URL.")
            for member in _MNE_BEM_FILES:
                archive.extract(member, folder)
    except zipfile.BadZipFile as err:
        raise DataError(f"{name} is not a zip archive ({err}); check the source URL.") from err
    return {f"fsaverage/{m}": f"{name}:{m}" for m in _MNE_BEM_FILES}


def _verify_fetched(folder: Path, scales, spaces) -> None:
    """Read every fetched atlas with the package's own readers (raises on failure)."""
    for space in ("fsaverage5", "MNI152NLin6Asym", "fsLR"):
        if space not in spaces:
            continue
        for n in scales:
            try:
                names = check_atlas(folder, space, n)
            except (NoInputError, DataError) as err:
                raise DataError(f"The fetched {space} Schaefer-{n} atlas does not load: {err}") \
                    from err
            logger.info("Checked %s Schaefer-%d: %d parcels.", space, n, len(names))
    if "fsaverage" in spaces and find_three_layer_bem(folder, "fsaverage5") is None:
        raise DataError("The fetched fsaverage/bem holds no three-layer BEM solution; "
                        "check the source URL.")


def _fetch_description(scales, spaces, fetched, files, version) -> dict:
    import mne
    import nibabel as nib
    import nilearn

    return {
        "Name": "samba-bids templates (Schaefer 2018 atlases, fsaverage5, fsLR 91k, "
                "MNI152NLin6Asym)",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": FETCH_GENERATOR, "Version": version,
                         "Description": "samba_bids.templates.fetch_templates"}],
        "License": "Schaefer 2018 parcellations: MIT (CBIG); TemplateFlow and HCP Pipelines "
                   "files under their own licences; FreeSurfer fsaverage under the FreeSurfer "
                   "licence.",
        "ReferencesAndLinks": [
            "Schaefer A, et al. (2018). Local-Global parcellation of the human cerebral cortex "
            "from intrinsic functional connectivity MRI. Cerebral Cortex 28(9):3095-3114.",
            "Ciric R, et al. (2022). TemplateFlow: FAIR-sharing of multi-scale, multi-species "
            "brain models. Nature Methods 19:1568-1571.",
        ],
        "Scales": list(scales),
        "Spaces": list(spaces),
        "Software": {"nibabel": nib.__version__, "nilearn": nilearn.__version__,
                     "mne": mne.__version__},
        "Downloads": fetched,
        "Files": files,
    }


def _fetch_readme(description: dict) -> str:
    lines = [
        "# samba-bids templates",
        "",
        f"Written by `{FETCH_GENERATOR}` (samba-bids "
        f"{description['GeneratedBy'][0]['Version']}); pass this folder as `--templates-dir` "
        "or set `SAMBA_TEMPLATES`.",
        "",
        f"Scales: {', '.join(map(str, description['Scales']))}. "
        f"Spaces: {', '.join(description['Spaces'])}.",
        "",
        "## Where each file came from",
        "",
        "| file | from |",
        "| --- | --- |",
    ]
    for fname, origin in sorted(description["Files"].items()):
        download = description["Downloads"].get(origin.split(" ")[0].split(":")[0])
        where = f"{download['URL']} (SHA256 {download['SHA256'][:12]}...)" if download else origin
        lines.append(f"| `{fname}` | {where}{'' if download is None else _note(origin)} |")
    lines += [
        "",
        "fsaverage5 surfaces: nilearn's shipped fsaverage5 meshes (FreeSurfer fsaverage5), "
        "`sphere.reg` = `sphere`. fsLR 91k dlabels: the CBIG fs_LR 32k labels placed into the "
        "grayordinates of HCP Pipelines' `91282_Greyordinates.dscalar.nii` (subcortex 0).",
        "",
    ]
    return "\n".join(lines)


def _note(origin: str) -> str:
    parts = origin.split(" ", 1)
    return f"; {parts[1]}" if len(parts) > 1 else ""
