"""Sensors of the simulator: EEG electrodes or a MEG helmet, and the parcels' gain at them.

Each source parcel's signal is spread over its label's vertices with the sign of MNE's
``mean_flip`` extraction and projected through the pipeline's own template forward model
(:func:`samba_bids.ephys.forward.make_template_forward`), so simulation and reconstruction share
the head model; white sensor noise is added (:func:`project_to_sensors`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

#: Median channel RMS of the brain signal at the sensors, V (EEG) before referencing.
EEG_SIGNAL_RMS_V = 10e-6
#: Standard deviation of the white EEG sensor noise, V.
EEG_NOISE_SD_V = 2e-6
#: Median channel RMS of the brain signal at the MEG magnetometers, T.
MEG_SIGNAL_RMS_T = 200e-15
#: Standard deviation of the white MEG sensor noise, T (the magnetometer noise of
#: :func:`mne.make_ad_hoc_cov`, which the pipeline's inverse assumes without empty-room data).
MEG_NOISE_SD_T = 20e-15
#: Per modality: median channel RMS of the brain signal, white noise SD, unit.
SENSOR_LEVELS = {
    "eeg": (EEG_SIGNAL_RMS_V, EEG_NOISE_SD_V, "V"),
    "meg": (MEG_SIGNAL_RMS_T, MEG_NOISE_SD_T, "T"),
}
#: Default number of channels per modality (EEG electrodes, MEG magnetometers).
DEFAULT_CHANNELS = {"eeg": 64, "meg": 102}
#: Radius of the synthetic MEG helmet (magnetometer centres) around the head sphere's centre, m.
MEG_HELMET_RADIUS_M = 0.12
#: Lowest elevation of the helmet's sensors above the head sphere's equator, degrees (-25:
#: about the level of the ears and the inion, 1 cm below the fiducial plane).
MEG_HELMET_LOWEST_ELEVATION_DEG = -25.0
#: Chunk length for the sensor projection, s.
CHUNK_S = 60.0


def eeg_channel_names(n_channels: int) -> list[str]:
    """``n_channels`` spread-out 10-05 electrode names.

    Farthest-point sampling (starting at Cz) over the 72 easycap-M1 positions that the
    ``fsaverage_1005`` montage holds (over all of ``fsaverage_1005`` above 72 channels);
    positions from ``fsaverage_1005``.

    Raises
    ------
    UsageError
        If ``n_channels`` is not between 8 and the montage's size.
    """
    import mne

    montage = mne.channels.make_standard_montage("fsaverage_1005")
    positions = montage.get_positions()["ch_pos"]
    easycap = mne.channels.make_standard_montage("easycap-M1").ch_names
    pool = [n for n in easycap if n in positions]
    if n_channels > len(pool):
        pool = list(positions)
    if not 8 <= n_channels <= len(pool):
        raise UsageError(
            f"n_channels must be between 8 and {len(positions)} for EEG, got {n_channels}."
        )
    xyz = np.array([positions[n] for n in pool])
    chosen = [pool.index("Cz")]
    dist = np.linalg.norm(xyz - xyz[chosen[0]], axis=1)
    while len(chosen) < n_channels:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(xyz - xyz[nxt], axis=1))
    return [pool[i] for i in sorted(chosen)]


def _eeg_info(n_channels: int, sfreq_hz: float):
    import mne

    names = eeg_channel_names(n_channels)
    info = mne.create_info(names, sfreq_hz, "eeg")
    info.set_montage(mne.channels.make_standard_montage("fsaverage_1005"), verbose=False)
    return info


def head_sphere() -> tuple[np.ndarray, float]:
    """Sphere fitted to MNE's fsaverage scalp above the fiducial plane, in head coordinates.

    The scalp is ``mne/data/fsaverage/fsaverage-head.fif`` moved into the head frame with
    MNE's ``fsaverage-trans.fif`` (the transform the template forward uses); points below the
    fiducial plane (face, neck) are left out, as in the EEG sphere model of
    :func:`samba_bids.ephys.forward.make_template_forward`.

    Returns
    -------
    centre : ndarray, shape (3,)
        Centre in head coordinates, m (about (0, 12, 42) mm).
    radius : float
        Radius, m (about 96 mm).
    """
    import mne
    from mne.transforms import apply_trans, invert_transform

    from ..ephys.forward import FSAVERAGE_HEAD, FSAVERAGE_TRANS

    scalp = mne.read_bem_surfaces(FSAVERAGE_HEAD, verbose=False)[0]["rr"]
    scalp = apply_trans(invert_transform(mne.read_trans(FSAVERAGE_TRANS, verbose=False)), scalp)
    points = scalp[scalp[:, 2] > 0]
    # least squares: |p|^2 = 2 p.c + (r^2 - |c|^2)
    design = np.column_stack([2.0 * points, np.ones(len(points))])
    sol = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def meg_helmet(n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and normals of a synthetic whole-head magnetometer helmet.

    ``n_channels`` points spread evenly (golden-angle spiral, equal area per point) over a
    spherical cap of radius :data:`MEG_HELMET_RADIUS_M` around the centre of
    :func:`head_sphere`, from the vertex down to :data:`MEG_HELMET_LOWEST_ELEVATION_DEG`
    (about the level of the ears and the inion). With the defaults the sensors lie 12 mm or
    more from the fsaverage scalp (median about 24 mm), 3.4 cm apart for 102 sensors.

    Parameters
    ----------
    n_channels : int
        Number of sensors.

    Returns
    -------
    positions : ndarray, shape (n_channels, 3)
        Sensor centres in head coordinates, m (the helmet's device frame is the head frame).
    normals : ndarray, shape (n_channels, 3)
        Unit outward radial normals (the magnetometers' axes).
    """
    centre, _ = head_sphere()
    z_low = np.sin(np.radians(MEG_HELMET_LOWEST_ELEVATION_DEG))
    step = (np.arange(n_channels) + 0.5) / n_channels
    z = 1.0 - step * (1.0 - z_low)  # equal-area steps in z over the cap
    azimuth = (np.arange(n_channels) + 0.5) * np.pi * (3.0 - np.sqrt(5.0))  # golden angle
    ring = np.sqrt(1.0 - z**2)
    normals = np.column_stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z])
    return centre + MEG_HELMET_RADIUS_M * normals, normals


