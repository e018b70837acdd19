"""BOLD stage: loading per space (GIFTI, NIfTI, CIFTI), confounds, parcellation, projection."""

from .loading import (
    CONFOUND_STRATEGIES,
    FMRIPREP_AUTO_CONFOUNDS,
    bold_repetition_time,
    load_cifti_bold,
    load_surface_bold,
    load_volume_bold,
    select_confounds,
)
from .parcellation import (
    SUPPORTED_SPACES,
    ParcelAtlas,
    clean_parcel_bold,
    labels_on_grid,
    load_bold_atlas,
    parcellate_bold,
)
from .projection import (
    parcel_map_images,
    parcel_series_cifti,
    parcels_axis,
    project_parcels,
    save_image,
)

__all__ = [
    "CONFOUND_STRATEGIES",
    "FMRIPREP_AUTO_CONFOUNDS",
    "SUPPORTED_SPACES",
    "ParcelAtlas",
    "bold_repetition_time",
    "clean_parcel_bold",
    "labels_on_grid",
    "load_bold_atlas",
    "load_cifti_bold",
    "load_surface_bold",
    "load_volume_bold",
    "parcel_map_images",
    "parcel_series_cifti",
    "parcellate_bold",
    "parcels_axis",
    "project_parcels",
    "save_image",
    "select_confounds",
]
