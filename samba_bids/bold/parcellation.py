"""Parcel-wise BOLD: the Schaefer 2018 atlas per space, parcel means, confound regression.

Parcels are numbered 1..M in the Schaefer 2018 (7 networks) order, left hemisphere first;
row ``k`` of every parcel array is parcel ``k + 1``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from ..templates.atlases import (
    cifti_atlas,
    cifti_parcel_centroids,
    read_cifti_labels,
    read_volume_labels,
    surface_atlas,
    surface_parcel_centroids,
    volume_atlas,
)
from ..templates.spaces import (
    CIFTI_SPACES,
    SURFACE_SPACES,
    VOLUME_SPACES,
    schaefer_annot_name,
)
from ._io import _check_brain_models, _cifti_series
from .loading import load_cifti_bold

logger = logging.getLogger(__name__)

SUPPORTED_SPACES = (
    tuple(SURFACE_SPACES) + tuple(VOLUME_SPACES) + tuple(CIFTI_SPACES)
)


@dataclass
class ParcelAtlas:
    """A parcellation of one BOLD space.

    Attributes
    ----------
    names : list of str, length n_parcels
        Parcel names in index order (e.g. ``7Networks_LH_Vis_1``).
    centroids_mm : ndarray, shape (n_parcels, 3)
        Parcel centroids in mm: mean white-surface vertex position (FreeSurfer surface RAS,
        ~MNI305) for surface spaces, mean voxel position through the affine (MNI152) for
        volume spaces; for CIFTI spaces see
        :func:`samba_bids.templates.cifti_parcel_centroids`.
    space : str
        The BOLD space (``fsaverage5``, ``MNI152NLin6Asym``, ``fsLR``, ...).
    kind : {'surface', 'volume', 'cifti'}
        Whether the atlas labels vertices, voxels or CIFTI grayordinates.
    surface_labels : dict of {'lh', 'rh'} to ndarray of int, shape (n_vertices,) | None
        Parcel index per vertex (1..n_parcels, 0 = medial wall); None for other atlases.
    volume_labels : nibabel.Nifti1Image | None
        Integer label image (1..n_parcels, 0 = background), data in memory; None for
        other atlases.
    grayordinate_labels : ndarray of int64, shape (n_grayordinates,) | None
        Parcel index per grayordinate (1..n_parcels, 0 = no parcel: medial wall,
        subcortex), in the order of ``brain_models``; None for non-CIFTI atlases.
    brain_models : nibabel.cifti2.cifti2_axes.BrainModelAxis | None
        The grayordinates of the atlas's dlabel (fsLR 91k: 91,282); None for non-CIFTI
        atlases.
    files : tuple of Path
        The atlas files read (for the ``Sources`` of sidecars).
    """

    names: list[str]
    centroids_mm: np.ndarray
    space: str
    kind: str
    surface_labels: dict | None = None
    volume_labels: object | None = None
    grayordinate_labels: np.ndarray | None = None
    brain_models: object | None = None
    files: tuple = field(default_factory=tuple)

    @property
    def n_parcels(self) -> int:
        """Number of parcels M."""
        return len(self.names)

    @property
    def n_vertices(self) -> int:
        """Vertices of both hemispheres (surface atlases), left then right."""
        if self.surface_labels is None:
            raise AttributeError("a volume atlas has no vertices")
        return int(self.surface_labels["lh"].size + self.surface_labels["rh"].size)

    @property
    def n_grayordinates(self) -> int:
        """Grayordinates of a CIFTI atlas (fsLR 91k: 91,282)."""
        if self.grayordinate_labels is None:
            raise AttributeError(f"a {self.kind} atlas has no grayordinates")
        return int(self.grayordinate_labels.size)


def load_bold_atlas(templates_dir, space: str, n_parcels: int = 200) -> ParcelAtlas:
    """Schaefer 2018 (7 networks) atlas of a BOLD space, from the offline templates folder.

    Surface spaces (:data:`samba_bids.templates.SURFACE_SPACES`) read the annotations of the
    template subject of the same name (``templates/fsaverage5/label/``, via
    :func:`samba_bids.templates.surface_atlas`); volume spaces
    (:data:`samba_bids.templates.VOLUME_SPACES`) read the 2 mm label image
    (:func:`samba_bids.templates.volume_atlas`); CIFTI spaces
    (:data:`samba_bids.templates.CIFTI_SPACES`, ``fsLR``) read the 91k grayordinate dlabel
    (:func:`samba_bids.templates.cifti_atlas`), with centroids from
    :func:`samba_bids.templates.cifti_parcel_centroids` (fsLR 32k meshes when in the
    templates folder, else the same-named Schaefer parcels of fsaverage5).

    Parameters
    ----------
    templates_dir : path-like
        Templates folder (``--templates-dir``).
    space : str
        BOLD space, e.g. ``fsaverage5``, ``MNI152NLin6Asym`` or ``fsLR``.
    n_parcels : int
        100, 200 or 400.

    Returns
    -------
    ParcelAtlas

    Raises
    ------
    UsageError
        If ``space`` is not supported (the message lists the supported ones).
    NoInputError
        If the atlas files are missing from the templates folder.
    DataError
        If a volume or CIFTI atlas holds labels outside 0..n_parcels or lacks a parcel, or a
        CIFTI atlas is unreadable or truncated.
    """
    import nibabel as nib

    if space in CIFTI_SPACES:
        return _load_cifti_atlas(templates_dir, space, n_parcels)

    if space in SURFACE_SPACES:
        labels, names = surface_atlas(templates_dir, space, n_parcels)
        centroids = surface_parcel_centroids(templates_dir, space, labels)
        label_dir = Path(templates_dir) / space / "label"
        annot = schaefer_annot_name(n_parcels)
        files = tuple(label_dir / f"{h}.{annot}.annot" for h in ("lh", "rh"))
        logger.info("Atlas %s on %s: %d parcels.", annot, space, len(names))
        return ParcelAtlas(
            names=names,
            centroids_mm=np.asarray(centroids, dtype=np.float64),
            space=space,
            kind="surface",
            surface_labels={h: np.asarray(labels[h], dtype=np.int64) for h in ("lh", "rh")},
            files=files,
        )
    if space in VOLUME_SPACES:
        path, names = volume_atlas(templates_dir, space, n_parcels)
        label_data, img = read_volume_labels(path, len(names))
        counts = np.bincount(label_data.ravel(), minlength=len(names) + 1)
        ijk = np.indices(label_data.shape).reshape(3, -1).T.astype(np.float64)
        flat = label_data.ravel()
        sums = np.stack(
            [np.bincount(flat, weights=ijk[:, a], minlength=len(names) + 1) for a in range(3)],
            axis=1,
        )
        mean_ijk = sums[1:] / counts[1:, None]
        centroids = nib.affines.apply_affine(img.affine, mean_ijk)
        header = img.header.copy()
        header.set_data_dtype(np.int32)
        labels_img = nib.Nifti1Image(label_data, img.affine, header)
        logger.info("Atlas %s: %d parcels.", path.name, len(names))
        return ParcelAtlas(
            names=names,
            centroids_mm=centroids,
            space=space,
            kind="volume",
            volume_labels=labels_img,
            files=(Path(path),),
        )
    raise UsageError(
        f"BOLD space {space!r} is not supported; use --bold-space with one of "
        f"{', '.join(SUPPORTED_SPACES)}."
    )


def _load_cifti_atlas(templates_dir, space: str, n_parcels: int) -> ParcelAtlas:
    path, names = cifti_atlas(templates_dir, n_parcels)
    labels, _, brain_models = read_cifti_labels(path)
    if labels.max() > len(names):
        raise DataError(
            f"{path.name} holds labels up to {labels.max()}, beyond its {len(names)} parcels; "
            "re-fetch the atlas."
        )
    counts = np.bincount(labels, minlength=len(names) + 1)
    if (counts[1:] == 0).any():
        absent = np.flatnonzero(counts[1:] == 0) + 1
        raise DataError(f"{path.name} lacks parcel(s) {absent.tolist()[:10]}; re-fetch the atlas.")
    centroids, centroid_files = cifti_parcel_centroids(
        templates_dir, labels, brain_models, names
    )
    logger.info("Atlas %s: %d parcels on %d grayordinates.", path.name, len(names), labels.size)
    return ParcelAtlas(
        names=names,
        centroids_mm=np.asarray(centroids, dtype=np.float64),
        space=space,
        kind="cifti",
        grayordinate_labels=labels,
        brain_models=brain_models,
        files=(Path(path), *centroid_files),
    )


def _averaging_matrix(labels: np.ndarray, n_parcels: int):
    """Sparse indicator (n_parcels, n_elements): 1 where an element belongs to a parcel."""
    from scipy import sparse

    members = np.flatnonzero(labels > 0)
    return sparse.csr_matrix(
        (np.ones(members.size), (labels[members] - 1, members)),
        shape=(n_parcels, labels.size),
    )


def _surface_averaging_matrix(atlas: ParcelAtlas):
    """Sparse indicator (n_parcels, n_vertices): 1 where vertex belongs to parcel."""
    labels = np.concatenate([atlas.surface_labels["lh"], atlas.surface_labels["rh"]])
    return _averaging_matrix(labels, atlas.n_parcels)


def _nan_mean(indicator, data: np.ndarray) -> np.ndarray:
    """Mean of the finite rows of ``data`` selected by each row of ``indicator`` (NaN if none)."""
    finite = np.isfinite(data)
    sums = indicator @ np.where(finite, data, 0).astype(np.float64)
    counts = indicator @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def labels_on_grid(atlas: ParcelAtlas, shape, affine):
    """The volume atlas resampled (nearest neighbour) to a BOLD grid.

    Parameters
    ----------
    atlas : ParcelAtlas
        A volume atlas.
    shape : tuple of int
        Grid shape; only the first 3 entries are used.
    affine : ndarray, shape (4, 4)
        Voxel-to-mm affine of the grid.

    Returns
    -------
    nibabel.Nifti1Image
        Integer labels on the grid (the atlas itself when the grids are equal).
    """
    import nibabel as nib
    from nilearn.image import resample_img

    shape = tuple(int(s) for s in shape[:3])
    labels = atlas.volume_labels
    if labels.shape[:3] == shape and np.allclose(labels.affine, affine, atol=1e-4):
        return labels
    logger.info(
        "Resampling the %s atlas (%s) to the BOLD grid %s with nearest neighbour.",
        atlas.space,
        labels.shape,
        shape,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))
        resampled = resample_img(
            labels, target_affine=np.asarray(affine), target_shape=shape, interpolation="nearest"
        )
    data = np.rint(np.asanyarray(resampled.dataobj)).astype(np.int32)
    return nib.Nifti1Image(data, resampled.affine)


def _check_empty(means: np.ndarray, atlas: ParcelAtlas, what: str) -> None:
    """DataError when more than half of the parcels have no data (all NaN) or are flat
    (the same value in every volume); a warning naming them when fewer are."""
    empty = np.isnan(means).all(axis=1)
    flat = np.zeros_like(empty)
    if means.shape[1] > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
            flat = ~empty & ~(np.nanmax(means, axis=1) > np.nanmin(means, axis=1))
    bad = np.flatnonzero(empty | flat)
    if bad.size == 0:
        return
    n_empty, n_flat = int(empty.sum()), int(flat.sum())
    if bad.size > atlas.n_parcels / 2:
        if n_empty >= n_flat:
            raise DataError(
                f"{what}: {bad.size} of {atlas.n_parcels} parcels of the {atlas.space} atlas "
                f"have no data (NaN{f' or flat in {n_flat}' if n_flat else ''}); check that the "
                f"BOLD is in {atlas.space} (--bold-space) and holds finite values, or re-export "
                "the BOLD run."
            )
        raise DataError(
            f"{what}: {bad.size} of {atlas.n_parcels} parcels of the {atlas.space} atlas are "
            f"flat (the same value in every volume{f'; {n_empty} have no data' if n_empty else ''}"
            "): the BOLD run holds no signal there; check the file and re-export the BOLD run."
        )
    logger.warning(
        "%s: of %d parcels, %d have no data (NaN) and %d are flat (constant); check the "
        "BOLD coverage there: %s",
        what,
        atlas.n_parcels,
        n_empty,
        n_flat,
        [atlas.names[i] for i in bad[:10]],
    )


def _bold_name(bold) -> str:
    name = getattr(bold, "get_filename", lambda: None)()
    return Path(name).name if name else "the BOLD data"


def parcellate_bold(bold, atlas: ParcelAtlas, *, name: str | None = None) -> np.ndarray:
    """Mean BOLD signal of each parcel.

    Surface and CIFTI data: the mean over each parcel's vertices or grayordinates, NaN values
    ignored, computed with a sparse (n_parcels, n_vertices) indicator matrix. Volume data: nilearn's
    ``NiftiLabelsMasker(strategy="mean")`` with the atlas resampled to the BOLD grid (nearest
    neighbour) when the grids differ (:func:`labels_on_grid`).

    Parameters
    ----------
    bold : ndarray | nibabel.Nifti1Image | nibabel.Cifti2Image | path-like
        Surface atlases: (n_vertices_lh + n_vertices_rh, n_volumes) as returned by
        :func:`~samba_bids.bold.load_surface_bold` (left then right). Volume atlases: a 4-D
        BOLD image (:func:`~samba_bids.bold.load_volume_bold`) or its path. CIFTI atlases:
        (n_grayordinates, n_volumes) as returned by :func:`~samba_bids.bold.load_cifti_bold`
        (in the atlas's grayordinate order), or a dtseries ``Cifti2Image`` or its path (whose
        grayordinates must be the atlas's).
    atlas : ParcelAtlas
        Atlas of the BOLD space (:func:`load_bold_atlas`).
    name : str | None
        Name of the BOLD run in error messages (e.g. its file names); by default the image's
        file name, or "the surface BOLD".

    Returns
    -------
    ndarray of float64, shape (n_parcels, n_volumes)
        Row ``k`` is parcel ``k + 1`` (``atlas.names[k]``), in the units of the BOLD. Parcels
        without any (finite) vertex or voxel in the data are NaN.

    Raises
    ------
    DataError
        If surface or CIFTI data have a vertex or grayordinate count other than the atlas's
        (or a CIFTI image's grayordinates differ from the atlas's), the data are not 2-D
        (surface, CIFTI array) or 4-D (volume), or more than half of the parcels have no data.
    """
    if atlas.kind == "surface":
        data = np.asarray(bold)
        name = name or "The surface BOLD"
        if data.ndim != 2:
            raise DataError(f"{name} must be (n_vertices, n_volumes); got shape {data.shape}.")
        if data.shape[0] != atlas.n_vertices:
            n_lh = atlas.surface_labels["lh"].size
            raise DataError(
                f"{name} has {data.shape[0]} vertices but the {atlas.space} atlas has "
                f"{atlas.n_vertices} ({n_lh} per hemisphere); pass the --bold-space that the "
                f"BOLD was sampled to (the {atlas.space} atlas expects {atlas.space} GIFTIs)."
            )
        means = _nan_mean(_surface_averaging_matrix(atlas), data)
        _check_empty(means, atlas, name)
        return means
    if atlas.kind == "cifti":
        return _parcellate_cifti(bold, atlas, name)

    import nibabel as nib
    from nilearn.maskers import NiftiLabelsMasker

    img = nib.load(str(bold)) if isinstance(bold, (str, Path)) else bold
    name = name or _bold_name(img)
    if len(img.shape) != 4:
        raise DataError(f"{name} has shape {img.shape}; a BOLD run must be 4-D.")
    labels = labels_on_grid(atlas, img.shape, img.affine)
    means = np.full((atlas.n_parcels, img.shape[3]), np.nan)
    if not np.asanyarray(labels.dataobj).any():  # no parcel within the field of view
        _check_empty(means, atlas, name)
    masker = NiftiLabelsMasker(
        labels_img=labels, strategy="mean", resampling_target="data", standardize=_NO_STANDARDIZE
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))
        signals = masker.fit_transform(img)  # (n_volumes, n_present)
    region_ids = getattr(masker, "region_ids_", None)
    if region_ids is not None:
        columns = [region_ids[i] for i in range(signals.shape[1])]
    else:  # older nilearn: one column per label present, in sorted order
        present = np.unique(np.asanyarray(labels.dataobj))
        columns = [int(v) for v in present if v != 0]
    if len(columns) != signals.shape[1]:
        raise RuntimeError(
            f"nilearn returned {signals.shape[1]} parcel columns for {len(columns)} labels"
        )
    means[np.asarray(columns, dtype=int) - 1] = signals.T
    _check_empty(means, atlas, name)
    return means


def _parcellate_cifti(bold, atlas: ParcelAtlas, name: str | None) -> np.ndarray:
    import nibabel as nib

    if isinstance(bold, (str, Path)):
        data, _, _ = load_cifti_bold(bold, atlas=atlas)
        name = name or Path(bold).name
    elif isinstance(bold, nib.Cifti2Image):
        name = name or _bold_name(bold)
        data, brain_models, _ = _cifti_series(bold, name)
        _check_brain_models(brain_models, atlas, name)
    else:
        data = np.asarray(bold)
        name = name or "The CIFTI BOLD"
        if data.ndim != 2:
            raise DataError(
                f"{name} must be (n_grayordinates, n_volumes); got shape {data.shape}."
            )
    if data.shape[0] != atlas.n_grayordinates:
        raise DataError(
            f"{name} has {data.shape[0]} grayordinates but the {atlas.space} atlas has "
            f"{atlas.n_grayordinates}; pass the fsLR 91k dtseries (fMRIPrep "
            "--cifti-output 91k) as the BOLD run."
        )
    means = _nan_mean(_averaging_matrix(atlas.grayordinate_labels, atlas.n_parcels), data)
    _check_empty(means, atlas, name)
    return means


def _nilearn_standardize_off():
    """``standardize`` value meaning "no scaling" without nilearn's FutureWarning."""
    import nilearn

    try:
        major, minor = (int(x) for x in nilearn.__version__.split(".")[:2])
    except ValueError:
        return False
    return None if (major, minor) >= (0, 14) else False


_NO_STANDARDIZE = _nilearn_standardize_off()


def clean_parcel_bold(signals, *, tr_s: float, confounds=None) -> np.ndarray:
    """Regress confounds out of parcel BOLD and remove linear trends.

    Calls ``nilearn.signal.clean(signals.T, detrend=True, standardize=False,
    confounds=confounds, t_r=tr_s)`` (no temporal filtering) on the parcels with finite
    values; NaN parcels stay NaN. Signals are not z-scored here: the workflow scales them
    with training-block statistics.

    Parameters
    ----------
    signals : ndarray, shape (n_parcels, n_volumes)
        Parcel BOLD (:func:`parcellate_bold`).
    tr_s : float
        Repetition time in s.
    confounds : pandas.DataFrame | ndarray, shape (n_volumes, n_confounds) | None
        Nuisance regressors (:func:`~samba_bids.bold.select_confounds`); None for detrending
        only.

    Returns
    -------
    ndarray of float64, shape (n_parcels, n_volumes)
        Residuals, with mean 0 for each parcel.

    Raises
    ------
    DataError
        If the confounds have a number of rows other than the number of volumes.
    """
    from nilearn.signal import clean

    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2:
        raise ValueError(f"signals must be (n_parcels, n_volumes); got shape {signals.shape}")
    if not tr_s or tr_s <= 0:
        raise ValueError(f"tr_s must be > 0; got {tr_s!r}")
    n_volumes = signals.shape[1]
    conf = None
    if confounds is not None:
        conf = np.asarray(confounds, dtype=np.float64)
        if conf.ndim == 1:
            conf = conf[:, None]
        if conf.shape[0] != n_volumes:
            raise DataError(
                f"The confounds table has {conf.shape[0]} rows but the BOLD run has {n_volumes} "
                "volumes; use the confounds file of the same run (or --confounds none)."
            )
        if conf.shape[1] == 0:
            conf = None
    out = np.full_like(signals, np.nan)
    good = np.isfinite(signals).all(axis=1)
    if good.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            out[good] = clean(
                signals[good].T,
                detrend=True,
                standardize=_NO_STANDARDIZE,
                confounds=conf,
                t_r=float(tr_s),
            ).T
    if (~good).any():
        logger.warning("%d parcels with non-finite values left as NaN.", int((~good).sum()))
    return out
