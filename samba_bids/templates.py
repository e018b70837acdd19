"""Locate templates and atlases in the offline templates folder.

Layout (the same as ``../shared/data/templates`` and what ``--templates-dir`` expects)::

    fsaverage5/ (and/or fsaverage/)   FreeSurfer subject: surf/, label/{lh,rh}.Schaefer2018_*.annot
    MNI152NLin6Asym/                  tpl-MNI152NLin6Asym_res-02_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.nii.gz + .tsv
    fsLR/                             tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.dlabel.nii + .tsv
                                      (optional: tpl-fsLR_den-32k_hemi-{L,R}_midthickness.surf.gii)

Parcels are numbered 1..N in the Schaefer 2018 order (left hemisphere 1..N/2, right N/2+1..N);
0 is background or the medial wall. Nothing is downloaded here.

Where no templates folder exists, the simulator and the demo (never the main ``samba-bids``
command) use an offline *fallback* (:func:`build_fallback_templates`): fsaverage5 surfaces from
nilearn and a k-means parcellation of the sphere written under the Schaefer file names. It is
not the Schaefer atlas, and it has no MNI152NLin6Asym folder.
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

from .errors import CantCreateError, DataError, NoInputError, UsageError

logger = logging.getLogger(__name__)

#: Surface spaces read from a FreeSurfer subject folder of the same name.
SURFACE_SPACES = ("fsaverage5", "fsaverage6", "fsaverage")
VOLUME_SPACES = ("MNI152NLin6Asym",)
#: Grayordinate (CIFTI) spaces: fsLR 91k (32k vertices per hemisphere + 2 mm subcortex).
CIFTI_SPACES = ("fsLR",)
#: fsLR 32k midthickness meshes (TemplateFlow names) in ``fsLR/``, used for parcel centroids
#: when present; ``{hemi}`` is ``L`` or ``R``.
FSLR_MIDTHICKNESS = "tpl-fsLR_den-32k_hemi-{hemi}_midthickness.surf.gii"
_MEDIAL_WALL = "Background+FreeSurfer_Defined_Medial_Wall"

#: File at the root of a fallback templates folder that describes it (written last).
FALLBACK_DESCRIPTION = "samba_fallback_templates.json"
#: Parcel groups ("networks") of the fallback parcellation, the same in both hemispheres.
FALLBACK_N_GROUPS = 7
#: Surfaces of the fallback fsaverage5 subject: FreeSurfer name -> nilearn mesh name.
FALLBACK_SURFACES = {"white": "white_matter", "pial": "pial", "inflated": "inflated",
                     "sphere": "sphere", "sphere.reg": "sphere"}


def _default_candidates() -> list[Path]:
    candidates = []
    if os.environ.get("SAMBA_TEMPLATES"):
        candidates.append(Path(os.environ["SAMBA_TEMPLATES"]).expanduser())
    candidates.append(_cache_dir() / "templates")
    return candidates


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "samba-bids"


def fallback_templates_path() -> Path:
    """Folder where :func:`find_templates_dir` keeps the offline fallback.

    ``$SAMBA_TEMPLATES_FALLBACK`` when set, else ``<user cache>/samba-bids/templates-fallback``
    (user cache: ``$XDG_CACHE_HOME``, else ``~/.cache``). It may not exist yet.
    """
    if os.environ.get("SAMBA_TEMPLATES_FALLBACK"):
        return Path(os.environ["SAMBA_TEMPLATES_FALLBACK"]).expanduser()
    return _cache_dir() / "templates-fallback"


def is_fallback_templates(templates_dir) -> bool:
    """Whether ``templates_dir`` was written by :func:`build_fallback_templates`."""
    return (Path(templates_dir) / FALLBACK_DESCRIPTION).is_file()


def find_templates_dir(templates_dir=None, *, fallback: bool = False) -> Path:
    """Return the templates folder: the argument, else ``$SAMBA_TEMPLATES``, else the cache.

    Parameters
    ----------
    templates_dir : path-like | None
        Folder given on the command line (``--templates-dir``). A folder given here must
        exist: it is never replaced by the fallback.
    fallback : bool
        When ``templates_dir`` is None and neither ``$SAMBA_TEMPLATES`` nor the cache holds a
        folder, return the offline fallback (:func:`build_fallback_templates`, built once into
        :func:`fallback_templates_path`, under a file lock) and log a WARNING that its parcels
        are not Schaefer's. For the simulator and the demo only: a real analysis must not run
        on sphere parcels.

    Returns
    -------
    Path
        An existing folder.

    Raises
    ------
    NoInputError
        If no candidate folder exists (and ``fallback`` is False or ``templates_dir`` was
        given).
    CantCreateError
        If the fallback cannot be written.
    """
    if templates_dir is not None:
        candidates = [Path(templates_dir).expanduser()]
    else:
        candidates = _default_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    if fallback and templates_dir is None:
        path = _ensure_fallback(fallback_templates_path())
        logger.warning(
            "No templates folder found (looked in %s); using the offline fallback %s built from "
            "nilearn's fsaverage5 and MNE's fsaverage head model. Its parcels are a k-means "
            "parcellation of the sphere written under the Schaefer 2018 file names, NOT the "
            "Schaefer atlas, and it has no MNI152NLin6Asym atlas: fine for simulations and "
            "tests only. Pass --templates-dir PATH for the real atlases.",
            ", ".join(map(str, candidates)), path,
        )
        return path
    raise NoInputError(
        f"No templates folder found (looked in {', '.join(map(str, candidates))}); "
        "pass --templates-dir PATH or set SAMBA_TEMPLATES."
    )


def _ensure_fallback(dest: Path) -> Path:
    """Build the fallback into ``dest`` unless it is there; one process at a time."""
    from filelock import FileLock

    if is_fallback_templates(dest):
        return dest.resolve()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CantCreateError(
            f"Cannot create {dest.parent} for the fallback templates ({err.strerror}); set "
            "SAMBA_TEMPLATES_FALLBACK to a writable folder or pass --templates-dir."
        ) from err
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if not is_fallback_templates(dest):  # another process may have built it meanwhile
            build_fallback_templates(dest, scales=(100, 200, 400))
    return dest.resolve()


def schaefer_annot_name(n_parcels: int) -> str:
    """FreeSurfer annotation name of Schaefer 2018, 7 networks, ``n_parcels`` parcels."""
    return f"Schaefer2018_{n_parcels}Parcels_7Networks_order"


def surface_subject_dir(templates_dir, subject="fsaverage5") -> Path:
    """Folder of a FreeSurfer template subject, e.g. ``templates/fsaverage5``.

    Raises
    ------
    NoInputError
        If the folder or its ``surf/`` is missing.
    """
    path = Path(templates_dir) / subject
    if not (path / "surf").is_dir():
        raise NoInputError(
            f"{path}/surf is missing from the templates folder; fetch the {subject} "
            "template into --templates-dir."
        )
    return path


def surface_atlas(templates_dir, subject="fsaverage5", n_parcels=200):
    """Schaefer 2018 parcel index per vertex on a FreeSurfer template surface.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    subject : str
        ``fsaverage5``, ``fsaverage6`` or ``fsaverage``.
    n_parcels : int
        100, 200 or 400.

    Returns
    -------
    labels : dict of {'lh', 'rh'} to ndarray of int, shape (n_vertices,)
        Parcel index per vertex, 1..n_parcels in Schaefer order, 0 for the medial wall.
    names : list of str, length n_parcels
        Parcel names as in the atlas (e.g. ``7Networks_LH_Vis_1``), in index order.

    Raises
    ------
    NoInputError
        If an annotation file is missing.
    """
    import nibabel as nib

    subject_dir = surface_subject_dir(templates_dir, subject)
    annot = schaefer_annot_name(n_parcels)
    labels, names = {}, []
    offset = 0
    for hemi in ("lh", "rh"):
        fname = subject_dir / "label" / f"{hemi}.{annot}.annot"
        if not fname.is_file():
            raise NoInputError(
                f"{fname} is missing from the templates folder; fetch the templates again "
                f"(samba-bids-fetch-templates) or add the Schaefer 2018 {n_parcels}-parcel "
                "annotation, or choose another --bold-atlas-scale / --ephys-atlas-scale."
            )
        vertex_label, _, label_names = nib.freesurfer.read_annot(str(fname))
        label_names = [n.decode() if isinstance(n, bytes) else str(n) for n in label_names]
        keep = [i for i, n in enumerate(label_names) if n != _MEDIAL_WALL and "Unknown" not in n]
        lut = np.zeros(len(label_names) + 1, dtype=int)  # -1 (unlabelled) maps to lut[-1] = 0
        for new, old in enumerate(keep, start=1):
            lut[old] = new + offset
        labels[hemi] = lut[vertex_label]
        names.extend(label_names[i] for i in keep)
        offset += len(keep)
    if len(names) != n_parcels:
        raise NoInputError(
            f"{subject_dir / 'label'}: expected {n_parcels} parcels in {annot}, found {len(names)}."
        )
    return labels, names


def volume_atlas(templates_dir, space="MNI152NLin6Asym", n_parcels=200, res="02"):
    """Schaefer 2018 volume atlas in a template space.

    Returns
    -------
    image_path : Path
        ``tpl-..._res-02_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.nii.gz``; values
        1..n_parcels, 0 background.
    names : list of str, length n_parcels
        Parcel names in index order, from the atlas ``.tsv``.

    Raises
    ------
    NoInputError
        If the image or its table is missing.
    """
    folder = Path(templates_dir) / space
    stem = f"tpl-{space}_res-{res}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.nii.gz"
    image = folder / stem
    table = folder / f"tpl-{space}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.tsv"
    for fname in (image, table):
        if not fname.is_file():
            raise NoInputError(
                f"{fname} is missing from the templates folder; fetch the Schaefer 2018 "
                f"{n_parcels}-parcel atlas for {space} into --templates-dir."
            )
    df = pd.read_csv(table, sep="\t").sort_values("index")
    return image, [str(n) for n in df["name"]]


def surface_parcel_centroids(templates_dir, subject, labels, surface="white"):
    """Centroid of each parcel on a template surface, in mm (FreeSurfer surface RAS).

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    subject : str
        Template subject, e.g. ``fsaverage5``.
    labels : dict of {'lh', 'rh'} to ndarray of int, shape (n_vertices,)
        Parcel index per vertex as returned by :func:`surface_atlas` (0 = none).
    surface : str
        Surface whose vertex coordinates are averaged.

    Returns
    -------
    ndarray, shape (n_parcels, 3)
        Mean vertex position of parcels 1..n_parcels, in mm. fsaverage coordinates are
        MNI305, within a few mm of MNI152 (close enough for nearest-neighbour graphs).
    """
    import nibabel as nib

    subject_dir = surface_subject_dir(templates_dir, subject)
    n_parcels = max(int(labels[h].max()) for h in ("lh", "rh"))
    sums = np.zeros((n_parcels + 1, 3))
    counts = np.zeros(n_parcels + 1)
    for hemi in ("lh", "rh"):
        coords, _ = nib.freesurfer.read_geometry(str(subject_dir / "surf" / f"{hemi}.{surface}"))
        np.add.at(sums, labels[hemi], coords)
        counts += np.bincount(labels[hemi], minlength=n_parcels + 1)
    return sums[1:] / np.maximum(counts[1:], 1)[:, None]


# --------------------------------------------------------------------------------------------
# fsLR 91k grayordinates (CIFTI)


def _cifti_dlabel_name(n_parcels: int) -> str:
    return f"tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.dlabel.nii"


def _refetch(path: Path) -> str:
    return (f"re-fetch {path.name} into the fsLR/ folder of --templates-dir (or re-generate it "
            "with wb_command -cifti-label-import)")


def _load_cifti_header(path: Path):
    """``nib.load`` of a CIFTI file (header only; the data block is not read)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for unreadable headers
        raise DataError(
            f"{path.name} is not a readable CIFTI-2 file ({type(err).__name__}: {err}); "
            f"{_refetch(path)}."
        ) from err
    if not isinstance(img, nib.Cifti2Image):
        raise DataError(f"{path.name} is not a CIFTI-2 image; {_refetch(path)}.")
    return img


