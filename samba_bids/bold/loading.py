"""Read preprocessed BOLD runs (GIFTI pairs, 4-D NIfTI or CIFTI), their TR and their confounds.

Surface runs follow fMRIPrep's naming: one ``_hemi-L_..._bold.func.gii`` and one
``_hemi-R_..._bold.func.gii`` per run, one data array per volume. Volume runs are one 4-D
``_bold.nii(.gz)``. Grayordinate runs are one ``_space-fsLR_den-91k_bold.dtseries.nii``
(fMRIPrep ``--cifti-output``). Every error raised for bad input names the offending file and
the fix.
"""

from __future__ import annotations

import logging
import math
import zlib
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, NoInputError, UsageError
from ._io import (
    _CIFTI_FIX,
    _check_brain_models,
    _cifti_axes,
    _cifti_series,
    _gifti_file_meta,
    _gifti_hemi,
)

logger = logging.getLogger(__name__)

#: Confounds used by ``strategy="auto"`` when the table has fMRIPrep's column names:
#: the six rigid-body motion parameters, their temporal derivatives, and the mean CSF and
#: white-matter signals (the "9P + derivatives of motion" family, without global signal).
FMRIPREP_AUTO_CONFOUNDS = (
    "trans_x",
    "trans_y",
    "trans_z",
    "rot_x",
    "rot_y",
    "rot_z",
    "trans_x_derivative1",
    "trans_y_derivative1",
    "trans_z_derivative1",
    "rot_x_derivative1",
    "rot_y_derivative1",
    "rot_z_derivative1",
    "csf",
    "white_matter",
)
CONFOUND_STRATEGIES = ("auto", "all", "none")

_TR_FIX = "add RepetitionTime (s) to its JSON sidecar or pass --repetition-time"
_NIFTI_TIME_TO_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def _as_path_list(files) -> list[Path]:
    if isinstance(files, (str, PathLike)):
        return [Path(files)]
    return [Path(f) for f in files]


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise NoInputError(f"{path} does not exist; check the BOLD run selected for this pair.")


def _load_bold_image(path: Path, image_class, kind: str, fix: str, expected: str):
    """``nib.load`` of a BOLD run that must be an ``image_class``; clear errors otherwise.

    Raises
    ------
    NoInputError
        If the file does not exist.
    DataError
        If nibabel cannot read it (``fix`` says what to do) or it is another kind of image.
    """
    import nibabel as nib

    _check_exists(path)
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for unreadable headers
        raise DataError(
            f"{path.name} is not a readable {kind} file ({type(err).__name__}: {err}); {fix}."
        ) from err
    if not isinstance(img, image_class):
        raise DataError(f"{path.name} is not a {kind} image; pass the run's {expected}.")
    return img


def _is_gifti(path: Path) -> bool:
    return path.name.endswith(".gii")


