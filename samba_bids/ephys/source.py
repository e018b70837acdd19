"""Template forward and inverse models, and source-parcel time courses without the memory wall.

``apply_inverse_raw`` followed by ``extract_label_time_course`` holds an n_sources x n_times
array (74 GB for 30 min at 250 Hz on fsaverage5). Here the inverse kernel and the signed label
averaging are composed once into a parcel kernel (n_parcels x n_channels) by pushing an identity
matrix over channels through MNE's own functions; applying it streams the recording in chunks
and equals MNE's result to float precision (see ``tests/test_ephys.py``).

Head models on the template (fsaverage5 shares fsaverage's coordinates):

* MEG: single-layer inner-skull BEM from the surface MNE ships
  (``mne/data/fsaverage/fsaverage-inner_skull-bem.fif``), conductivity 0.3 S/m.
* EEG: a three-layer BEM solution when the templates folder has one
  (``<subject>/bem/*-bem-sol.fif`` or ``fsaverage/bem/*-bem-sol.fif``), else a four-shell
  sphere model fitted to the template head.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np
from threadpoolctl import threadpool_limits
from mne.minimum_norm import InverseOperator, apply_inverse_raw, make_inverse_operator
from mne.transforms import Transform, apply_trans, invert_transform

from ..errors import DataError, NoInputError, UsageError
from ..templates import (
    schaefer_annot_name,
    surface_atlas,
    surface_parcel_centroids,
    surface_subject_dir,
)

logger = logging.getLogger(__name__)

#: Inverse methods of :func:`mne.minimum_norm.apply_inverse_raw`.
INVERSE_METHODS = ("MNE", "dSPM", "sLORETA", "eLORETA")

#: MNE's shipped fsaverage files (surfaces in fsaverage MRI coordinates, also fsaverage5's).
MNE_FSAVERAGE_DIR = Path(mne.__file__).parent / "data" / "fsaverage"
FSAVERAGE_TRANS = MNE_FSAVERAGE_DIR / "fsaverage-trans.fif"
FSAVERAGE_INNER_SKULL = MNE_FSAVERAGE_DIR / "fsaverage-inner_skull-bem.fif"
FSAVERAGE_HEAD = MNE_FSAVERAGE_DIR / "fsaverage-head.fif"

#: Brain conductivity of the single-layer MEG BEM, S/m.
INNER_SKULL_CONDUCTIVITY = 0.3
#: Subdivision of the inner-skull surface used for the MEG BEM. The shipped surface is an
#: ico-5 subdivision (10,242 vertices): its BEM solution takes ~140 s and 3.4 GB and the forward
#: ~90 s; ico-4 (2,562 vertices, the grade of MNE's own fsaverage BEM) takes ~6 s and ~25 s.
INNER_SKULL_ICO = 4
#: Shell radii of the EEG sphere model relative to the scalp (brain, CSF, skull, scalp).
SPHERE_RELATIVE_RADII = (0.90, 0.92, 0.97, 1.0)
#: Minimum distance of every source from the innermost sphere shell, m.
SPHERE_SOURCE_MARGIN_M = 0.002

LOOSE = 0.2
DEPTH = 0.8
LABEL_MODE = "mean_flip"


def _check_method(method: str) -> str:
    if method not in INVERSE_METHODS:
        raise UsageError(
            f"inverse method must be one of {', '.join(INVERSE_METHODS)}, got {method!r}; "
            "pass --inverse-method with one of these."
        )
    return method


def _check_modality(modality: str) -> str:
    if modality not in ("eeg", "meg"):
        raise UsageError(f"modality must be 'eeg' or 'meg' here, got {modality!r}.")
    return modality


# --------------------------------------------------------------------------------------------
# Labels


def template_labels(templates_dir, subject: str, n_parcels: int) -> list[mne.Label]:
    """Schaefer 2018 (7 networks) labels on a template surface, in atlas order.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder (a FreeSurfer ``SUBJECTS_DIR``) holding
        ``<subject>/label/{lh,rh}.Schaefer2018_<N>Parcels_7Networks_order.annot``.
    subject : str
        Template subject, e.g. ``'fsaverage5'``.
    n_parcels : int
        100, 200 or 400.

    Returns
    -------
    list of mne.Label, length n_parcels
        Left hemisphere then right, in Schaefer order: the order of the names returned by
        :func:`samba_bids.templates.surface_atlas`. The medial wall is dropped.

    Raises
    ------
    NoInputError
        If the annotation files are missing.
    DataError
        If the annotation's labels do not match the atlas names.

    Notes
    -----
    Follows :func:`mne.read_labels_from_annot`.
    """
    subject_dir = surface_subject_dir(templates_dir, subject)
    vertex_parcels, names = surface_atlas(templates_dir, subject, n_parcels)
    labels = mne.read_labels_from_annot(
        subject,
        parc=schaefer_annot_name(n_parcels),
        subjects_dir=str(Path(templates_dir)),
        verbose=False,
    )
    by_name = {label.name: label for label in labels}
    n_lh = int(vertex_parcels["lh"].max())
    ordered = []
    for index, name in enumerate(names, start=1):
        hemi = "lh" if index <= n_lh else "rh"
        key = f"{name}-{hemi}"
        if key not in by_name:
            raise DataError(
                f"{subject_dir / 'label'}: label {key} of {schaefer_annot_name(n_parcels)} "
                "not found by MNE; replace the annotation files with the CBIG originals."
            )
        ordered.append(by_name[key])
    return ordered


# --------------------------------------------------------------------------------------------
# Cached template pieces (pure functions of their keys; copies are handed out)


@functools.lru_cache(maxsize=4)
def _cached_source_space(templates_dir: str, subject: str) -> mne.SourceSpaces:
    return mne.setup_source_space(
        subject, spacing="all", subjects_dir=templates_dir, add_dist=False, verbose=False
    )


def _source_space(templates_dir, subject: str) -> mne.SourceSpaces:
    surface_subject_dir(templates_dir, subject)  # NoInputError with the fix when absent
    for hemi in ("lh", "rh"):
        white = Path(templates_dir) / subject / "surf" / f"{hemi}.white"
        if not white.is_file():
            raise NoInputError(
                f"{white} is missing; fetch the {subject} template (surf/) into --templates-dir."
            )
    return _cached_source_space(str(Path(templates_dir).resolve()), subject).copy()


@functools.lru_cache(maxsize=1)
def _inner_skull_bem_solution() -> mne.bem.ConductorModel:
    """Single-layer BEM solution of MNE's fsaverage inner skull, downsampled to ico-4."""
    surf = mne.read_bem_surfaces(FSAVERAGE_INNER_SKULL, verbose=False)[0]
    with tempfile.TemporaryDirectory(prefix="samba-bem-") as tmp:
        # make_bem_model reads <subjects_dir>/<subject>/bem/inner_skull.surf and performs the
        # ico downsampling (checking that the surface is an icosahedron subdivision).
        bem_dir = Path(tmp) / "fsaverage" / "bem"
        bem_dir.mkdir(parents=True)
        mne.write_surface(bem_dir / "inner_skull.surf", surf["rr"] * 1000.0, surf["tris"])
        model = mne.make_bem_model(
            "fsaverage",
            ico=INNER_SKULL_ICO,
            conductivity=(INNER_SKULL_CONDUCTIVITY,),
            subjects_dir=tmp,
            verbose=False,
        )
    return mne.make_bem_solution(model, verbose=False)