def meg_channel_names(n_channels: int) -> list[str]:
    """``MEG0001`` .. ``MEG<n>``: names of the helmet's magnetometers."""
    return [f"MEG{i:04d}" for i in range(1, n_channels + 1)]


def _meg_info(n_channels: int, sfreq_hz: float):
    """Measurement info of the helmet: magnetometers, device frame = head frame.

    Each channel's ``loc`` is its centre and the coil's x, y and z (normal) axes; the coil type
    is :data:`mne.io.constants.FIFF.FIFFV_COIL_VV_MAG_T3` (a Vectorview magnetometer). The
    fsaverage fiducials (in head coordinates) are stored as digitisation points, so the head
    frame of the recording is the one of MNE's ``fsaverage-trans.fif``.
    """
    import mne
    from mne.io.constants import FIFF
    from mne.transforms import Transform, apply_trans, invert_transform

    from ..ephys.forward import FSAVERAGE_TRANS

    if not 8 <= n_channels <= 400:
        raise UsageError(f"n_channels must be between 8 and 400 for MEG, got {n_channels}.")
    positions, normals = meg_helmet(n_channels)
    info = mne.create_info(meg_channel_names(n_channels), sfreq_hz, "mag")
    with info._unlock():
        info["dev_head_t"] = Transform("meg", "head")  # identity
    for ch, pos, ez in zip(info["chs"], positions, normals):
        # tangential axes: ex horizontal (along the azimuth), ey = ez x ex
        ex = np.cross([0.0, 0.0, 1.0], ez)
        norm = np.linalg.norm(ex)
        ex = ex / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
        ey = np.cross(ez, ex)
        ch["loc"] = np.concatenate([pos, ex, ey, ez])
        ch["coil_type"] = FIFF.FIFFV_COIL_VV_MAG_T3
        ch["kind"] = FIFF.FIFFV_MEG_CH
        ch["unit"] = FIFF.FIFF_UNIT_T
        ch["coord_frame"] = FIFF.FIFFV_COORD_DEVICE
    fiducials, _ = mne.io.read_fiducials(FSAVERAGE_TRANS.with_name("fsaverage-fiducials.fif"),
                                         verbose=False)
    mri_head = invert_transform(mne.read_trans(FSAVERAGE_TRANS, verbose=False))
    points = {int(f["ident"]): apply_trans(mri_head, f["r"]) for f in fiducials}
    montage = mne.channels.make_dig_montage(
        nasion=points[FIFF.FIFFV_POINT_NASION], lpa=points[FIFF.FIFFV_POINT_LPA],
        rpa=points[FIFF.FIFFV_POINT_RPA], coord_frame="head")
    info.set_montage(montage, verbose=False)
    return info


