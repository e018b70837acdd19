"""Project parcel values back to the BOLD space of the input (GIFTI pair or NIfTI).

Each parcel's value is repeated over all of its vertices or voxels, so parcellating the
projection returns the parcel values; vertices and voxels outside every parcel are 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from .loading import _gifti_file_meta, _hemi_from_name
from .parcellation import ParcelAtlas, labels_on_grid

logger = logging.getLogger(__name__)

_STRUCTURE = {"L": "CortexLeft", "R": "CortexRight"}


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
            hemi = {"CortexLeft": "L", "CortexRight": "R"}.get(
                meta.get("AnatomicalStructurePrimary")
            )
            name = "a reference GIFTI image"
        else:
            path = Path(ref)
            meta = _gifti_file_meta(path)
            hemi = _hemi_from_name(path) or {"CortexLeft": "L", "CortexRight": "R"}.get(
                meta.get("AnatomicalStructurePrimary")
            )
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


def _project_surface(table, atlas, reference, time_series, tr_s):
    from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData

    metas = _reference_gifti_meta(reference)
    intent = "NIFTI_INTENT_TIME_SERIES" if time_series else "NIFTI_INTENT_NONE"
    images = []
    for hemi, key in (("L", "lh"), ("R", "rh")):
        vertex_values = table[atlas.surface_labels[key]]  # (n_vertices, n_columns)
        meta = dict(metas[hemi])
        meta["AnatomicalStructurePrimary"] = _STRUCTURE[hemi]
        if time_series and tr_s is not None:
            meta["TimeStep"] = f"{float(tr_s) * 1000.0:g}"
        elif not time_series:
            meta.pop("TimeStep", None)
        darrays = [
            GiftiDataArray(
                np.ascontiguousarray(vertex_values[:, i]),
                intent=intent,
                datatype="NIFTI_TYPE_FLOAT32",
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


def project_parcels(values, atlas: ParcelAtlas, reference, *, tr_s: float | None = None):
    """Paint parcel values onto the vertices or voxels of the input BOLD's space.

    Parameters
    ----------
    values : ndarray, shape (n_parcels, n_volumes) | (n_parcels,)
        Parcel time series (one column per volume), or one map. Row ``k`` is parcel ``k + 1``.
    atlas : ParcelAtlas
        The atlas the values were computed with (:func:`load_bold_atlas`).
    reference : sequence of path-like | path-like | nibabel image
        Surface atlases: the run's input GIFTI pair (paths or ``GiftiImage``; the hemisphere
        comes from the ``hemi`` entity or ``AnatomicalStructurePrimary``), whose file meta is
        copied. Volume atlases: the input BOLD (path or image), whose grid, affine, header and
        zooms are used.
    tr_s : float | None
        Repetition time written to the output (``TimeStep`` in ms for GIFTI, ``pixdim[4]`` in s
        for NIfTI); None keeps the reference's.

    Returns
    -------
    list of nibabel images
        Surface: ``[left GiftiImage, right GiftiImage]``, one float32 data array per volume
        (intent ``NIFTI_INTENT_TIME_SERIES``; ``NIFTI_INTENT_NONE`` for a single map).
        Volume: ``[Nifti1Image]`` of shape ``reference.shape[:3] + (n_volumes,)`` (3-D for a
        single map), float32, the reference's affine. Vertices and voxels outside every parcel
        are 0; parcels whose value is NaN are painted NaN.

    Raises
    ------
    ValueError
        If ``values`` does not have one row per parcel.
    DataError
        If the reference GIFTI pair lacks a hemisphere.
    """
    values = np.asarray(values)
    time_series = values.ndim == 2
    if values.ndim not in (1, 2):
        raise ValueError(
            f"values must be (n_parcels,) or (n_parcels, n_volumes); got {values.shape}"
        )
    table = _parcel_lookup(values.reshape(values.shape[0], -1), atlas)
    if atlas.kind == "surface":
        return _project_surface(table, atlas, reference, time_series, tr_s)
    return [_project_volume(table, atlas, reference, time_series, tr_s)]


def save_image(img, path) -> Path:
    """Write a nibabel image with :func:`nibabel.save`.

    The format follows the extension (``.nii``, ``.nii.gz``, ``.func.gii``, ``.gii``), so a
    temporary name for an atomic rename must keep it (e.g. ``.tmp-sub-01_..._bold.nii.gz``).

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