def bold_repetition_time(files, tr_s: float | None = None) -> float:
    """Repetition time of a BOLD run, in s.

    Sources, in order: ``tr_s`` (``RepetitionTime`` of the JSON sidecar via pybids, or
    ``--repetition-time``), then the NIfTI header (``pixdim[4]`` converted with its
    ``xyzt_units``; ms and us are converted to s, unknown units are read as s), then the
    GIFTI file meta ``TimeStep`` (in ms, as written by fMRIPrep and Connectome Workbench),
    then the ``step`` of a CIFTI dtseries' series axis (unit ``SECOND``; nibabel applies the
    series exponent, so the value is in s).

    Parameters
    ----------
    files : path-like | sequence of path-like
        The run's ``_bold.nii(.gz)``, its two ``_bold.func.gii`` files (``TimeStep`` of
        both is read and must agree), or its ``_bold.dtseries.nii``.
    tr_s : float | None
        Repetition time given by the caller, in s; used as is when not None.

    Returns
    -------
    float
        Repetition time in s, > 0.

    Raises
    ------
    NoInputError
        If a file does not exist.
    DataError
        If no TR is found, the values of a GIFTI pair disagree, or the TR is <= 0.
    """
    paths = _as_path_list(files)
    if not paths:
        raise UsageError("bold_repetition_time() needs at least one BOLD file.")
    name = paths[0].name
    if tr_s is not None:
        tr = float(tr_s)
        if not math.isfinite(tr) or tr <= 0:
            raise DataError(f"{name}: repetition time {tr_s!r} is not > 0; {_TR_FIX}.")
        return tr

    import nibabel as nib

    values = []
    for path in paths:
        _check_exists(path)
        if _is_gifti(path):
            raw = _gifti_file_meta(path).get("TimeStep")
            if raw is None:
                continue
            try:
                values.append((path, float(raw) / 1000.0))
            except ValueError:
                raise DataError(
                    f"{path.name}: GIFTI TimeStep {raw!r} is not a number; {_TR_FIX}."
                ) from None
        else:
            try:
                img = nib.load(str(path))
            except Exception as err:  # nibabel raises many types for unreadable headers
                raise DataError(
                    f"{path.name} is not a readable NIfTI file ({err}); re-export the BOLD run."
                ) from err
            if isinstance(img, nib.Cifti2Image):
                _, series = _cifti_axes(img, path.name)
                if series.unit != "SECOND":
                    raise DataError(
                        f"{path.name}: its series axis is in {series.unit}, not SECOND; "
                        f"{_TR_FIX}."
                    )
                values.append((path, float(series.step)))
                continue
            header = img.header
            if len(header.get_data_shape()) < 4:
                continue
            unit = header.get_xyzt_units()[1]
            zoom = float(header.get_zooms()[3])
            if unit not in _NIFTI_TIME_TO_S:
                logger.warning(
                    "%s: time units of the NIfTI header are %r; reading pixdim[4] = %g as s.",
                    path.name,
                    unit,
                    zoom,
                )
            values.append((path, zoom * _NIFTI_TIME_TO_S.get(unit, 1.0)))
    if not values:
        raise DataError(f"{name} does not state its repetition time; {_TR_FIX}.")
    trs = [v for _, v in values]
    if not np.allclose(trs, trs[0], rtol=1e-6):
        listing = ", ".join(f"{p.name}: {v:g} s" for p, v in values)
        raise DataError(f"The hemispheres disagree on the repetition time ({listing}); {_TR_FIX}.")
    tr = trs[0]
    if not math.isfinite(tr) or tr <= 0:
        raise DataError(f"{name}: repetition time in its header is {tr:g} s (not > 0); {_TR_FIX}.")
    logger.debug("Repetition time %g s from the header of %s.", tr, name)
    return tr


def _gifti_time_series(path: Path):
    """Load one GIFTI hemisphere; return (data (n_vertices, n_volumes) float32, meta)."""
    import nibabel as nib

    img = _load_bold_image(path, nib.GiftiImage, "GIFTI",
                           "re-export the BOLD run (it may be truncated)", "_bold.func.gii files")
    arrays = [d.data for d in img.darrays]
    if not arrays:
        raise DataError(f"{path.name} holds no data arrays; re-export the BOLD run.")
    if len(arrays) == 1 and np.ndim(arrays[0]) == 2:
        data = np.asarray(arrays[0], dtype=np.float32)  # one (n_vertices, n_volumes) array
    elif all(np.ndim(a) == 1 for a in arrays) and len({a.shape for a in arrays}) == 1:
        data = np.stack([np.asarray(a, dtype=np.float32) for a in arrays], axis=1)
    else:
        shapes = sorted({np.shape(a) for a in arrays})
        raise DataError(
            f"{path.name}: data arrays have shapes {shapes}; expected one array of "
            "n_vertices values per volume."
        )
    return data, dict(img.meta)


def load_surface_bold(files) -> tuple[np.ndarray, int]:
    """Load a surface BOLD run from its left and right hemisphere GIFTI files.

    Parameters
    ----------
    files : sequence of path-like, length 2
        The run's ``_hemi-L_..._bold.func.gii`` and ``_hemi-R_..._bold.func.gii``, in any
        order. The hemisphere is read from the ``hemi`` entity of the name, else from the
        file meta ``AnatomicalStructurePrimary``.

    Returns
    -------
    data : ndarray of float32, shape (n_vertices_lh + n_vertices_rh, n_volumes)
        Left hemisphere vertices first, then right, in the units of the input.
    n_vertices_lh : int
        Number of left hemisphere vertices (rows ``data[:n_vertices_lh]``).

    Raises
    ------
    NoInputError
        If a file does not exist.
    DataError
        If a hemisphere is missing or given twice, a file is unreadable or truncated, the
        hemispheres differ in their number of volumes, or all values are NaN.
    """
    paths = _as_path_list(files)
    loaded = {}
    for path in paths:
        data, meta = _gifti_time_series(path)
        hemi = _gifti_hemi(meta, path)
        if hemi is None:
            raise DataError(
                f"{path.name}: cannot tell its hemisphere; name it with hemi-L or hemi-R "
                "(fMRIPrep naming)."
            )
        if hemi in loaded:
            raise DataError(
                f"{path.name} and {loaded[hemi][0].name} are both hemi-{hemi}; pass one "
                "hemi-L and one hemi-R file of the same run."
            )
        loaded[hemi] = (path, data)
    missing = [h for h in ("L", "R") if h not in loaded]
    if missing:
        given = ", ".join(p.name for p in paths) or "no files"
        raise DataError(
            f"The surface BOLD run ({given}) lacks its hemi-{missing[0]} GIFTI; add the "
            f"matching _hemi-{missing[0]}_..._bold.func.gii next to it."
        )
    (path_l, data_l), (path_r, data_r) = loaded["L"], loaded["R"]
    if data_l.shape[1] != data_r.shape[1]:
        raise DataError(
            f"{path_l.name} has {data_l.shape[1]} volumes but {path_r.name} has "
            f"{data_r.shape[1]}; both hemispheres must come from the same run."
        )
    data = np.concatenate([data_l, data_r], axis=0)
    if np.isnan(data).all():
        raise DataError(f"{path_l.name} and {path_r.name} hold only NaN; re-export the BOLD run.")
    logger.info(
        "Loaded surface BOLD %s + %s: %d + %d vertices, %d volumes.",
        path_l.name,
        path_r.name,
        data_l.shape[0],
        data_r.shape[0],
        data.shape[1],
    )
    return data, int(data_l.shape[0])