def parcel_gain(forward, labels) -> tuple[np.ndarray, np.ndarray]:
    """Gain of each parcel's signed, uniform vertex activity at the sensors.

    A parcel with activity ``s(t)`` puts ``flip_j * s(t)`` (unit dipole moment, A m) on each of
    its vertices ``j``, with ``flip_j`` the sign from :func:`mne.label_sign_flip` (the sign of
    the vertex normal on the label's dominant orientation): MNE's ``mean_flip`` extraction of
    the source estimate returns ``s(t)``.

    Parameters
    ----------
    forward : mne.Forward
        Fixed-orientation forward (``force_fixed=True, surf_ori=True``).
    labels : list of mne.Label, length N
        Parcels.

    Returns
    -------
    gain : ndarray, shape (n_channels, N)
        Sensor signal per unit (A m per vertex) of parcel activity, V/(A m) or T/(A m).
    n_vertices : ndarray of int, shape (N,)
        Vertices of each label in the forward's source space.
    """
    import mne

    src = forward["src"]
    G = forward["sol"]["data"]
    offsets = [0, len(src[0]["vertno"])]
    gain = np.zeros((G.shape[0], len(labels)))
    counts = np.zeros(len(labels), dtype=int)
    for p, label in enumerate(labels):
        h = 0 if label.hemi == "lh" else 1
        vertno = src[h]["vertno"]
        sel = np.intersect1d(label.vertices, vertno)
        if not len(sel):
            continue
        cols = offsets[h] + np.searchsorted(vertno, sel)
        flip = mne.label_sign_flip(label, src)
        gain[:, p] = G[:, cols] @ flip
        counts[p] = len(sel)
    return gain, counts



# --------------------------------------------------------------------------------------------
# The simulated recording


@dataclass
class SensorModel:
    """Sensors of a simulated recording and the gain of the source parcels at them.

    Attributes
    ----------
    info : mne.Info
        Measurement info, channels in the forward model's order.
    gain : ndarray, shape (n_channels, N)
        Sensor signal per unit of parcel activity (:func:`parcel_gain`).
    n_label_vertices : ndarray of int, shape (N,)
        Vertices of each parcel in the forward's source space.
    forward_provenance : dict
        How the forward model was made (from ``make_template_forward``).
    description : dict
        The sensors in words, for the truth parameters (``Sensors`` and, for MEG,
        ``DeviceToHeadTransform``).
    signal_rms, noise_sd : float
        Median channel RMS of the brain signal and SD of the white noise
        (:data:`SENSOR_LEVELS`).
    unit : str
        ``"V"`` (EEG) or ``"T"`` (MEG).
    """

    info: object
    gain: np.ndarray
    n_label_vertices: np.ndarray
    forward_provenance: dict
    description: dict
    signal_rms: float
    noise_sd: float
    unit: str


