"""BOLD stage: loading per space, confounds, parcellation, projection back to the space."""

from .loading import (
    CONFOUND_STRATEGIES,
    FMRIPREP_AUTO_CONFOUNDS,
    bold_repetition_time,
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
from .projection import project_parcels, save_image

__all__ = [
    "CONFOUND_STRATEGIES",
    "FMRIPREP_AUTO_CONFOUNDS",
    "SUPPORTED_SPACES",
    "ParcelAtlas",
    "bold_repetition_time",
    "clean_parcel_bold",
    "labels_on_grid",
    "load_bold_atlas",
    "load_surface_bold",
    "load_volume_bold",
    "parcellate_bold",
    "project_parcels",
    "save_image",
    "select_confounds",
]