def _dlabel_axes(img, path: Path):
    """(LabelAxis, BrainModelAxis) of a dlabel image, checked."""
    from nibabel.cifti2.cifti2_axes import BrainModelAxis, LabelAxis

    try:
        axes = [img.header.get_axis(i) for i in range(img.ndim)]
    except Exception as err:
        raise DataError(
            f"{path.name}: its CIFTI-2 header has no valid index maps ({err}); {_refetch(path)}."
        ) from err
    if len(axes) != 2 or not isinstance(axes[0], LabelAxis) or not isinstance(
        axes[1], BrainModelAxis
    ):
        kinds = " x ".join(type(a).__name__ for a in axes)
        raise DataError(
            f"{path.name} is a {kinds} CIFTI file, not a dense label file (LabelAxis x "
            f"BrainModelAxis, .dlabel.nii); {_refetch(path)}."
        )
    return axes[0], axes[1]


def _dlabel_names(label_axis, path: Path) -> list[str]:
    """Names of keys 1..N of the first map's label table (key 0 is 'no parcel')."""
    table = label_axis.label[0]
    keys = sorted(int(k) for k in table if int(k) != 0)
    if keys and keys != list(range(1, len(keys) + 1)):
        raise DataError(
            f"{path.name}: label keys are {keys[:3]}...{keys[-1]}, not 1..{len(keys)}; "
            f"{_refetch(path)}."
        )
    return [str(table[k][0]) for k in keys]