def _sensor_description(modality: str, n_channels: int) -> dict:
    """The sensors of ``modality`` in words (the ``Sensors`` entries of the truth)."""
    if modality == "eeg":
        return {"Sensors": f"{n_channels} EEG electrodes at fsaverage_1005 10-05 positions "
                           "(spread by farthest-point sampling from Cz)"}
    centre, _ = head_sphere()
    return {
        "Sensors": f"{n_channels} synthetic magnetometers (coil type FIFFV_COIL_VV_MAG_T3, "
                   "radial axes), spread by a golden-angle spiral with equal area per "
                   f"sensor over a spherical cap of radius {MEG_HELMET_RADIUS_M * 1000:g} "
                   "mm around the centre of a sphere fitted to the fsaverage scalp "
                   f"(({', '.join(f'{v * 1000:.1f}' for v in centre)}) mm in head "
                   "coordinates), from the vertex down to "
                   f"{MEG_HELMET_LOWEST_ELEVATION_DEG:g} degrees elevation",
        "DeviceToHeadTransform": "identity (device frame = fsaverage head frame)",
    }


def make_sensors(templates_dir, modality: str, n_channels: int, sfreq_hz: float, *,
                 subject: str, n_parcels: int) -> SensorModel:
    """Sensors of ``modality`` and the gain of the template's Schaefer parcels at them.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    modality : {'eeg', 'meg'}
        EEG (10-05 electrodes of :func:`eeg_channel_names`) or MEG (:func:`meg_helmet`).
    n_channels : int
        Electrodes or magnetometers.
    sfreq_hz : float
        Sampling rate, Hz.
    subject : str
        Template subject of the source space and parcels (``fsaverage5``).
    n_parcels : int
        Schaefer 2018 scale of the source parcels.

    Returns
    -------
    SensorModel
        Fixed-orientation forward reduced to the parcel gain, with the sensor levels.
    """
    import mne

    from ..ephys.forward import make_template_forward, template_labels

    info = (_eeg_info if modality == "eeg" else _meg_info)(n_channels, sfreq_hz)
    signal_rms, noise_sd, unit = SENSOR_LEVELS[modality]
    description = _sensor_description(modality, n_channels)
    forward, provenance = make_template_forward(info, templates_dir, subject=subject,
                                                modality=modality)
    forward = mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True,
                                           verbose=False)
    labels = template_labels(templates_dir, subject, n_parcels)
    gain, n_label_vertices = parcel_gain(forward, labels)
    info = mne.pick_info(info, [info["ch_names"].index(n) for n in forward["info"]["ch_names"]])
    return SensorModel(info=info, gain=gain, n_label_vertices=n_label_vertices,
                       forward_provenance=provenance, description=description,
                       signal_rms=signal_rms, noise_sd=noise_sd, unit=unit)


def project_to_sensors(sensors: SensorModel, activity, n_lead: int, n_rec: int,
                       sfreq_hz: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Sensor data of parcel activity, with white sensor noise, in chunks of :data:`CHUNK_S`.

    The dipole moment per vertex is set so that the median channel RMS of the brain signal over
    the first 60 s of the recording is ``sensors.signal_rms``.

    Parameters
    ----------
    sensors : SensorModel
        Sensors and parcel gain (:func:`make_sensors`).
    activity : ndarray, shape (N, n_lead + n_rec)
        Source-parcel activity; the first ``n_lead`` samples precede the recording.
    n_lead, n_rec : int
        Samples before the recording, samples of the recording.
    sfreq_hz : float
        Sampling rate, Hz.
    rng : numpy.random.Generator
        Random generator of the sensor noise.

    Returns
    -------
    data : ndarray, shape (n_channels, n_rec)
        Sensor data, V or T.
    moment_am : float
        Dipole moment per vertex per unit of parcel activity, A m.
    """
    gain = sensors.gain
    probe = gain @ activity[:, n_lead: n_lead + min(n_rec, int(60 * sfreq_hz))]
    moment_am = sensors.signal_rms / np.median(np.sqrt(np.mean(probe**2, axis=1)))
    data = np.empty((len(sensors.info["ch_names"]), n_rec))
    step = int(CHUNK_S * sfreq_hz)
    for start in range(0, n_rec, step):
        stop = min(start + step, n_rec)
        data[:, start:stop] = moment_am * (gain @ activity[:, n_lead + start: n_lead + stop])
        data[:, start:stop] += sensors.noise_sd * rng.standard_normal(
            (data.shape[0], stop - start))
    return data, moment_am