def load_volume_bold(file):
    """Load a 4-D volume BOLD run into memory as float32.

    The voxel data are read once (as float32, never float64) so that a truncated file fails
    here with a clear message rather than deep inside parcellation.

    Parameters
    ----------
    file : path-like
        The run's ``_bold.nii`` or ``_bold.nii.gz``.

    Returns
    -------
    nibabel.Nifti1Image
        Shape (n_x, n_y, n_z, n_volumes), float32 data, the input's affine and header
        (zooms, including the TR in ``pixdim[4]``, and units kept).

    Raises
    ------
    NoInputError
        If the file does not exist.
    DataError
        If the file is unreadable or truncated, not 4-D, or holds only NaN.
    """
    import nibabel as nib

    path = Path(file)
    # Nifti2Image subclasses Nifti1Image
    img = _load_bold_image(path, nib.Nifti1Image, "NIfTI", "re-export the BOLD run",
                           "_bold.nii(.gz)")
    if len(img.shape) != 4:
        raise DataError(
            f"{path.name} has shape {img.shape}; a BOLD run must be 4-D (x, y, z, volumes)."
        )
    try:
        data = img.get_fdata(dtype=np.float32)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(
            f"{path.name} is truncated or corrupt ({type(err).__name__}: {err}); re-copy or "
            "re-export the BOLD run."
        ) from err
    if np.isnan(data).all():
        raise DataError(f"{path.name} holds only NaN; re-export the BOLD run.")
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    out = img.__class__(data, img.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    logger.info("Loaded volume BOLD %s: shape %s.", path.name, img.shape)
    return out


def load_cifti_bold(file, *, atlas=None):
    """Load a grayordinate BOLD run (CIFTI-2 dense time series) into memory.

    The data are read once (as float32) so that a truncated file fails here with a clear
    message rather than deep inside parcellation.

    Parameters
    ----------
    file : path-like
        The run's ``_bold.dtseries.nii`` (e.g. fMRIPrep's
        ``sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii``).
    atlas : samba_bids.bold.ParcelAtlas | None
        A CIFTI atlas (:func:`~samba_bids.bold.load_bold_atlas` with ``space="fsLR"``); when
        given, the run's grayordinates must be the atlas's.

    Returns
    -------
    data : ndarray of float32, shape (n_grayordinates, n_volumes)
        BOLD per grayordinate (fsLR 91k: 91,282) and volume, in the units of the input, in
        the order of ``brain_models``.
    brain_models : nibabel.cifti2.cifti2_axes.BrainModelAxis
        The run's grayordinates (structures, vertex and voxel indices, volume affine).
    tr_s : float | None
        Repetition time in s: the series axis ``step`` (nibabel applies the series exponent);
        None (with a warning) when the series unit is not ``SECOND`` or the step is not > 0.

    Raises
    ------
    NoInputError
        If the file does not exist.
    DataError
        If the file is unreadable or truncated, not a dense time series (SeriesAxis x
        BrainModelAxis), holds only NaN, or (``atlas`` given) its grayordinates are not the
        atlas's.
    """
    import nibabel as nib

    path = Path(file)
    img = _load_bold_image(path, nib.Cifti2Image, "CIFTI-2", _CIFTI_FIX, "_bold.dtseries.nii")
    data, brain_models, tr_s = _cifti_series(img, path.name)
    if atlas is not None:
        _check_brain_models(brain_models, atlas, path.name)
    if np.isnan(data).all():
        raise DataError(f"{path.name} holds only NaN; {_CIFTI_FIX}.")
    logger.info("Loaded CIFTI BOLD %s: %d grayordinates, %d volumes.", path.name, *data.shape)
    return data, brain_models, tr_s


def select_confounds(confounds_tsv, strategy: str = "auto") -> pd.DataFrame | None:
    """Choose the nuisance regressors of a BOLD run from its confounds table.

    Parameters
    ----------
    confounds_tsv : path-like
        Tab-separated table with one row per volume (fMRIPrep's
        ``_desc-confounds_timeseries.tsv`` or any table of regressors); ``n/a`` is read as NaN.
    strategy : {'auto', 'all', 'none'}
        ``'none'``: no regression. ``'all'``: every column. ``'auto'``: when fMRIPrep's
        column names are present, the columns of :data:`FMRIPREP_AUTO_CONFOUNDS` that exist
        (6 motion parameters, their ``_derivative1``, ``csf``, ``white_matter``); when none of
        them is present, every column, with a warning.

    Returns
    -------
    pandas.DataFrame | None
        Shape (n_volumes, n_confounds), float64, NaN replaced by 0 (fMRIPrep's first-row
        derivatives) and constant columns dropped; None for ``'none'`` or when no
        non-constant column remains.

    Raises
    ------
    UsageError
        If ``strategy`` is not one of the above.
    NoInputError
        If the file does not exist.
    DataError
        If the table cannot be parsed, is empty, or holds non-numeric values.
    """
    # Not nilearn.interfaces.fmriprep.load_confounds: with the nearest strategy
    # (strategy=("motion", "wm_csf"), motion="derivatives", wm_csf="basic", demean=False;
    # nilearn 0.14) it selects otherwise (tests/test_bold.py::
    # test_nilearn_load_confounds_is_not_our_auto_selection):
    # - tables without fMRIPrep's names (the real ds-real-rest table: confound_00..28) raise
    #   ValueError, where "auto" falls back to every non-constant column;
    # - tables with part of the columns (no white_matter, or no _derivative1 columns as in
    #   the synthetic datasets) raise KeyError / ValueError, where "auto" keeps those present;
    # - on a complete table it back-fills the first row's NaN of the derivatives with the
    #   second row's value, where we put 0 (so the regressors, hence the outputs, differ);
    #   it also sorts the columns by name and keeps constant ones;
    # - it needs the BOLD file name in fMRIPrep naming beside the table
    #   (``_desc-preproc_bold.nii.gz``; a plain ``_bold.nii.gz`` is refused), where this
    #   function gets the table alone; and "all" has no nilearn strategy.
    if strategy not in CONFOUND_STRATEGIES:
        raise UsageError(
            f"Unknown confound strategy {strategy!r}; choose one of "
            f"{', '.join(CONFOUND_STRATEGIES)}."
        )
    if strategy == "none":
        return None
    path = Path(confounds_tsv)
    _check_exists(path)
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path.name} cannot be parsed as a tab-separated table ({err}); fix the file or "
            "pass --confounds none."
        ) from err
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise DataError(f"{path.name} has no rows or no columns; fix it or pass --confounds none.")
    if strategy == "auto":
        chosen = [c for c in FMRIPREP_AUTO_CONFOUNDS if c in table.columns]
        if chosen:
            table = table[chosen]
        else:
            logger.warning(
                "%s has none of fMRIPrep's confound names (%s, ...); regressing out all of "
                "its %d columns. Pass --confounds none or all to choose explicitly.",
                path.name,
                ", ".join(FMRIPREP_AUTO_CONFOUNDS[:3]),
                table.shape[1],
            )
    try:
        table = table.apply(pd.to_numeric, errors="raise").astype(np.float64)
    except (ValueError, TypeError) as err:
        raise DataError(
            f"{path.name} holds non-numeric values ({err}); fix the file or pass --confounds none."
        ) from err
    table = table.fillna(0.0)
    constant = [c for c in table.columns if np.ptp(table[c].to_numpy()) == 0]
    if constant:
        logger.info("%s: dropping %d constant column(s): %s.", path.name, len(constant), constant)
        table = table.drop(columns=constant)
    if table.shape[1] == 0:
        logger.warning("%s: no non-constant confound column left; no regression.", path.name)
        return None
    logger.info("Confounds from %s (%s): %s.", path.name, strategy, list(table.columns))
    return table
