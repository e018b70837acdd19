"""GIFTI and CIFTI helpers shared by the BOLD modules (loading, parcellation, projection).

This module imports no other module of ``samba_bids.bold``, so that the BOLD modules form a
DAG: ``_io`` <- ``loading`` <- ``parcellation`` <- ``projection``.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

logger = logging.getLogger(__name__)

_HEMI_RE = re.compile(r"(?:^|_)hemi-(L|R)(?=[_.])")
#: GIFTI ``AnatomicalStructurePrimary`` to hemisphere, and back.
_STRUCTURE_HEMI = {"CortexLeft": "L", "CortexRight": "R"}
_HEMI_STRUCTURE = {"L": "CortexLeft", "R": "CortexRight"}
_CIFTI_FIX = "re-export the BOLD run (fMRIPrep --cifti-output 91k, or wb_command)"


def _hemi_from_name(path: Path) -> str | None:
    match = _HEMI_RE.search(path.name)
    return match.group(1) if match else None


def _gifti_hemi(meta, path: Path | None = None) -> str | None:
    """'L'/'R' from the ``hemi`` entity of ``path``, else from ``AnatomicalStructurePrimary``."""
    hemi = _hemi_from_name(path) if path is not None else None
    return hemi or _STRUCTURE_HEMI.get(meta.get("AnatomicalStructurePrimary"))


def _gifti_file_meta(path: Path) -> dict[str, str]:
    """File-level ``<MetaData>`` of a GIFTI file, read without decoding its data arrays."""
    meta: dict[str, str] = {}
    depth = 0
    try:
        for event, elem in ET.iterparse(str(path), events=("start", "end")):
            if event == "start":
                depth += 1
                if elem.tag == "DataArray":
                    break
                continue
            depth -= 1
            # <GIFTI> (1) > <MetaData> (2) > <MD> (3) > <Name>/<Value> (4)
            if elem.tag == "MD" and depth == 2:
                name, value = elem.findtext("Name"), elem.findtext("Value")
                if name is not None:
                    meta[name.strip()] = (value or "").strip()
    except ET.ParseError as err:
        raise DataError(
            f"{path.name} is not a readable GIFTI file ({err}); re-export the BOLD run "
            "(e.g. rerun fMRIPrep's surface sampling)."
        ) from err
    return meta


def _cifti_axes(img, name: str):
    """(BrainModelAxis, SeriesAxis) of a dtseries image; DataError for any other CIFTI."""
    from nibabel.cifti2.cifti2_axes import BrainModelAxis, SeriesAxis

    try:
        axes = [img.header.get_axis(i) for i in range(img.ndim)]
    except Exception as err:
        raise DataError(
            f"{name}: its CIFTI-2 header has no valid index maps ({err}); {_CIFTI_FIX}."
        ) from err
    kinds = {type(a) for a in axes}
    if len(axes) != 2 or kinds != {BrainModelAxis, SeriesAxis}:
        found = " x ".join(type(a).__name__ for a in axes)
        raise DataError(
            f"{name} is a {found} CIFTI file, not a dense time series (SeriesAxis x "
            f"BrainModelAxis, .dtseries.nii); pass the run's _bold.dtseries.nii."
        )
    brain_models = next(a for a in axes if isinstance(a, BrainModelAxis))
    series = next(a for a in axes if isinstance(a, SeriesAxis))
    return brain_models, series


def _cifti_series(img, name: str):
    """Data of a dtseries image as (n_grayordinates, n_volumes) float32, its axes' facts.

    Returns (data, brain_models, tr_s); tr_s is None when the series axis is not in seconds
    or its step is not > 0.
    """
    from nibabel.cifti2.cifti2_axes import BrainModelAxis

    brain_models, series = _cifti_axes(img, name)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(
            f"{name} is truncated or corrupt: its header reads but its data block does not "
            f"({type(err).__name__}: {str(err).splitlines()[0]}); re-copy the file or "
            f"{_CIFTI_FIX}."
        ) from err
    if not isinstance(img.header.get_axis(0), BrainModelAxis):
        data = data.T  # the usual (volumes, grayordinates) -> grayordinates x volumes
    data = np.ascontiguousarray(data)
    tr_s = float(series.step)
    if series.unit != "SECOND" or not math.isfinite(tr_s) or tr_s <= 0:
        logger.warning("%s: series axis step %g %s is not a repetition time in s.",
                       name, series.step, series.unit)
        tr_s = None
    return data, brain_models, tr_s


def _check_brain_models(brain_models, atlas, name: str) -> None:
    """DataError unless ``brain_models`` are the grayordinates of ``atlas`` (a CIFTI
    :class:`~samba_bids.bold.ParcelAtlas`)."""
    if len(brain_models) != atlas.n_grayordinates:
        raise DataError(
            f"{name} has {len(brain_models)} grayordinates but the {atlas.space} atlas has "
            f"{atlas.n_grayordinates}; pass the fsLR 91k dtseries (fMRIPrep "
            "--cifti-output 91k) as the BOLD run."
        )
    if brain_models != atlas.brain_models:
        raise DataError(
            f"{name} has {len(brain_models)} grayordinates, as many as the {atlas.space} atlas, "
            "but its brain structures, vertices or voxels differ from the atlas's; resample it "
            "to the standard HCP 91k grayordinates (wb_command -cifti-resample)."
        )
