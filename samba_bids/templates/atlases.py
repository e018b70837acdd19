"""Read the Schaefer 2018 atlases of a templates folder: surface, volume and CIFTI.

Parcels are numbered 1..N in the Schaefer 2018 order (left hemisphere 1..N/2, right N/2+1..N);
0 is background or the medial wall. Nothing is downloaded here. The folder's layout is in
:mod:`samba_bids.templates.spaces`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, NoInputError, UsageError
from .locate import surface_subject_dir
from .spaces import (
    CIFTI_SPACES,
    FSLR_MIDTHICKNESS,
    MEDIAL_WALL,
    SURFACE_SPACES,
    VOLUME_SPACES,
    cifti_dlabel_name,
    fslr_table_name,
    schaefer_annot_name,
    volume_atlas_name,
    volume_table_name,
)

# The package's logger, as before the split into modules: log lines keep their name.
logger = logging.getLogger(__package__)


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
        keep = [i for i, n in enumerate(label_names) if n != MEDIAL_WALL and "Unknown" not in n]
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
    image = folder / volume_atlas_name(n_parcels, space, res)
    table = folder / volume_table_name(n_parcels, space)
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


def _refetch(path: Path) -> str:
    return (f"re-fetch {path.name} into the fsLR/ folder of --templates-dir (or re-generate it "
            "with wb_command -cifti-label-import)")


def load_cifti_header(path: Path):
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


def dlabel_axes(img, path: Path):
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


def dlabel_names(label_axis, path: Path) -> list[str]:
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
    path = folder / cifti_dlabel_name(n_parcels)
    if not path.is_file():
        raise NoInputError(
            f"{path} is missing from the templates folder; fetch the Schaefer 2018 "
            f"{n_parcels}-parcel fsLR 91k dlabel into --templates-dir (or choose another "
            "--bold-atlas-scale)."
        )
    label_axis, _ = dlabel_axes(load_cifti_header(path), path)
    names = dlabel_names(label_axis, path)
    table = folder / fslr_table_name(n_parcels)
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
    img = load_cifti_header(path)
    label_axis, brain_models = dlabel_axes(img, path)
    names = dlabel_names(label_axis, path)
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
# Checks of a whole atlas (the fetch verifies what it wrote with them)


def check_parcels_present(labels, n_parcels: int, path: Path) -> None:
    """Raise if a parcel 1..n_parcels labels no element of ``labels`` (ints >= 0)."""
    counts = np.bincount(labels, minlength=n_parcels + 1)
    if (counts[1:] == 0).any():
        absent = np.flatnonzero(counts[1:] == 0) + 1
        raise DataError(f"{path.name} lacks parcel(s) {absent.tolist()[:10]}; re-fetch the atlas.")


def read_volume_labels(path: Path, n_parcels: int):
    """Read a volume label image and check that it holds parcels 1..n_parcels and nothing else.

    Parameters
    ----------
    path : Path
        The label image (:func:`volume_atlas`).
    n_parcels : int
        Parcels named by the atlas table.

    Returns
    -------
    label_data : ndarray of int32, shape (n_x, n_y, n_z)
        Parcel index per voxel, 0 = background.
    img : nibabel.Nifti1Image
        The image as loaded (affine, header).

    Raises
    ------
    DataError
        If the image is not 3-D integer-valued, holds labels outside 0..n_parcels or lacks
        a parcel.
    """
    import nibabel as nib

    img = nib.load(str(path))
    raw = np.asanyarray(img.dataobj)
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    label_data = np.rint(raw).astype(np.int32)
    if raw.ndim != 3 or not np.array_equal(label_data, raw):
        raise DataError(f"{path.name} is not a 3-D integer label image; re-fetch the atlas.")
    if label_data.min() < 0 or label_data.max() > n_parcels:
        raise DataError(
            f"{path.name} holds labels {label_data.min()}..{label_data.max()}, outside "
            f"0..{n_parcels} of its table; re-fetch the atlas."
        )
    check_parcels_present(label_data.ravel(), n_parcels, path)
    return label_data, img


def check_atlas(templates_dir, space: str, n_parcels: int) -> list[str]:
    """Read the Schaefer 2018 atlas of a space and check it as the BOLD stage will.

    The same reads and checks as :func:`samba_bids.bold.load_bold_atlas` (which builds the
    parcel averaging on top of them), without importing the BOLD stage: surface annotations
    and white-surface centroids; a 3-D integer volume with every parcel; a dlabel whose
    labels are keys of its table, with every parcel, placed in mm
    (:func:`cifti_parcel_centroids`).

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    space : str
        One of :data:`SURFACE_SPACES`, :data:`VOLUME_SPACES`, :data:`CIFTI_SPACES`.
    n_parcels : int
        Schaefer 2018 scale.

    Returns
    -------
    list of str
        Parcel names in index order.

    Raises
    ------
    UsageError
        If ``space`` is not a template space.
    NoInputError
        If atlas files are missing.
    DataError
        If an atlas file is unreadable or does not hold the parcels its table names.
    """
    if space in CIFTI_SPACES:
        path, names = cifti_atlas(templates_dir, n_parcels)
        labels, _, brain_models = read_cifti_labels(path)
        check_parcels_present(labels, len(names), path)
        cifti_parcel_centroids(templates_dir, labels, brain_models, names)
    elif space in SURFACE_SPACES:
        labels, names = surface_atlas(templates_dir, space, n_parcels)
        surface_parcel_centroids(templates_dir, space, labels)
    elif space in VOLUME_SPACES:
        path, names = volume_atlas(templates_dir, space, n_parcels)
        read_volume_labels(path, len(names))
    else:
        raise UsageError(
            f"{space!r} is not a template space; use one of "
            f"{', '.join(SURFACE_SPACES + VOLUME_SPACES + CIFTI_SPACES)}."
        )
    return names