def _find_three_layer_bem(templates_dir, subject: str) -> Path | None:
    """First ``*-bem-sol.fif`` with three layers in ``<subject>/bem`` or ``fsaverage/bem``."""
    templates_dir = Path(templates_dir)
    for folder in (templates_dir / subject / "bem", templates_dir / "fsaverage" / "bem"):
        for fname in sorted(folder.glob("*-bem-sol.fif")):
            try:
                surfs = mne.read_bem_surfaces(fname, verbose=False)
            except Exception as err:  # unreadable: say so and keep looking
                logger.warning("%s: not a readable BEM (%s); ignored.", fname, err)
                continue
            if len(surfs) == 3:
                return fname
    return None


@functools.lru_cache(maxsize=1)
def _read_bem_solution(fname: str) -> mne.bem.ConductorModel:
    return mne.read_bem_solution(fname, verbose=False)


def _fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points (m): centre, radius."""
    design = np.column_stack([2.0 * points, np.ones(len(points))])
    sol = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


@functools.lru_cache(maxsize=4)
def _template_sphere(templates_dir: str, subject: str) -> tuple[np.ndarray, float, float]:
    """Sphere fitted to the template scalp, enlarged to enclose every cortical source.

    Returns centre (MRI coordinates, m), scalp radius (m) and the fitted radius (m).
    """
    head = mne.read_bem_surfaces(FSAVERAGE_HEAD, verbose=False)[0]["rr"]
    mri_head = invert_transform(mne.read_trans(FSAVERAGE_TRANS, verbose=False))
    above = apply_trans(mri_head, head)[:, 2] > 0  # above the fiducial plane (no face, neck)
    centre, fitted = _fit_sphere(head[above])
    src = _cached_source_space(templates_dir, subject)
    rr = np.concatenate([s["rr"][s["vertno"]] for s in src])
    reach = np.linalg.norm(rr - centre, axis=1).max() + SPHERE_SOURCE_MARGIN_M
    radius = max(fitted, reach / SPHERE_RELATIVE_RADII[0])
    return centre, radius, fitted


def _eeg_info_in_mri(info: mne.Info, head_mri: Transform) -> mne.Info:
    """Copy of ``info`` with electrode positions moved into fsaverage MRI coordinates."""
    info = info.copy()
    for ch in info["chs"]:
        if ch["kind"] != mne.io.constants.FIFF.FIFFV_EEG_CH:
            continue
        loc = ch["loc"]
        loc[:3] = apply_trans(head_mri, loc[:3])
        if np.any(loc[3:6]):
            loc[3:6] = apply_trans(head_mri, loc[3:6])
    return info


# --------------------------------------------------------------------------------------------
# Forward and inverse


def make_template_forward(
    info: mne.Info,
    templates_dir,
    *,
    subject: str = "fsaverage5",
    modality: str,
    n_jobs: int = 1,
) -> tuple[mne.Forward, dict]:
    """Forward model of a recording on a template brain (cortical surface, all vertices).

    Parameters
    ----------
    info : mne.Info
        Measurement info of the preprocessed recording (only the modality's channels); EEG
        electrode positions in the head frame (from the BIDS ``electrodes.tsv``).
    templates_dir : path-like
        Templates folder (FreeSurfer ``SUBJECTS_DIR``) holding ``<subject>/surf/{lh,rh}.white``.
    subject : str
        Template subject; ``fsaverage5`` (10,242 vertices per hemisphere) shares fsaverage's
        coordinates, which MNE's shipped transform and BEM surfaces use.
    modality : {'eeg', 'meg'}
        Which sensors to model.
    n_jobs : int
        Parallel jobs for :func:`mne.make_forward_solution`.

    Returns
    -------
    forward : mne.Forward
        Gain matrix, shape (n_channels, 3 x n_sources), in surface orientation
        (``surf_ori=True``: normal component third), V/Am (EEG) or T/Am, T/m/Am (MEG).
    provenance : dict
        ``SourceSpace``, ``HeadModel``, ``Transform``, ``NSources`` (and ``BEM`` details) for
        sidecars and the methods boilerplate; JSON-serialisable.

    Raises
    ------
    NoInputError
        If the template's surfaces are missing.
    UsageError
        If ``modality`` is not ``'eeg'`` or ``'meg'``.

    Notes
    -----
    Follows :func:`mne.setup_source_space` (``spacing='all'``, ``add_dist=False``),
    :func:`mne.make_bem_model` / :func:`mne.make_bem_solution` (MEG: MNE's fsaverage inner
    skull, 0.3 S/m, at ico-4), :func:`mne.read_bem_solution` (EEG, three layers),
    :func:`mne.make_sphere_model`, :func:`mne.make_forward_solution` and
    :func:`mne.convert_forward_solution` (``surf_ori=True``). The head<->MRI transform is
    MNE's ``fsaverage-trans.fif``.

    The EEG sphere model is fitted to the fsaverage scalp above the fiducial plane (electrode
    positions alone cover only the top of the head and place the centre ~5 cm too high, leaving
    a quarter of the cortex outside the brain shell) and enlarged, if needed, so every source
    lies at least 2 mm inside the brain shell. It is computed with the electrodes moved into
    MRI coordinates and an identity transform, because MNE (1.13) tests the sources against a
    sphere in MRI rather than head coordinates.
    """
    _check_modality(modality)
    src = _source_space(templates_dir, subject)
    n_vertices = sum(int(s["nuse"]) for s in src)
    trans = mne.read_trans(FSAVERAGE_TRANS, verbose=False)
    provenance = {
        "SourceSpace": f"{subject}, all {n_vertices} vertices",
        "Transform": "fsaverage head<->MRI transform shipped with MNE-Python "
        "(mne/data/fsaverage/fsaverage-trans.fif)",
    }
    fwd_info, fwd_trans = info, trans
    if modality == "meg":
        bem = _inner_skull_bem_solution()
        provenance["HeadModel"] = "single-layer inner-skull BEM (MNE fsaverage)"
        provenance["BEM"] = (
            f"fsaverage inner skull (MNE), ico-{INNER_SKULL_ICO} "
            f"({len(bem['surfs'][0]['rr'])} vertices), {INNER_SKULL_CONDUCTIVITY} S/m"
        )
    else:
        bem_file = _find_three_layer_bem(templates_dir, subject)
        if bem_file is not None:
            bem = _read_bem_solution(str(bem_file))
            provenance["HeadModel"] = "three-layer BEM"
            provenance["BEM"] = str(bem_file.name)
        else:
            centre, radius, fitted = _template_sphere(str(Path(templates_dir).resolve()), subject)
            bem = mne.make_sphere_model(
                r0=centre,
                head_radius=radius,
                info=None,
                relative_radii=SPHERE_RELATIVE_RADII,
                verbose=False,
            )
            fwd_info = _eeg_info_in_mri(info, trans)
            fwd_trans = Transform("head", "mri")  # identity: everything is in MRI coordinates
            r0_mm = ", ".join(f"{v:.1f}" for v in centre * 1000)
            provenance["HeadModel"] = (
                f"sphere model fitted to the head (r0 = ({r0_mm}) mm in fsaverage MRI "
                f"coordinates, radius {radius * 1000:.1f} mm; fitted to the fsaverage scalp "
                f"above the fiducial plane ({fitted * 1000:.1f} mm), shells at "
                f"{'/'.join(f'{r:g}' for r in SPHERE_RELATIVE_RADII)} of the radius, enlarged "
                "so every source lies inside the brain shell)"
            )
            logger.info("No three-layer BEM in %s; EEG uses a sphere model.", templates_dir)
    # MNE's inside-the-skull check (scipy Delaunay.find_simplex) makes one tiny LAPACK call
    # per simplex: with threaded OpenBLAS on busy cores the MEG forward took 64-117 s instead
    # of about 25 s. One BLAS thread for this call only.
    with threadpool_limits(limits=1, user_api="blas"):
        fwd = mne.make_forward_solution(
            fwd_info,
            fwd_trans,
            src,
            bem,
            meg=modality == "meg",
            eeg=modality == "eeg",
            n_jobs=n_jobs,
            verbose=False,
        )
    fwd = mne.convert_forward_solution(fwd, surf_ori=True, verbose=False)
    provenance["NSources"] = int(fwd["nsource"])
    if fwd["nsource"] < n_vertices:
        logger.warning(
            "%d of %d template sources lie outside the head model and were dropped.",
            n_vertices - fwd["nsource"],
            n_vertices,
        )
    logger.info(
        "Forward: %d %s channels x %d sources (%s)",
        fwd["nchan"],
        modality.upper(),
        fwd["nsource"],
        provenance["HeadModel"],
    )
    return fwd, provenance


def make_inverse(
    info: mne.Info,
    forward: mne.Forward,
    *,
    method: str = "dSPM",
    snr: float = 3.0,
    noise_cov: mne.Covariance | None = None,
) -> tuple[InverseOperator, dict]:
    """Minimum-norm inverse operator (loose 0.2, depth 0.8) and its provenance.

    Parameters
    ----------
    info : mne.Info
        Measurement info of the preprocessed recording (projectors included: EEG needs its
        average-reference projector).
    forward : mne.Forward
        From :func:`make_template_forward`.
    method : {'MNE', 'dSPM', 'sLORETA', 'eLORETA'}
        Inverse method later applied with this operator (recorded in the provenance).
    snr : float
        Assumed amplitude SNR; regularisation ``lambda2 = 1 / snr**2``.
    noise_cov : mne.Covariance | None
        Noise covariance (e.g. from an empty-room recording, :func:`empty_room_noise_cov`);
        None uses :func:`mne.make_ad_hoc_cov` (diagonal: EEG 0.2 uV, gradiometers 5 fT/cm,
        magnetometers 20 fT).

    Returns
    -------
    inverse_operator : mne.minimum_norm.InverseOperator
        The operator, shape of its kernel (n_sources, n_channels) after preparation.
    provenance : dict
        ``InverseMethod``, ``SNR``, ``Lambda2``, ``SourceOrientation``, ``Loose``, ``Depth``,
        ``NoiseCovariance``, ``NoiseCovarianceRank`` (JSON-serialisable).

    Raises
    ------
    UsageError
        If ``method`` is unknown or ``snr`` is not positive.

    Notes
    -----
    Follows :func:`mne.make_ad_hoc_cov` and
    :func:`mne.minimum_norm.make_inverse_operator` (``loose=0.2, depth=0.8, rank=None``).
    The rank of the noise covariance is estimated from the covariance after the projectors
    (EEG with average reference: n_channels - 1). For Maxwell-filtered MEG with the ad hoc
    covariance this is above the SSS rank; MNE's warning about it is silenced because the
    alternative (``rank='info'``) truncates a diagonal covariance by dropping whole channels.
    An empty-room covariance (:func:`empty_room_noise_cov`) avoids the issue.
    """
    _check_method(method)
    if not snr > 0:
        raise UsageError(f"snr must be positive, got {snr!r}; pass --snr with a value > 0.")
    if noise_cov is None:
        cov = mne.make_ad_hoc_cov(info, verbose=False)
        cov_kind = (
            "ad hoc (mne.make_ad_hoc_cov: diagonal, EEG 0.2 uV, gradiometers 5 fT/cm, "
            "magnetometers 20 fT)"
        )
    else:
        cov = noise_cov
        cov_kind = f"empirical (given, e.g. empty room; {int(cov['nfree'])} degrees of freedom)"
    with warnings.catch_warnings():
        if noise_cov is None:
            # The rank is estimated from the covariance after the projectors (EEG: n - 1). For
            # Maxwell-filtered (SSS) MEG, MNE warns that this exceeds the SSS rank in the info;
            # but truncating a *diagonal* covariance to that rank (rank="info") discards whole
            # channels (a third of the magnetometers of the MNE sample data), so the ad hoc
            # covariance is used at full rank minus projectors, and the warning is expected.
            warnings.filterwarnings(
                "ignore", message="Something went wrong in the data-driven estimation",
                category=RuntimeWarning,
            )
        inv = make_inverse_operator(
            info, forward, cov, loose=LOOSE, depth=DEPTH, rank=None, verbose=False
        )
    rank = int(np.sum(inv["noise_cov"]["eig"] > 0))
    provenance = {
        "InverseMethod": method,
        "SNR": float(snr),
        "Lambda2": 1.0 / float(snr) ** 2,
        "SourceOrientation": "normal",
        "Loose": LOOSE,
        "Depth": DEPTH,
        "NoiseCovariance": cov_kind,
        "NoiseCovarianceRank": rank,
    }
    logger.info(
        "Inverse: %s, lambda2 %.4g, %s noise covariance of rank %d over %d channels",
        method, 1.0 / snr**2, cov_kind.split(" (")[0], rank, len(inv["noise_cov"]["names"]),
    )
    return inv, provenance


# --------------------------------------------------------------------------------------------
# Parcel kernel and time courses


def make_parcel_kernel(
    inverse_operator: InverseOperator,
    info: mne.Info,
    labels: list[mne.Label],
    *,
    method: str = "dSPM",
    lambda2: float = 1.0 / 9.0,
    src: mne.SourceSpaces | None = None,
) -> np.ndarray:
    """Linear map from sensor data to signed label-mean source activity.

    ``kernel @ data`` equals :func:`mne.minimum_norm.apply_inverse_raw` with
    ``pick_ori='normal'`` followed by :func:`mne.extract_label_time_course` with
    ``mode='mean_flip'``, without ever holding n_sources x n_times.

    Parameters
    ----------
    inverse_operator : mne.minimum_norm.InverseOperator
        From :func:`make_inverse` (its kernel includes the projector and whitener).
    info : mne.Info
        Info of the data the kernel will be applied to; its channel order is the kernel's
        column order, and its projectors (EEG average reference) must be those of the data.
    labels : list of mne.Label, length n_parcels
        Parcels, e.g. from :func:`template_labels`; the kernel's row order.
    method : {'MNE', 'dSPM', 'sLORETA', 'eLORETA'}
        Inverse method.
    lambda2 : float
        Regularisation, ``1 / snr**2``.
    src : mne.SourceSpaces | None
        Source space for label extraction; None uses the inverse operator's.

    Returns
    -------
    ndarray, shape (n_parcels, n_channels), float64
        Parcel kernel, in the method's units per sensor unit (dSPM: unitless F-like per V or T).
        Columns of channels the inverse does not use are zero.

    Raises
    ------
    UsageError
        If ``method`` is unknown.

    Notes
    -----
    An identity matrix over channels (``n_channels`` "samples", sample ``j`` = unit signal on
    channel ``j``) is pushed through :func:`mne.minimum_norm.apply_inverse_raw` (normal
    orientation: linear, unlike the vector norm of the loose default) and
    :func:`mne.extract_label_time_course` (``mean_flip``: fixed signs from the source normals),
    which are linear in the data; the intermediate is n_sources x n_channels.
    """
    _check_method(method)
    if src is None:
        src = inverse_operator["src"]
    n_channels = len(info["ch_names"])
    probe = mne.io.RawArray(np.eye(n_channels), info.copy(), verbose=False)
    stc = apply_inverse_raw(
        probe, inverse_operator, lambda2, method=method, pick_ori="normal", verbose=False
    )
    kernel = mne.extract_label_time_course(stc, labels, src, mode=LABEL_MODE, verbose=False)
    return np.ascontiguousarray(kernel, dtype=np.float64)


def parcel_time_courses(
    raw: mne.io.BaseRaw,
    parcel_kernel: np.ndarray,
    *,
    chunk_seconds: float = 60.0,
    progress: bool = False,
) -> np.ndarray:
    """Project sensor data to parcel time courses with a precomputed kernel, in chunks.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Preprocessed EEG/MEG, channels in the kernel's column order.
    parcel_kernel : ndarray, shape (n_parcels, n_channels)
        Inverse operator composed with signed label averaging (see :func:`make_parcel_kernel`).
    chunk_seconds : float
        Length of the chunks streamed through the kernel, in s.
    progress : bool
        Show a tqdm progress bar over chunks.

    Returns
    -------
    ndarray, shape (n_parcels, n_times), float64
        Source-parcel activity in the inverse method's units (dSPM: unitless F-like).

    Raises
    ------
    ValueError
        If the channel count differs from the kernel's, or ``chunk_seconds`` is not positive.
    """
    from tqdm.auto import tqdm

    parcel_kernel = np.asarray(parcel_kernel, dtype=np.float64)
    if parcel_kernel.ndim != 2 or parcel_kernel.shape[1] != len(raw.ch_names):
        raise ValueError(
            f"parcel_kernel has shape {parcel_kernel.shape} but the recording has "
            f"{len(raw.ch_names)} channels; build the kernel from this recording's info."
        )
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds!r}.")
    step = max(1, int(round(chunk_seconds * raw.info["sfreq"])))
    out = np.empty((parcel_kernel.shape[0], raw.n_times), dtype=np.float64)
    starts = range(0, raw.n_times, step)
    for start in tqdm(starts, desc="parcel time courses", unit="chunk", disable=not progress):
        stop = min(start + step, raw.n_times)
        out[:, start:stop] = parcel_kernel @ raw.get_data(start=start, stop=stop)
    return out


@dataclass
class SourceParcels:
    """Source-parcel time courses of one recording, with what made them.

    Attributes
    ----------
    data : ndarray, shape (n_parcels, n_times)
        Parcel activity (float64) in the inverse method's units.
    sfreq_hz : float
        Sampling rate of ``data``, Hz.
    names : list of str, length n_parcels
        Schaefer 2018 parcel names, left hemisphere then right.
    centroids_mm : ndarray, shape (n_parcels, 3)
        Parcel centroids on the template white surface, mm (fsaverage/MNI305 coordinates).
    provenance : dict
        Forward and inverse provenance plus ``ParcelKernelShape`` (JSON-serialisable).
    """

    data: np.ndarray
    sfreq_hz: float
    names: list[str]
    centroids_mm: np.ndarray
    provenance: dict = field(default_factory=dict)


def compute_source_parcels(
    raw: mne.io.BaseRaw,
    templates_dir,
    *,
    modality: str,
    subject: str = "fsaverage5",
    n_parcels: int = 100,
    method: str = "dSPM",
    snr: float = 3.0,
    noise_cov: mne.Covariance | None = None,
    chunk_seconds: float = 60.0,
    progress: bool = False,
) -> SourceParcels:
    """Source-parcel time courses of a preprocessed recording on a template brain.

    Template forward model, minimum-norm inverse (normal orientation), Schaefer 2018 labels,
    parcel kernel, streamed application.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Output of :func:`samba_bids.ephys.preprocess_raw` (only the modality's channels; EEG
        with its average-reference projector).
    templates_dir : path-like
        Templates folder with ``<subject>/surf`` and ``<subject>/label`` Schaefer annotations.
    modality : {'eeg', 'meg'}
        Sensor type.
    subject : str
        Template subject.
    n_parcels : int
        Schaefer 2018 scale: 100, 200 or 400.
    method : {'MNE', 'dSPM', 'sLORETA', 'eLORETA'}
        Inverse method.
    snr : float
        Assumed SNR; ``lambda2 = 1 / snr**2``.
    noise_cov : mne.Covariance | None
        Noise covariance; None: ad hoc (see :func:`make_inverse`).
    chunk_seconds : float
        Chunk length for streaming the data through the kernel, s.
    progress : bool
        Show a progress bar.

    Returns
    -------
    SourceParcels
        ``data`` shape (n_parcels, n_times) at ``raw``'s sampling rate, names, centroids (mm)
        and provenance.

    Raises
    ------
    NoInputError
        If template surfaces or annotations are missing.
    UsageError
        If ``modality`` or ``method`` is unknown.
    """
    _check_modality(modality)
    _check_method(method)
    forward, fwd_prov = make_template_forward(
        raw.info, templates_dir, subject=subject, modality=modality
    )
    inverse, inv_prov = make_inverse(
        raw.info, forward, method=method, snr=snr, noise_cov=noise_cov
    )
    labels = template_labels(templates_dir, subject, n_parcels)
    kernel = make_parcel_kernel(inverse, raw.info, labels, method=method, lambda2=1.0 / snr**2)
    data = parcel_time_courses(raw, kernel, chunk_seconds=chunk_seconds, progress=progress)
    vertex_parcels, names = surface_atlas(templates_dir, subject, n_parcels)
    centroids = surface_parcel_centroids(templates_dir, subject, vertex_parcels, surface="white")
    provenance = {
        **fwd_prov,
        **inv_prov,
        "Parcellation": f"Schaefer 2018, 7 networks, {n_parcels} parcels on {subject}",
        "LabelMode": LABEL_MODE,
        "ParcelKernelShape": [int(n) for n in kernel.shape],
    }
    return SourceParcels(
        data=data,
        sfreq_hz=float(raw.info["sfreq"]),
        names=list(names),
        centroids_mm=centroids,
        provenance=provenance,
    )


def empty_room_noise_cov(ephys_path, raw: mne.io.BaseRaw) -> mne.Covariance | None:
    """Noise covariance from the empty-room recording of a BIDS MEG run, if there is one.

    Parameters
    ----------
    ephys_path : path-like
        The run's data file in the BIDS dataset (``..._meg.fif`` etc.).
    raw : mne.io.BaseRaw
        The run after :func:`samba_bids.ephys.preprocess_raw`; the empty-room recording is
        preprocessed the same way: band-passed to ``raw``'s band edges where they are narrower
        than the empty room's acquisition band, resampled to ``raw``'s rate, and restricted to
        ``raw``'s channels.

    Returns
    -------
    mne.Covariance | None
        Empirical covariance of the preprocessed empty-room data over ``raw``'s channels;
        None for EEG, when no empty-room recording is found, or when it lacks some of
        ``raw``'s channels (the caller then uses an ad hoc covariance).

    Notes
    -----
    Follows :meth:`mne_bids.BIDSPath.find_empty_room`, :func:`mne_bids.read_raw_bids` and
    :func:`mne.compute_raw_covariance`.
    """
    import mne_bids

    from .preprocessing import preprocess_raw, read_ephys, without_sidecar_locks

    if not len(mne.pick_types(raw.info, meg=True, ref_meg=False, exclude=[])):
        return None
    ephys_path = Path(ephys_path)
    try:
        bids_path = mne_bids.get_bids_path_from_fname(ephys_path, check=False, verbose=False)
        if bids_path.datatype not in (None, "meg"):
            return None
        with without_sidecar_locks():
            er_path = bids_path.find_empty_room(verbose=False)
    except Exception as err:  # no date, no sessions, not BIDS: no empty room to use
        logger.info("%s: no empty-room recording (%s).", ephys_path.name, err)
        return None
    if er_path is None:
        logger.info("%s: no empty-room recording; using an ad hoc covariance.", ephys_path.name)
        return None
    er_raw = read_ephys(er_path.fpath)
    # The run's band edges, where they are narrower than the empty room's own (acquisition)
    # band: that is where the run was filtered.
    l_freq = raw.info["highpass"] if raw.info["highpass"] > er_raw.info["highpass"] else None
    h_freq = raw.info["lowpass"] if raw.info["lowpass"] < er_raw.info["lowpass"] else None
    er_raw = preprocess_raw(
        er_raw, modality="meg", l_freq_hz=l_freq, h_freq_hz=h_freq, sfreq_hz=raw.info["sfreq"]
    )
    missing = sorted(set(raw.ch_names) - set(er_raw.ch_names))
    if missing:
        logger.warning(
            "%s: empty-room recording %s lacks channels %s; using an ad hoc covariance.",
            ephys_path.name,
            er_path.basename,
            ", ".join(missing[:10]),
        )
        return None
    er_raw.pick(raw.ch_names)
    logger.info("%s: noise covariance from empty room %s", ephys_path.name, er_path.basename)
    return mne.compute_raw_covariance(er_raw, verbose=False)