def cifti_atlas(templates_dir, n_parcels: int = 200):
    """Schaefer 2018 (7 networks) as an fsLR 91k grayordinate dlabel.

    Only the header is read (the names); :func:`read_cifti_labels` reads the labels.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    n_parcels : int
        100, 200 or 400.

    Returns
    -------
    dlabel_path : Path
        ``fsLR/tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.dlabel.nii``;
        labels 1..n_parcels in Schaefer order on cortical grayordinates, 0 elsewhere.
    names : list of str, length n_parcels
        Parcel names in index order (e.g. ``7Networks_LH_Vis_1``), from the dlabel's label
        table; from the ``tpl-fsLR_atlas-Schaefer2018_desc-{N}Parcels7Networks_dseg.tsv``
        beside it when the table holds key 0 only.

    Raises
    ------
    NoInputError
        If the dlabel is missing from the templates folder.
    DataError
        If its header is unreadable, it is not a dense label file, or it does not name
        ``n_parcels`` parcels.
    """
    folder = Path(templates_dir) / "fsLR"
    path = folder / _cifti_dlabel_name(n_parcels)
    if not path.is_file():
        raise NoInputError(
            f"{path} is missing from the templates folder; fetch the Schaefer 2018 "
            f"{n_parcels}-parcel fsLR 91k dlabel into --templates-dir (or choose another "
            "--bold-atlas-scale)."
        )
    label_axis, _ = _dlabel_axes(_load_cifti_header(path), path)
    names = _dlabel_names(label_axis, path)
    table = folder / f"tpl-fsLR_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.tsv"
    if not names and table.is_file():
        df = pd.read_csv(table, sep="\t").sort_values("index")
        names = [str(n) for n in df["name"]]
    if len(names) != n_parcels:
        raise DataError(
            f"{path.name} names {len(names)} parcels, expected {n_parcels}; {_refetch(path)}."
        )
    return path, names


def read_cifti_labels(path):
    """Read the labels of a dense label file (``.dlabel.nii``), first map only.

    Parameters
    ----------
    path : path-like
        The dlabel file.

    Returns
    -------
    labels : ndarray of int64, shape (n_grayordinates,)
        Label key per grayordinate (0 = no label).
    names : list of str
        Names of keys 1..N of the label table, in key order.
    brain_models : nibabel.cifti2.cifti2_axes.BrainModelAxis
        The grayordinates (structures, vertex and voxel indices, the volume affine in mm).

    Raises
    ------
    NoInputError
        If the file does not exist.
    DataError
        If the file is unreadable, truncated (header present, data block short or absent),
        not a dense label file, or holds values that are not keys of its label table.
    """
    path = Path(path)
    if not path.is_file():
        raise NoInputError(f"{path} does not exist; fetch the atlas into --templates-dir.")
    img = _load_cifti_header(path)
    label_axis, brain_models = _dlabel_axes(img, path)
    names = _dlabel_names(label_axis, path)
    try:
        raw = np.asanyarray(img.dataobj)[0]
    except (OSError, EOFError, ValueError) as err:
        raise DataError(
            f"{path.name} is truncated or corrupt: its header reads but its data block does not "
            f"({type(err).__name__}: {str(err).splitlines()[0]}); {_refetch(path)}."
        ) from err
    labels = np.rint(raw).astype(np.int64)
    if not np.array_equal(labels, raw) or labels.min() < 0 or labels.max() > len(names):
        raise DataError(
            f"{path.name} holds values outside the keys 0..{len(names)} of its label table; "
            f"{_refetch(path)}."
        )
    return labels, names, brain_models


def _grayordinate_voxel_mm(brain_models) -> np.ndarray:
    """(n_grayordinates, 3) mm position of voxel grayordinates (NaN for vertices)."""
    import nibabel as nib

    coords = np.full((len(brain_models), 3), np.nan)
    voxels = brain_models.volume_mask
    if voxels.any():
        coords[voxels] = nib.affines.apply_affine(brain_models.affine,
                                                  brain_models.voxel[voxels])
    return coords


