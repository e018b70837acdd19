"""Electrophysiology stage: reading, MR artefact removal, preprocessing, forward/inverse,
parcel time courses."""

from .artifacts import MRArtifactRemoval, detect_gradient_artifact, plan_mr_artifacts
from .forward import make_template_forward, template_labels
from .preprocessing import detect_modality, preprocess_raw, read_ephys
from .source import (
    SourceParcels,
    compute_source_parcels,
    empty_room_noise_cov,
    make_inverse,
    make_parcel_kernel,
    parcel_time_courses,
)

__all__ = [
    "MRArtifactRemoval",
    "SourceParcels",
    "compute_source_parcels",
    "detect_gradient_artifact",
    "detect_modality",
    "empty_room_noise_cov",
    "make_inverse",
    "make_parcel_kernel",
    "make_template_forward",
    "parcel_time_courses",
    "plan_mr_artifacts",
    "preprocess_raw",
    "read_ephys",
    "template_labels",
]
