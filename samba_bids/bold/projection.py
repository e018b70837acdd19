"""Project parcel values back to the BOLD space of the input (GIFTI pair, NIfTI or CIFTI).

Each parcel's value is repeated over all of its vertices, voxels or grayordinates, so
parcellating the projection returns the parcel values; vertices, voxels and grayordinates
outside every parcel are 0. For CIFTI inputs the honest parcel-level files are written too:
a ``.ptseries.nii`` (:func:`parcel_series_cifti`) and, for per-parcel maps, a
``.pscalar.nii`` (:func:`parcel_map_images`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._io import (
    _HEMI_STRUCTURE,
    _check_brain_models,
    _cifti_axes,
    _gifti_file_meta,
    _gifti_hemi,
)
from .parcellation import ParcelAtlas, labels_on_grid

logger = logging.getLogger(__name__)


# Painting is ``table[labels]`` rather than the maskers' ``inverse_transform`` (nilearn
# ``NiftiLabelsMasker``, ``SurfaceLabelsMasker``). For finite values these give the same data
# and affine (tests/test_bold.py::test_projection_equals_nilearn_inverse_transform), but:
# - ``inverse_transform`` refuses NaN ("Input contains NaN", nilearn 0.14), and NaN parcels
#   must be painted NaN (parcels without data, maps such as an undefined Pearson r);
# - it wants one column per label present on the grid, not per atlas parcel, and a surface
#   masker needs the template meshes, which a surface atlas does not carry;
# - the images are built here anyway from the reference (NIfTI header, zooms with the TR,
#   units; GIFTI file meta, TimeStep, one data array per volume, intents), so nilearn would
#   only replace this indexing, 6 to 40 times slower on volumes (3 and 2 mm grids, the
#   masker's fit included).
# nilearn has no CIFTI masker: CIFTI outputs are built with nibabel's axes.
def _parcel_lookup(values: np.ndarray, atlas: ParcelAtlas) -> np.ndarray:
    """(n_parcels + 1, n_columns) float32 table with row 0 (no parcel) equal to 0."""
    if values.shape[0] != atlas.n_parcels:
        raise ValueError(
            f"values have {values.shape[0]} rows but the {atlas.space} atlas has "
            f"{atlas.n_parcels} parcels"
        )
    table = np.zeros((atlas.n_parcels + 1, values.shape[1]), dtype=np.float32)
    table[1:] = values
    return table


def _reference_gifti_meta(reference) -> dict[str, dict[str, str]]:
    """File meta of the reference GIFTI pair, keyed by hemisphere 'L'/'R'."""
    import nibabel as nib

    refs = [reference] if isinstance(reference, (str, Path, nib.GiftiImage)) else list(reference)
    metas: dict[str, dict[str, str]] = {}
    for ref in refs:
        if isinstance(ref, nib.GiftiImage):
            meta = dict(ref.meta)
            hemi = _gifti_hemi(meta)
            name = "a reference GIFTI image"
        else:
            path = Path(ref)
            meta = _gifti_file_meta(path)
            hemi = _gifti_hemi(meta, path)
            name = path.name
        if hemi is None:
            raise DataError(f"{name}: cannot tell its hemisphere; name it with hemi-L or hemi-R.")
        metas[hemi] = meta
    missing = [h for h in ("L", "R") if h not in metas]
    if missing:
        raise DataError(
            f"The reference GIFTI pair lacks its hemi-{missing[0]} file; pass both input "
            "_bold.func.gii files of the run."
        )
    return metas


def _project_surface(table, atlas, reference, time_series, tr_s, array_names=None):
    from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData

    metas = _reference_gifti_meta(reference)
    intent = "NIFTI_INTENT_TIME_SERIES" if time_series else "NIFTI_INTENT_NONE"
    images = []
    for hemi, key in (("L", "lh"), ("R", "rh")):
        vertex_values = table[atlas.surface_labels[key]]  # (n_vertices, n_columns)
        meta = dict(metas[hemi])
        meta["AnatomicalStructurePrimary"] = _HEMI_STRUCTURE[hemi]
        if time_series and tr_s is not None:
            meta["TimeStep"] = f"{float(tr_s) * 1000.0:g}"
        elif not time_series:
            meta.pop("TimeStep", None)
        darrays = [
            GiftiDataArray(
                np.ascontiguousarray(vertex_values[:, i]),
                intent=intent,
                datatype="NIFTI_TYPE_FLOAT32",
                meta=GiftiMetaData({"Name": array_names[i]}) if array_names else None,
            )
            for i in range(vertex_values.shape[1])
        ]
        images.append(GiftiImage(meta=GiftiMetaData(meta), darrays=darrays))
    return images


def _project_volume(table, atlas, reference, time_series, tr_s):
    import nibabel as nib

    ref = nib.load(str(reference)) if isinstance(reference, (str, Path)) else reference
    shape3 = tuple(ref.shape[:3])
    labels = np.asanyarray(labels_on_grid(atlas, shape3, ref.affine).dataobj)
    data = table[labels]  # (x, y, z, n_columns) float32
    if not time_series:
        data = data[..., 0]
    header = ref.header.copy()
    header.set_data_dtype(np.float32)
    img = nib.Nifti1Image(data, ref.affine, header)
    zooms = tuple(ref.header.get_zooms()[:3])
    if time_series:
        ref_tr = ref.header.get_zooms()[3] if len(ref.shape) == 4 else 0.0
        if tr_s is None and not ref_tr:
            logger.warning("The reference BOLD has no TR in its header; pass tr_s.")
        zooms = zooms + (float(tr_s) if tr_s is not None else float(ref_tr),)
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units(*ref.header.get_xyzt_units())
    if time_series and tr_s is not None:
        img.header.set_xyzt_units(t="sec")
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0.0, 0.0
    return img


def _cifti_reference(atlas: ParcelAtlas, reference):
    """(BrainModelAxis, series step in s or None) of the reference, checked against the atlas.

    The atlas's grayordinates when ``reference`` is None.
    """
    import nibabel as nib
    from nibabel.cifti2.cifti2_axes import BrainModelAxis

    if reference is None:
        return atlas.brain_models, None
    ref_tr_s = None
    if isinstance(reference, BrainModelAxis):
        brain_models, name = reference, "The reference grayordinates"
    else:
        if isinstance(reference, (list, tuple)) and len(reference) == 1:
            reference = reference[0]
        if isinstance(reference, (str, Path)):
            name = Path(reference).name
            try:
                img = nib.load(str(reference))  # header only
            except Exception as err:
                raise DataError(
                    f"{name} is not a readable CIFTI-2 file ({type(err).__name__}: {err}); "
                    "pass the run's input _bold.dtseries.nii as the reference."
                ) from err
        else:
            img, name = reference, "The reference CIFTI image"
        if not isinstance(img, nib.Cifti2Image):
            raise DataError(
                f"{name} is not a CIFTI-2 image; pass the run's input _bold.dtseries.nii as "
                "the reference of a CIFTI atlas."
            )
        brain_models, series = _cifti_axes(img, name)
        if series.unit == "SECOND" and series.step > 0:
            ref_tr_s = float(series.step)
    _check_brain_models(brain_models, atlas, name)
    return brain_models, ref_tr_s


def _cifti_image(data, axes, intent):
    """Cifti2Image of float32 ``data`` with ``axes`` and the NIfTI intent of its file type."""
    import nibabel as nib

    img = nib.Cifti2Image(np.asarray(data, dtype=np.float32), header=axes)
    img.nifti_header.set_intent(intent)
    img.nifti_header.set_data_dtype(np.float32)
    return img


def _series_axis(n_volumes: int, tr_s):
    from nibabel.cifti2.cifti2_axes import SeriesAxis

    if tr_s is None or not np.isfinite(tr_s) or float(tr_s) <= 0:
        raise ValueError(f"tr_s must be the repetition time in s (> 0); got {tr_s!r}")
    return SeriesAxis(start=0.0, step=float(tr_s), size=int(n_volumes), unit="SECOND")


def _check_cifti_atlas(atlas: ParcelAtlas) -> None:
    if atlas.kind != "cifti":
        raise ValueError(f"a CIFTI output needs a CIFTI atlas (fsLR); got a {atlas.kind} atlas")


def parcels_axis(atlas: ParcelAtlas):
    """The parcels of a CIFTI atlas as a CIFTI-2 parcels axis.

    Parameters
    ----------
    atlas : ParcelAtlas
        A CIFTI atlas (``kind == "cifti"``).

    Returns
    -------
    nibabel.cifti2.cifti2_axes.ParcelsAxis
        One parcel per atlas parcel, in index order, named ``atlas.names``; parcel ``k`` holds
        the vertices and voxels of the grayordinates labelled ``k + 1`` (built with
        ``ParcelsAxis.from_brain_models`` from the atlas's BrainModelAxis).
    """
    from nibabel.cifti2.cifti2_axes import ParcelsAxis

    _check_cifti_atlas(atlas)
    labels = atlas.grayordinate_labels
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(1, atlas.n_parcels + 2))
    return ParcelsAxis.from_brain_models([
        (name, atlas.brain_models[order[bounds[k]:bounds[k + 1]]])
        for k, name in enumerate(atlas.names)
    ])


def parcel_series_cifti(values, atlas: ParcelAtlas, tr_s: float):
    """Parcel time series as a CIFTI-2 parcellated time series (``.ptseries.nii``).

    The honest parcel-level companion of the dtseries from :func:`project_parcels`: one
    value per parcel and volume, nothing repeated.

    Parameters
    ----------
    values : ndarray, shape (n_parcels, n_volumes)
        Parcel time series; row ``k`` is parcel ``k + 1`` (``atlas.names[k]``).
    atlas : ParcelAtlas
        A CIFTI atlas (``load_bold_atlas(templates_dir, "fsLR", n)``).
    tr_s : float
        Repetition time in s (the series axis step).

    Returns
    -------
    nibabel.Cifti2Image
        Shape (n_volumes, n_parcels), float32, axes ``(SeriesAxis(start=0, step=tr_s,
        unit='SECOND'), ParcelsAxis)`` (:func:`parcels_axis`), intent
        ``NIFTI_INTENT_CONNECTIVITY_PARCELLATED_SERIES``; NaN values kept.

    Raises
    ------
    ValueError
        If ``values`` is not (n_parcels, n_volumes), the atlas is not a CIFTI atlas, or
        ``tr_s`` is not > 0.
    """
    _check_cifti_atlas(atlas)
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] != atlas.n_parcels:
        raise ValueError(
            f"values must be (n_parcels={atlas.n_parcels}, n_volumes); got {values.shape}"
        )
    axes = (_series_axis(values.shape[1], tr_s), parcels_axis(atlas))
    return _cifti_image(values.T, axes, "NIFTI_INTENT_CONNECTIVITY_PARCELLATED_SERIES")


def _project_cifti(table, atlas, reference, tr_s):
    brain_models, ref_tr_s = _cifti_reference(atlas, reference)
    tr_s = ref_tr_s if tr_s is None else tr_s
    data = table[atlas.grayordinate_labels]  # (n_grayordinates, n_volumes)
    axes = (_series_axis(data.shape[1], tr_s), brain_models)
    return _cifti_image(data.T, axes, "NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES")


def parcel_map_images(maps, atlas: ParcelAtlas, reference=None) -> list:
    """Per-parcel scalar maps (e.g. learned HRF time to peak, test Pearson r) as images.

    Parameters
    ----------
    maps : dict of str to ndarray, shape (n_parcels,)
        Map name (e.g. ``"hrf_time_to_peak_s"``) to one value per parcel, row ``k`` parcel
        ``k + 1``; written in the dict's order.
    atlas : ParcelAtlas
        The atlas the values belong to (:func:`load_bold_atlas`).
    reference : sequence of path-like | path-like | nibabel image | None
        As for :func:`project_parcels`: the input GIFTI pair (surface atlases) or BOLD image
        (volume atlases), whose meta or grid is used. CIFTI atlases: the input dtseries (path
        or image) or None (the atlas's grayordinates); only checked, since a pscalar file
        holds parcels.

    Returns
    -------
    list of nibabel images
        CIFTI atlas: ``[Cifti2Image]``, a parcellated scalar file (``.pscalar.nii``) of shape
        (n_maps, n_parcels), axes ``(ScalarAxis(map names), ParcelsAxis)``, intent
        ``NIFTI_INTENT_CONNECTIVITY_PARCELLATED_SCALAR``.
        Surface atlas: ``[left GiftiImage, right GiftiImage]``, one float32 data array per
        map (intent ``NIFTI_INTENT_NONE``, map name in the array's meta ``Name``).
        Volume atlas: one 3-D float32 ``Nifti1Image`` per map, in the maps' order, on the
        reference's grid (3-D images open in every viewer; a 4-D stack would hide the names).
        Vertices and voxels outside every parcel are 0; NaN parcel values are painted NaN.

    Raises
    ------
    ValueError
        If ``maps`` is empty or a map does not have one value per parcel.
    DataError
        If the reference does not match the atlas (GIFTI hemisphere missing, CIFTI
        grayordinates differ).
    """
    from nibabel.cifti2.cifti2_axes import ScalarAxis

    if not maps:
        raise ValueError("maps is empty; pass at least one {name: (n_parcels,) values}")
    names = [str(k) for k in maps]
    columns = []
    for name, values in maps.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (atlas.n_parcels,):
            raise ValueError(
                f"map {name!r} has shape {values.shape}; expected ({atlas.n_parcels},), one "
                "value per parcel"
            )
        columns.append(values)
    stacked = np.stack(columns, axis=1)  # (n_parcels, n_maps)
    if atlas.kind == "cifti":
        if reference is not None:
            _cifti_reference(atlas, reference)
        axes = (ScalarAxis(names), parcels_axis(atlas))
        return [_cifti_image(stacked.T, axes, "NIFTI_INTENT_CONNECTIVITY_PARCELLATED_SCALAR")]
    table = _parcel_lookup(stacked, atlas)
    if atlas.kind == "surface":
        return _project_surface(table, atlas, reference, False, None, array_names=names)
    return [_project_volume(table[:, [i]], atlas, reference, False, None)
            for i in range(len(names))]


def project_parcels(values, atlas: ParcelAtlas, reference, *, tr_s: float | None = None):
    """Paint parcel values onto the vertices or voxels of the input BOLD's space.

    Parameters
    ----------
    values : ndarray, shape (n_parcels, n_volumes) | (n_parcels,)
        Parcel time series (one column per volume), or one map. Row ``k`` is parcel ``k + 1``.
    atlas : ParcelAtlas
        The atlas the values were computed with (:func:`load_bold_atlas`).
    reference : sequence of path-like | path-like | nibabel image | None
        Surface atlases: the run's input GIFTI pair (paths or ``GiftiImage``; the hemisphere
        comes from the ``hemi`` entity or ``AnatomicalStructurePrimary``), whose file meta is
        copied. Volume atlases: the input BOLD (path or image), whose grid, affine, header and
        zooms are used. CIFTI atlases: the input dtseries (path, ``[path]``, ``Cifti2Image``
        or its ``BrainModelAxis``), whose grayordinates must be the atlas's, or None for the
        atlas's grayordinates.
    tr_s : float | None
        Repetition time written to the output (``TimeStep`` in ms for GIFTI, ``pixdim[4]`` in s
        for NIfTI, the series axis step in s for CIFTI); None keeps the reference's (for CIFTI
        the reference dtseries' step; an error without one).

    Returns
    -------
    list of nibabel images
        Surface: ``[left GiftiImage, right GiftiImage]``, one float32 data array per volume
        (intent ``NIFTI_INTENT_TIME_SERIES``; ``NIFTI_INTENT_NONE`` for a single map).
        Volume: ``[Nifti1Image]`` of shape ``reference.shape[:3] + (n_volumes,)`` (3-D for a
        single map), float32, the reference's affine.
        CIFTI: ``[Cifti2Image]``, a dense time series (``.dtseries.nii``) of shape
        (n_volumes, n_grayordinates), axes ``(SeriesAxis(start=0, step=tr_s, unit='SECOND'),
        BrainModelAxis)``, intent ``NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES``; write the
        honest :func:`parcel_series_cifti` beside it. Maps go through
        :func:`parcel_map_images` instead.
        Vertices, voxels and grayordinates outside every parcel are 0; parcels whose value is
        NaN are painted NaN.

    Raises
    ------
    ValueError
        If ``values`` does not have one row per parcel, or (CIFTI) is 1-D or ``tr_s`` is
        not > 0.
    DataError
        If the reference GIFTI pair lacks a hemisphere, or the reference CIFTI's
        grayordinates are not the atlas's.
    """
    values = np.asarray(values)
    time_series = values.ndim == 2
    if values.ndim not in (1, 2):
        raise ValueError(
            f"values must be (n_parcels,) or (n_parcels, n_volumes); got {values.shape}"
        )
    table = _parcel_lookup(values.reshape(values.shape[0], -1), atlas)
    if atlas.kind == "cifti":
        if not time_series:
            raise ValueError(
                "a single parcel map on a CIFTI atlas goes to parcel_map_images (a .pscalar.nii); "
                "project_parcels writes (n_parcels, n_volumes) time series"
            )
        return [_project_cifti(table, atlas, reference, tr_s)]
    if atlas.kind == "surface":
        return _project_surface(table, atlas, reference, time_series, tr_s)
    return [_project_volume(table, atlas, reference, time_series, tr_s)]


def save_image(img, path) -> Path:
    """Write a nibabel image with :func:`nibabel.save`.

    The format follows the extension (``.nii``, ``.nii.gz``, ``.func.gii``, ``.gii``; CIFTI
    images go to ``.dtseries.nii``/``.ptseries.nii``/``.pscalar.nii``), so a temporary name
    for an atomic rename must keep it (e.g. ``.tmp-sub-01_..._bold.nii.gz``).

    Parameters
    ----------
    img : nibabel image
        Image to write (from :func:`project_parcels`).
    path : path-like
        Output file; its folder must exist.

    Returns
    -------
    Path
        ``path``.
    """
    import nibabel as nib

    path = Path(path)
    nib.save(img, str(path))
    logger.debug("Wrote %s.", path)
    return path