def _fslr_mesh_coords(folder: Path, brain_models):
    """Grayordinate mm positions from the fsLR 32k midthickness meshes; None if absent."""
    import nibabel as nib

    meshes = {h: folder / FSLR_MIDTHICKNESS.format(hemi=h) for h in ("L", "R")}
    if not all(p.is_file() for p in meshes.values()):
        return None, ()
    coords = _grayordinate_voxel_mm(brain_models)
    for hemi, structure in (("L", "CIFTI_STRUCTURE_CORTEX_LEFT"),
                            ("R", "CIFTI_STRUCTURE_CORTEX_RIGHT")):
        points = nib.load(str(meshes[hemi])).agg_data("NIFTI_INTENT_POINTSET")
        expected = brain_models.nvertices.get(structure)
        if points is None or expected is None or len(points) != expected:
            raise DataError(
                f"{meshes[hemi].name} has {0 if points is None else len(points)} vertices but "
                f"the dlabel's {structure} has {expected}; fetch the 32k (den-32k) meshes."
            )
        rows = brain_models.name == structure
        coords[rows] = points[brain_models.vertex[rows]]
    return coords, tuple(meshes.values())


def cifti_parcel_centroids(templates_dir, labels, brain_models, names):
    """Centroid of each parcel of an fsLR 91k label array, in mm.

    Voxel grayordinates are placed through the volume affine of ``brain_models`` (MNI152,
    mm). Cortical grayordinates carry only fsLR 32k vertex indices, so their positions come
    from, in order:

    1. the fsLR 32k midthickness meshes ``fsLR/tpl-fsLR_den-32k_hemi-{L,R}_midthickness.surf.gii``
       (TemplateFlow names; HCP S1200 average, MNI152 mm) when both are in the templates
       folder: each parcel's centroid is the mean position of its grayordinates;
    2. otherwise (neither nilearn nor MNE ships an fsLR mesh), the centroid of the parcel of
       the **same name** in the Schaefer annotation of the first FreeSurfer template subject
       present (:data:`SURFACE_SPACES`: fsaverage5 first) at the same scale: the mean white-
       surface vertex position on fsaverage (MNI305 mm, :func:`surface_parcel_centroids`).
       fsaverage white and fsLR midthickness positions of a Schaefer parcel differ by a few
       mm, which does not change nearest-neighbour graphs of 100-400 parcels. A parcel that
       also has voxel grayordinates gets the count-weighted mean of both.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    labels : ndarray of int, shape (n_grayordinates,)
        Parcel index per grayordinate, 1..len(names), 0 = none (:func:`read_cifti_labels`).
    brain_models : nibabel.cifti2.cifti2_axes.BrainModelAxis
        The grayordinates of ``labels``.
    names : list of str
        Parcel names in index order (Schaefer names for the fallback).

    Returns
    -------
    centroids : ndarray of float64, shape (n_parcels, 3)
        Parcel centroids in mm.
    files : tuple of Path
        The meshes or annotations read (for the ``Sources`` of sidecars).

    Raises
    ------
    NoInputError
        If cortical parcels need the fallback and no template subject has annotations whose
        parcel names cover them.
    DataError
        If the fsLR meshes do not have the dlabel's vertex counts.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_parcels = len(names)
    folder = Path(templates_dir) / "fsLR"
    coords, files = _fslr_mesh_coords(folder, brain_models)
    if coords is not None:
        keep = labels > 0
        counts = np.bincount(labels[keep], minlength=n_parcels + 1)[1:]
        sums = np.stack([np.bincount(labels[keep], weights=coords[keep, a],
                                     minlength=n_parcels + 1)[1:] for a in range(3)], axis=1)
        logger.info("fsLR parcel centroids from %s.", ", ".join(p.name for p in files))
        return sums / np.maximum(counts, 1)[:, None], files

    voxel_mm = _grayordinate_voxel_mm(brain_models)
    is_voxel = brain_models.volume_mask
    vox = is_voxel & (labels > 0)
    vox_counts = np.bincount(labels[vox], minlength=n_parcels + 1)[1:]
    vox_sums = np.stack([np.bincount(labels[vox], weights=voxel_mm[vox, a],
                                     minlength=n_parcels + 1)[1:] for a in range(3)], axis=1)
    srf = ~is_voxel & (labels > 0)
    srf_counts = np.bincount(labels[srf], minlength=n_parcels + 1)[1:].astype(np.float64)
    srf_centroids = np.zeros((n_parcels, 3))
    cortical = np.flatnonzero(srf_counts > 0)
    if cortical.size:
        surface_centroids, files = _named_surface_centroids(templates_dir, names, cortical)
        srf_centroids[cortical] = surface_centroids
    total = vox_counts + srf_counts
    centroids = (vox_sums + srf_centroids * srf_counts[:, None]) / np.maximum(total, 1)[:, None]
    return centroids, files


def _named_surface_centroids(templates_dir, names, wanted):
    """Centroids of parcels ``wanted`` (0-based) from the same-named parcels of a surface atlas."""
    n_parcels = len(names)
    tried = []
    for subject in SURFACE_SPACES:
        label_dir = Path(templates_dir) / subject / "label"
        annot = schaefer_annot_name(n_parcels)
        annots = tuple(label_dir / f"{h}.{annot}.annot" for h in ("lh", "rh"))
        if not all(p.is_file() for p in annots):
            tried.append(str(label_dir / f"{{lh,rh}}.{annot}.annot"))
            continue
        surf_labels, surf_names = surface_atlas(templates_dir, subject, n_parcels)
        index = {name: k for k, name in enumerate(surf_names)}
        missing = [names[k] for k in wanted if names[k] not in index]
        if missing:
            tried.append(f"{label_dir} (lacks {missing[:3]})")
            continue
        all_centroids = surface_parcel_centroids(templates_dir, subject, surf_labels)
        logger.info(
            "No fsLR 32k meshes in %s; fsLR cortical parcel centroids are those of the "
            "same-named Schaefer parcels on %s (white surface, mm).",
            Path(templates_dir) / "fsLR", subject,
        )
        return all_centroids[[index[names[k]] for k in wanted]], annots
    raise NoInputError(
        "Cannot place the fsLR parcels in mm: no fsLR 32k meshes ("
        f"{Path(templates_dir) / 'fsLR' / FSLR_MIDTHICKNESS.format(hemi='{L,R}')}) and no "
        f"Schaefer {n_parcels}-parcel annotation with the same parcel names "
        f"(tried {'; '.join(tried)}); add either to --templates-dir."
    )


# --------------------------------------------------------------------------------------------
# Offline fallback: nilearn's fsaverage5 and a parcellation of the sphere


def build_fallback_templates(dest, scales=(100, 200)) -> Path:
    """Write an offline templates folder from what nilearn and MNE ship (no download).

    The folder has the ``fsaverage5`` part of the templates layout, so every reader works
    unchanged, but its parcels are **not** Schaefer 2018: they are made for simulations and
    tests. Written in a temporary sibling folder, then renamed to ``dest``::

        fsaverage5/surf/{lh,rh}.{white,pial,inflated,sphere,sphere.reg}
        fsaverage5/label/{lh,rh}.Schaefer2018_<N>Parcels_7Networks_order.annot
        README.md, samba_fallback_templates.json

    * Surfaces: nilearn's fsaverage5 meshes (:func:`nilearn.datasets.load_fsaverage`, shipped
      with nilearn; 10,242 vertices per hemisphere, mm), written with
      :func:`nibabel.freesurfer.write_geometry`. ``sphere.reg`` is the sphere, as on fsaverage.
    * Medial wall: the largest connected set of vertices absent from nilearn's flat patch
      (the cut-out medial wall, ~700-760 vertices per hemisphere; Schaefer's is ~870); if the
      flat patch is unavailable every vertex is parcellated.
    * Parcels: per hemisphere, spherical k-means of the cortical sphere vertices into N/2
      parcels (farthest-point seeds from the first cortical vertex, Lloyd iterations to
      convergence: deterministic, no random numbers); a piece of a parcel cut off by the
      medial wall joins the neighbouring parcel it touches most, so parcels are connected on
      the mesh. Index 0 is the medial wall, named
      ``Background+FreeSurfer_Defined_Medial_Wall`` as in the CBIG annotations.
    * Groups: the parcels of both hemispheres (white-surface centroids, left x mirrored) are
      clustered by k-means into :data:`FALLBACK_N_GROUPS` groups, ordered posterior to
      anterior, each present in both hemispheres; parcels are named
      ``7Networks_{LH,RH}_Sphere<g>_<k>`` and ordered by group, then posterior to anterior,
      so :func:`samba_bids.simulate.network_groups` finds the groups.
    * Head model: nothing is copied. :func:`samba_bids.ephys.source.make_template_forward`
      reads MNE's shipped ``mne/data/fsaverage/`` files (head surface, inner-skull BEM
      surface, head<->MRI transform) in place; there is no three-layer BEM here, so EEG uses
      the sphere model fitted to the head.
    * No ``MNI152NLin6Asym`` volume atlas and no ``fsLR``.

    Parameters
    ----------
    dest : path-like
        Folder to create; it must not exist or be empty.
    scales : sequence of int
        Total parcel counts (both hemispheres) to write, each even and at least
        ``2 * FALLBACK_N_GROUPS``; the readers expect 100, 200 or 400.

    Returns
    -------
    Path
        ``dest``, resolved.

    Raises
    ------
    UsageError
        If a scale is odd or too small.
    CantCreateError
        If ``dest`` exists and is not empty, or cannot be written.
    NoInputError
        If the installed nilearn does not ship fsaverage5 (:func:`load_fsaverage` needs
        nilearn 0.11 or later).
    """
    from . import __version__

    dest = Path(dest).expanduser()
    scales = tuple(int(s) for s in scales)
    bad = [s for s in scales if s % 2 or s < 2 * FALLBACK_N_GROUPS]
    if bad or not scales:
        raise UsageError(
            f"scales must be even parcel counts of at least {2 * FALLBACK_N_GROUPS} "
            f"(e.g. 100, 200, 400), got {scales}."
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CantCreateError(
            f"{dest} exists and is not an empty folder; remove it or choose another place for "
            "the fallback templates."
        )
    t_start = time.perf_counter()
    meshes = _nilearn_fsaverage5()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    except OSError as err:
        raise CantCreateError(
            f"Cannot write the fallback templates beside {dest} ({err.strerror}); choose a "
            "writable folder."
        ) from err
    try:
        subject_dir = tmp / "fsaverage5"
        (subject_dir / "surf").mkdir(parents=True)
        (subject_dir / "label").mkdir()
        _write_fsaverage5_surfaces(subject_dir / "surf", meshes, "samba-bids fallback")
        cortex = {}
        for hemi, part in (("lh", "left"), ("rh", "right")):
            faces = np.asarray(meshes["sphere"].parts[part].faces)
            n_vertices = len(meshes["sphere"].parts[part].coordinates)
            flat = meshes.get("flat")
            flat_faces = None if flat is None else np.asarray(flat.parts[part].faces)
            cortex[hemi] = ~_medial_wall(faces, flat_faces, n_vertices)
        medial_wall_found = not all(c.all() for c in cortex.values())
        if not medial_wall_found:
            logger.warning("nilearn's flat patch is unavailable: the fallback parcellation "
                           "covers every vertex (no medial wall).")
        summary = {}
        for scale in scales:
            summary[str(scale)] = _write_sphere_annotations(
                subject_dir / "label", scale, meshes, cortex)
        description = _fallback_description(scales, cortex, medial_wall_found, summary,
                                            __version__)
        (tmp / "README.md").write_text(_fallback_readme(description))
        # written last: its presence marks a complete folder
        (tmp / FALLBACK_DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
        os.replace(tmp, dest)  # atomic; replaces an empty ``dest``
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CantCreateError(
            f"Cannot write the fallback templates into {dest} ({err.strerror}); choose a "
            "writable folder."
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Fallback templates (scales %s) written to %s in %.1f s.",
                ", ".join(map(str, scales)), dest, time.perf_counter() - t_start)
    return dest.resolve()


def _write_fsaverage5_surfaces(surf_dir: Path, meshes: dict, stamp: str) -> None:
    """Write nilearn's fsaverage5 meshes as FreeSurfer surfaces (:data:`FALLBACK_SURFACES`)."""
    import nibabel as nib

    for fs_name, nilearn_name in FALLBACK_SURFACES.items():
        for hemi, part in (("lh", "left"), ("rh", "right")):
            mesh = meshes[nilearn_name].parts[part]
            nib.freesurfer.write_geometry(
                str(surf_dir / f"{hemi}.{fs_name}"),
                np.asarray(mesh.coordinates, dtype=float),
                np.asarray(mesh.faces, dtype=np.int32),
                create_stamp=f"{stamp}: nilearn fsaverage5 {nilearn_name}",
            )


