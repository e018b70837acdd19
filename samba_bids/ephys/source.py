"""Template forward and inverse models, and source-parcel time courses without the memory wall.

``apply_inverse_raw`` followed by ``extract_label_time_course`` holds an n_sources x n_times
array (74 GB for 30 min at 250 Hz on fsaverage5). Here the inverse kernel and the signed label
averaging are composed once into a parcel kernel (n_parcels x n_channels) by pushing an identity
matrix over channels through MNE's own functions; applying it streams the recording in chunks
and equals MNE's result to float precision (see ``tests/test_ephys.py``).

The template forward model (source space, labels, BEM or sphere) is in
:mod:`samba_bids.ephys.forward`; its public names are also importable from here.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np
from mne.minimum_norm import InverseOperator, apply_inverse_raw, make_inverse_operator

from ..errors import UsageError
from ..templates.atlases import surface_atlas, surface_parcel_centroids

# re-exported: the forward model's names that callers imported from here
from .forward import (  # noqa: F401
    DEPTH,
    FSAVERAGE_HEAD,
    FSAVERAGE_INNER_SKULL,
    FSAVERAGE_TRANS,
    INVERSE_METHODS,
    LABEL_MODE,
    LOOSE,
    MNE_FSAVERAGE_DIR,
    _check_method,
    _check_modality,
    _find_three_layer_bem,
    _template_sphere,
    make_template_forward,
    template_labels,
)

logger = logging.getLogger(__name__)


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