def _nilearn_fsaverage5():
    """nilearn's shipped fsaverage5 meshes: dict of name -> PolyMesh (left/right parts)."""
    from nilearn import datasets

    if not hasattr(datasets, "load_fsaverage"):
        raise NoInputError(
            "The fallback templates need nilearn.datasets.load_fsaverage (nilearn 0.11 or "
            "later); upgrade nilearn or pass --templates-dir PATH."
        )
    bunch = datasets.load_fsaverage("fsaverage5")
    return {k: v for k, v in bunch.items() if k != "description"}


def _vertex_adjacency(faces: np.ndarray, n_vertices: int):
    from scipy import sparse

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = sparse.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices)
    ).tocsr()
    return adjacency + adjacency.T


def _medial_wall(faces: np.ndarray, flat_faces, n_vertices: int) -> np.ndarray:
    """Medial wall mask: largest connected set of vertices absent from the flat patch.

    Parameters
    ----------
    faces : ndarray of int, shape (n_faces, 3)
        Triangles of the closed surface.
    flat_faces : ndarray of int, shape (n_flat_faces, 3) | None
        Triangles of the flattened patch (the medial wall cut out; a few isolated vertices
        along the relaxation cuts are missing too). None: no medial wall.
    n_vertices : int
        Vertices of the surface.

    Returns
    -------
    ndarray of bool, shape (n_vertices,)
    """
    from scipy.sparse.csgraph import connected_components

    wall = np.zeros(n_vertices, dtype=bool)
    if flat_faces is None or len(flat_faces) == 0:
        return wall
    outside = np.ones(n_vertices, dtype=bool)
    outside[np.unique(flat_faces)] = False
    index = np.flatnonzero(outside)
    if len(index) == 0:
        return wall
    adjacency = _vertex_adjacency(faces, n_vertices)[index][:, index]
    _, component = connected_components(adjacency, directed=False)
    wall[index[component == np.bincount(component).argmax()]] = True
    return wall


def _kmeans(points: np.ndarray, n_clusters: int, *, on_sphere: bool,
            max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means: farthest-point seeds from point 0, then Lloyd iterations.

    Parameters
    ----------
    points : ndarray, shape (n_points, 3)
        Coordinates; with ``on_sphere`` they are normalised and clustered by cosine
        similarity (spherical k-means), else by Euclidean distance.
    n_clusters : int
        Clusters, at most ``n_points``.
    max_iter : int
        Lloyd iterations at most (it stops when the assignment no longer changes).

    Returns
    -------
    assignment : ndarray of int, shape (n_points,)
        Cluster index 0..n_clusters-1 of each point; no cluster is empty.
    centres : ndarray, shape (n_clusters, 3)
    """
    x = np.asarray(points, dtype=float)
    if on_sphere:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)

    def cost(centres):  # (n_points, n_clusters), smaller is closer
        if on_sphere:
            return -(x @ centres.T)
        return ((x[:, None, :] - centres[None]) ** 2).sum(-1)

    seeds = [0]
    nearest = cost(x[[0]])[:, 0]
    for _ in range(1, n_clusters):
        seeds.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, cost(x[[seeds[-1]]])[:, 0])
    centres = x[seeds].copy()
    assignment = np.full(len(x), -1)
    for _ in range(max_iter):
        distance = cost(centres)
        new = distance.argmin(axis=1)
        counts = np.bincount(new, minlength=n_clusters)
        for empty in np.flatnonzero(counts == 0):  # reseed at the worst-fitted point
            own = distance[np.arange(len(x)), new]
            own[counts[new] < 2] = -np.inf
            worst = int(np.argmax(own))
            counts[new[worst]] -= 1
            new[worst] = empty
            counts[empty] = 1
        if np.array_equal(new, assignment):
            break
        assignment = new
        sums = np.zeros_like(centres)
        np.add.at(sums, assignment, x)
        centres = sums / np.bincount(assignment, minlength=n_clusters)[:, None]
        if on_sphere:
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return assignment, centres


def _make_contiguous(parcel: np.ndarray, adjacency) -> np.ndarray:
    """Give each parcel's detached pieces to the neighbouring parcel they touch most.

    Voronoi cells on the sphere can be cut in two by the medial wall. ``parcel``: index per
    vertex, -1 outside the cortex; ``adjacency``: sparse vertex adjacency (CSR). The largest
    connected piece of each parcel is kept, so no parcel becomes empty. Returns a copy.
    """
    from scipy.sparse.csgraph import connected_components

    parcel = parcel.copy()
    for k in range(int(parcel.max()) + 1):
        index = np.flatnonzero(parcel == k)
        n_pieces, piece = connected_components(adjacency[index][:, index], directed=False)
        if n_pieces < 2:
            continue
        main = np.bincount(piece).argmax()
        for other in range(n_pieces):
            if other == main:
                continue
            vertices = index[piece == other]
            neighbours = parcel[adjacency[vertices].indices]
            neighbours = neighbours[(neighbours >= 0) & (neighbours != k)]
            if len(neighbours):
                parcel[vertices] = np.bincount(neighbours).argmax()
    return parcel


def _parcel_groups(centroids: dict, n_groups: int) -> dict:
    """Group parcels of both hemispheres into ``n_groups`` groups present in both.

    ``centroids``: {'lh', 'rh'} -> (n_parcels_hemi, 3) white-surface centroids, mm. The left
    hemisphere is mirrored (x -> -x) and pooled with the right, clustered by k-means; a group
    missing from a hemisphere takes that hemisphere's parcel nearest its centre (from a
    group with more than one). Groups are numbered posterior to anterior (mean y).
    Returns {'lh', 'rh'} -> ndarray of int group index 0..n_groups-1.
    """
    mirrored = centroids["lh"] * np.array([-1.0, 1.0, 1.0])
    pooled = np.vstack([mirrored, centroids["rh"]])
    assignment, centres = _kmeans(pooled, n_groups, on_sphere=False)
    n_lh = len(mirrored)
    groups = {"lh": assignment[:n_lh].copy(), "rh": assignment[n_lh:].copy()}
    coords = {"lh": mirrored, "rh": centroids["rh"]}
    for hemi in ("lh", "rh"):
        g = groups[hemi]
        for missing in range(n_groups):
            if (g == missing).any():
                continue
            counts = np.bincount(g, minlength=n_groups)
            distance = ((coords[hemi] - centres[missing]) ** 2).sum(1)
            distance[counts[g] < 2] = np.inf
            g[int(np.argmin(distance))] = missing
    order = np.argsort(centres[:, 1], kind="stable")  # posterior (low y) first
    rank = np.empty(n_groups, dtype=int)
    rank[order] = np.arange(n_groups)
    return {hemi: rank[g] for hemi, g in groups.items()}


def _group_colors(n_groups: int) -> np.ndarray:
    """Distinct base colours (RGB 0-255) of the groups."""
    base = np.array([[120, 18, 134], [70, 130, 180], [0, 118, 14], [196, 58, 250],
                     [220, 180, 140], [230, 148, 34], [205, 62, 78]], dtype=float)
    return base[np.arange(n_groups) % len(base)]


def _write_sphere_annotations(label_dir: Path, scale: int, meshes: dict, cortex: dict) -> dict:
    """Write ``{lh,rh}.Schaefer2018_<scale>Parcels_7Networks_order.annot``; return a summary."""
    import nibabel as nib

    per_hemi = scale // 2
    vertex_parcel, centroids = {}, {}
    for hemi, part in (("lh", "left"), ("rh", "right")):
        sphere = np.asarray(meshes["sphere"].parts[part].coordinates, dtype=float)
        white = np.asarray(meshes["white_matter"].parts[part].coordinates, dtype=float)
        keep = np.flatnonzero(cortex[hemi])
        assignment, _ = _kmeans(sphere[keep], per_hemi, on_sphere=True)
        parcel = np.full(len(sphere), -1)
        parcel[keep] = assignment
        faces = np.asarray(meshes["sphere"].parts[part].faces)
        parcel = _make_contiguous(parcel, _vertex_adjacency(faces, len(sphere)))
        assignment = parcel[keep]
        vertex_parcel[hemi] = parcel
        sums = np.zeros((per_hemi, 3))
        np.add.at(sums, assignment, white[keep])
        centroids[hemi] = sums / np.bincount(assignment, minlength=per_hemi)[:, None]
    groups = _parcel_groups(centroids, FALLBACK_N_GROUPS)
    colors = _group_colors(FALLBACK_N_GROUPS)
    sizes = {}
    for hemi in ("lh", "rh"):
        # Schaefer order: by group, then posterior to anterior within the group
        order = np.lexsort((centroids[hemi][:, 1], groups[hemi]))
        new_index = np.empty(per_hemi, dtype=int)
        new_index[order] = np.arange(1, per_hemi + 1)
        names = [_MEDIAL_WALL]
        ctab = [[1, 1, 1, 0]]  # the CBIG annotations' medial-wall colour
        used = {(1, 1, 1)}
        for g in range(FALLBACK_N_GROUPS):
            members = order[groups[hemi][order] == g]
            for k in range(len(members)):
                shade = 0.55 + 0.45 * k / max(len(members) - 1, 1)
                rgb = tuple(int(v) for v in np.rint(colors[g] * shade))
                while rgb in used:  # annotation values derive from colours: keep them unique
                    rgb = (rgb[0], rgb[1], (rgb[2] + 1) % 256)
                used.add(rgb)
                ctab.append([*rgb, 0])
                names.append(f"7Networks_{hemi.upper()}_Sphere{g + 1}_{k + 1}")
        labels = np.where(vertex_parcel[hemi] >= 0,
                          new_index[np.maximum(vertex_parcel[hemi], 0)], 0)
        nib.freesurfer.write_annot(
            str(label_dir / f"{hemi}.{schaefer_annot_name(scale)}.annot"),
            labels.astype(np.int32), np.array(ctab, dtype=np.int32), names, fill_ctab=True,
        )
        sizes[hemi] = np.bincount(vertex_parcel[hemi][vertex_parcel[hemi] >= 0]).tolist()
    all_sizes = sizes["lh"] + sizes["rh"]
    return {"ParcelsPerHemisphere": per_hemi,
            "VerticesPerParcel": {"min": int(min(all_sizes)), "median":
                                  float(np.median(all_sizes)), "max": int(max(all_sizes))}}


def _fallback_description(scales, cortex, medial_wall_found, summary, version) -> dict:
    import mne
    import nibabel as nib
    import nilearn

    return {
        "Name": "samba-bids offline fallback templates",
        "Description": "fsaverage5 surfaces and a k-means parcellation of the sphere, for "
                       "simulations and tests. NOT the Schaefer 2018 atlas, although the "
                       "annotations carry its file names so that every reader works unchanged.",
        "GeneratedBy": {"Name": "samba_bids.templates.build_fallback_templates",
                        "Version": version},
        "Sources": {
            "Surfaces": f"nilearn {nilearn.__version__} "
                        "nilearn.datasets.load_fsaverage('fsaverage5') (shipped with nilearn; "
                        "FreeSurfer fsaverage5)",
            "HeadModel": f"MNE-Python {mne.__version__} mne/data/fsaverage "
                         "(fsaverage-head.fif, fsaverage-inner_skull-bem.fif, "
                         "fsaverage-trans.fif), read in place by "
                         "samba_bids.ephys.source; EEG uses a sphere model fitted to the "
                         "head (no three-layer BEM here)",
            "Writer": f"nibabel {nib.__version__} (write_geometry, write_annot)",
        },
        "Surfaces": sorted(FALLBACK_SURFACES),
        "Scales": list(scales),
        "Parcellation": "per hemisphere, spherical k-means of the sphere vertex coordinates "
                        "(farthest-point seeds from the first cortical vertex, Lloyd "
                        "iterations to convergence; deterministic; pieces cut off by the "
                        "medial wall join their neighbouring parcel); parcels grouped into "
                        f"{FALLBACK_N_GROUPS} groups Sphere1..Sphere{FALLBACK_N_GROUPS} "
                        "(posterior to anterior) by k-means of white-surface centroids with "
                        "the left hemisphere mirrored, each group in both hemispheres",
        "ParcelNames": "7Networks_{LH,RH}_Sphere<group>_<k>; index 0: "
                       f"{_MEDIAL_WALL}",
        "MedialWall": ("largest connected set of vertices absent from nilearn's fsaverage5 "
                       "flat patch" if medial_wall_found else
                       "none identified: every vertex is parcellated"),
        "MedialWallVertices": {h: int((~c).sum()) for h, c in cortex.items()},
        "ParcelSizes": summary,
        "VolumeSpaces": [],
        "Note": "No MNI152NLin6Asym atlas and no fsLR files: the simulator writes only the "
                "fsaverage5 space with these templates.",
    }


def _fallback_readme(description: dict) -> str:
    return (
        "# samba-bids offline fallback templates\n\n"
        "Written by `samba_bids.templates.build_fallback_templates` because no templates "
        "folder was found. **The parcels are not the Schaefer 2018 atlas**: they are a "
        "k-means parcellation of the fsaverage5 sphere, written under the Schaefer file names "
        "(`fsaverage5/label/{lh,rh}.Schaefer2018_<N>Parcels_7Networks_order.annot`, parcels "
        "`7Networks_{LH,RH}_Sphere<g>_<k>`) so that the readers work unchanged. Use them for "
        "simulations and tests only; pass `--templates-dir` with the real atlases for an "
        "analysis.\n\n"
        f"- Surfaces: {description['Sources']['Surfaces']}\n"
        f"- Head model: {description['Sources']['HeadModel']}\n"
        f"- Parcellation: {description['Parcellation']}\n"
        f"- Medial wall: {description['MedialWall']}\n"
        f"- Scales: {', '.join(map(str, description['Scales']))}\n"
        "- No MNI152NLin6Asym volume atlas, no fsLR files.\n"
    )


# --------------------------------------------------------------------------------------------
# Fetching the real templates from their official sources (samba-bids-fetch-templates)

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
            for fname in (_volume_atlas_name(n), _volume_table_name(n)):
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


def _volume_atlas_name(n_parcels, space="MNI152NLin6Asym", res="02") -> str:
    return f"tpl-{space}_res-{res}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.nii.gz"


def _volume_table_name(n_parcels, space="MNI152NLin6Asym") -> str:
    return f"tpl-{space}_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.tsv"


def _fslr_table_name(n_parcels) -> str:
    return f"tpl-fsLR_atlas-Schaefer2018_desc-{n_parcels}Parcels7Networks_dseg.tsv"


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


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fid:
        for block in iter(lambda: fid.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    package's own readers (:func:`samba_bids.bold.load_bold_atlas` for every space and
    scale, the EEG forward's BEM finder) and renamed to ``dest``: a failed fetch leaves no
    ``dest``. A rerun whose request ``dest`` already covers does nothing.

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
    from . import __version__

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
                             "SHA256": _sha256(path)}
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
    meshes = _nilearn_fsaverage5()
    _write_fsaverage5_surfaces(subject_dir / "surf", meshes, "samba-bids-fetch-templates")
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
        for fname in (_volume_atlas_name(n), _volume_table_name(n)):
            name = f"MNI152NLin6Asym/{fname}"
            shutil.copyfile(downloads / name, folder / fname)
            files[name] = name
        table_path = folder / _volume_table_name(n)
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
    grid = _load_cifti_header(downloads / grid_name)
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
        label_axis, source_models = _dlabel_axes(_load_cifti_header(source_path), source_path)
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
        names = _dlabel_names(label_axis, source_path)
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
        target = f"fsLR/{_cifti_dlabel_name(n)}"
        img.to_filename(str(tmp / target))
        files[target] = f"{name} on the grayordinates of {grid_name}"
        pd.DataFrame({"index": np.arange(1, n + 1), "name": names}).to_csv(
            folder / _fslr_table_name(n), sep="\t", index=False)
        files[f"fsLR/{_fslr_table_name(n)}"] = f"label table of {name}"
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
    from .bold import load_bold_atlas

    for space in ("fsaverage5", "MNI152NLin6Asym", "fsLR"):
        if space not in spaces:
            continue
        for n in scales:
            try:
                atlas = load_bold_atlas(folder, space, n)
            except (NoInputError, DataError) as err:
                raise DataError(f"The fetched {space} Schaefer-{n} atlas does not load: {err}") \
                    from err
            logger.info("Checked %s Schaefer-%d: %d parcels.", space, n, len(atlas.names))
    if "fsaverage" in spaces:
        from .ephys.source import _find_three_layer_bem

        if _find_three_layer_bem(folder, "fsaverage5") is None:
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
