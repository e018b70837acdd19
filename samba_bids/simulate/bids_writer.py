"""BIDS writer of the simulator: raw EEG/MEG, fMRIPrep-named BOLD per space, confounds, truth.

Every file of a simulated dataset is written here; :func:`samba_bids.simulate.simulate_dataset`
decides what goes in them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..bids.derivatives import write_json
from ..errors import NoInputError
from .sources import BANDS

#: BIDS task label of the simulated run.
TASK = "rest"
#: Annotation of each volume onset in the EEG/MEG recording.
TRIGGER = "Volume"
#: Baseline of the written BOLD images.
BOLD_BASELINE = 100.0
#: Standard deviation of the per-vertex noise relative to the parcel noise.
VERTEX_NOISE_FRACTION = 0.2
#: Resolution of the written BrainVision samples, uV (MNE-BIDS's and pybv's default).
BRAINVISION_RESOLUTION_UV = 0.1
#: Downsampling of the 2 mm MNI atlas grid for the written NIfTI (4 mm voxels).
VOLUME_DOWNSAMPLE = 2


def _gifti(data, structure, tr_s):
    import nibabel as nib

    meta = {"AnatomicalStructurePrimary": structure, "TimeStep": f"{tr_s * 1000:.1f}"}
    darrays = [
        nib.gifti.GiftiDataArray(col, intent="NIFTI_INTENT_TIME_SERIES",
                                 datatype="NIFTI_TYPE_FLOAT32")
        for col in np.ascontiguousarray(data.T, dtype=np.float32)
    ]
    return nib.gifti.GiftiImage(darrays=darrays, meta=nib.gifti.GiftiMetaData(meta))


def _description(name, kind, **extra):
    from .. import __version__

    out = {"Name": name, "BIDSVersion": "1.9.0", "DatasetType": kind}
    if kind == "derivative":
        out["GeneratedBy"] = [{"Name": "samba-bids-simulate", "Version": __version__}]
    out.update(extra)
    return out


def _small_volume_atlas(templates_dir, n_parcels):
    """Schaefer volume atlas on a 4 mm grid (nearest neighbour): labels, affine."""
    import nibabel as nib
    from nilearn.image import resample_img

    from ..templates.atlases import volume_atlas

    path, _ = volume_atlas(templates_dir, "MNI152NLin6Asym", n_parcels)
    atlas = nib.load(str(path))
    affine = atlas.affine.copy()
    affine[:3, :3] *= VOLUME_DOWNSAMPLE
    shape = tuple(int(np.ceil(s / VOLUME_DOWNSAMPLE)) for s in atlas.shape[:3])
    small = resample_img(atlas, target_affine=affine, target_shape=shape,
                         interpolation="nearest", force_resample=True, copy_header=True)
    return np.rint(np.asarray(small.dataobj)).astype(int), affine


def _grayordinate_parcels(templates_dir, n_parcels, bold_names):
    """fsLR 91k dlabel as indices into ``bold_names`` (1-based, 0 = none), its grayordinates.

    The dlabel's parcels are matched to the simulated BOLD parcels by Schaefer name.
    """
    from ..templates.atlases import cifti_atlas, read_cifti_labels

    path, _ = cifti_atlas(templates_dir, n_parcels)
    labels, names, brain_models = read_cifti_labels(path)
    index = {name: k for k, name in enumerate(bold_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise NoInputError(
            f"{path.name} has parcels not among the fsaverage5 BOLD parcels ({missing[:3]}); "
            "use a templates folder whose fsLR and fsaverage5 atlases are both Schaefer 2018."
        )
    lut = np.zeros(len(names) + 1, dtype=int)
    lut[1:] = [index[n] + 1 for n in names]
    return lut[labels], brain_models


def _dtseries(data, brain_models, tr_s):
    """(n_grayordinates, n_volumes) data as a CIFTI-2 dense time series, float32."""
    import nibabel as nib
    from nibabel.cifti2.cifti2_axes import SeriesAxis

    series = SeriesAxis(start=0.0, step=float(tr_s), size=data.shape[1], unit="SECOND")
    img = nib.Cifti2Image(np.ascontiguousarray(data.T, dtype=np.float32),
                          header=(series, brain_models))
    img.nifti_header.set_intent("NIFTI_INTENT_CONNECTIVITY_DENSE_SERIES")
    return img


# --------------------------------------------------------------------------------------------
# Dataset files


def write_dataset_descriptions(root, preproc, truth, modality: str) -> None:
    """``dataset_description.json`` of the raw dataset, the preprocessed BOLD and the truth."""
    write_json(root / "dataset_description.json", _description(
        f"samba-bids simulated {modality.upper()}-fMRI", "raw",
        Authors=["samba-bids simulator"],
        GeneratedBy=[{"Name": "samba-bids-simulate"}],
    ))
    write_json(preproc / "dataset_description.json", _description(
        "samba-bids simulated preprocessed BOLD", "derivative"))
    write_json(truth / "dataset_description.json", _description(
        "samba-bids simulation ground truth", "derivative",
        Description="Planted HRFs, mixing weights, noiseless and noisy parcel BOLD.",
    ))
    (truth / ".bidsignore").write_text("*_hrf.tsv\n*_metrics.tsv\n*_weights.tsv\n")


def write_readme(root, modality: str) -> None:
    """The dataset's ``README``."""
    (root / "README").write_text(
        f"Simulated {modality.upper()}-fMRI dataset written by samba-bids-simulate. The "
        "ground truth (planted HRFs, mixing weights, noiseless BOLD, noise ceilings) is in "
        "derivatives/truth.\n"
    )


def write_ephys(root, subject: str, data, info, onsets_s, modality: str, *,
                session: str | None = None, run: str | None = None, task: str = TASK,
                trigger: str = TRIGGER, durations_s=0.0):
    """Raw EEG (BrainVision) or MEG (FIF) through MNE-BIDS, an event (``Volume``) per onset.

    Parameters
    ----------
    root : Path
        Dataset folder.
    subject : str
        Participant label without ``sub-``.
    data : ndarray, shape (n_channels, n_times)
        Sensor data, V or T.
    info : mne.Info
        Measurement info of ``data`` (copied).
    onsets_s : ndarray, shape (V,)
        Volume onsets on the recording clock, s.
    modality : {'eeg', 'meg'}
        Datatype.
    session, run : str | None
        The recording's session and run labels (None: no such entity).
    task : str
        BIDS task label.
    trigger : str
        Description of the events (``trial_type`` in ``_events.tsv``).
    durations_s : float | ndarray, shape (V,)
        Duration of each event, s.

    Returns
    -------
    mne_bids.BIDSPath
        The recording's path (``.update(suffix="events", extension=".tsv")``: its events).
    """
    import mne
    import mne_bids

    raw = mne.io.RawArray(data, info.copy(), verbose=False)
    raw.set_meas_date(None)
    raw.set_annotations(mne.Annotations(onsets_s, durations_s, trigger))
    bids_path = mne_bids.BIDSPath(subject=subject, session=session, task=task, run=run,
                                  root=root, datatype=modality)
    mne_bids.write_raw_bids(raw, bids_path, allow_preload=True, overwrite=True,
                            format="BrainVision" if modality == "eeg" else "FIF",
                            verbose=False)
    if modality == "meg":  # MNE-BIDS guesses the maker from the .fif extension
        mne_bids.update_sidecar_json(
            bids_path.copy().update(suffix="meg", extension=".json"),
            {"Manufacturer": "n/a",
             "ManufacturersModelName": "synthetic magnetometer helmet (samba-bids-simulate)"},
            verbose=False,
        )
    return bids_path


def _write_brainvision_streamed(vhdr, data, ch_names, sfreq_hz: float, marker_samples, *,
                                chunk: int) -> None:
    """A BrainVision triplet in pybv's layout (what MNE-BIDS writes), ``chunk`` samples at a time.

    float32 multiplexed samples in units of 0.1 uV, one ``Stimulus,S  1`` marker per volume
    (position: sample + 1), as :func:`pybv.write_brainvision` writes them for MNE-BIDS, with
    no more than one chunk of the data converted in memory at a time.
    """
    eeg, vmrk = vhdr.with_suffix(".eeg"), vhdr.with_suffix(".vmrk")
    scale = 1e6 / BRAINVISION_RESOLUTION_UV  # V -> units of the resolution
    with open(eeg, "wb") as fout:
        for start in range(0, data.shape[1], chunk):
            (data[:, start: start + chunk].T * scale).astype("<f4").tofile(fout)
    channels = "\n".join(f"Ch{k}={name.replace(',', chr(92) + '1')},,"
                         f"{BRAINVISION_RESOLUTION_UV:g},\u00b5V"
                         for k, name in enumerate(ch_names, start=1))
    vhdr.write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n"
        "; Written by samba-bids-simulate (the layout of pybv)\n\n"
        "[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={eeg.name}\nMarkerFile={vmrk.name}\nDataFormat=BINARY\n"
        "; Data orientation: MULTIPLEXED=ch1,pt1, ch2,pt1 ...\n"
        f"DataOrientation=MULTIPLEXED\nNumberOfChannels={len(ch_names)}\n"
        "; Sampling interval in microseconds\n"
        f"SamplingInterval={1e6 / sfreq_hz}\n\n"
        "[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n\n"
        "[Channel Infos]\n"
        "; Each entry: Ch<Channel number>=<Name>,<Reference channel name>,\n"
        '; <Resolution in "Unit">,<Unit>, Future extensions..\n'
        f"{channels}\n", encoding="utf-8")
    markers = "\n".join(f"Mk{k}=Stimulus,S  1,{sample + 1},1,0"
                        for k, sample in enumerate(marker_samples, start=1))
    vmrk.write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n"
        "; Written by samba-bids-simulate (the layout of pybv)\n\n"
        f"[Common Infos]\nCodepage=UTF-8\nDataFile={eeg.name}\n\n"
        "[Marker Infos]\n"
        "; Each entry: Mk<Marker number>=<Type>,<Description>,<Position in data points>,\n"
        ";             <Size in data points>, <Channel number (0 = marker is related to all "
        "channels)>\n"
        f"{markers}\n", encoding="utf-8")


def write_scanner_eeg(root, subject: str, data, info, marker_samples, *,
                      session: str | None = None, run: str | None = None) -> None:
    """Raw in-scanner EEG (BrainVision) through MNE-BIDS, streamed to disk.

    The files are those :func:`write_ephys` writes (float32 at 0.1 uV resolution, a
    ``Volume`` event per marker in ``_events.tsv``, channel types in ``_channels.tsv``), but
    the recording is not converted in memory: MNE-BIDS's conversion holds three more copies of
    it (``get_data``, the scaling, the float32 cast), 14 GB for 30 min of 65 channels at 5 kHz.
    The BrainVision triplet is written here in chunks of :data:`CHUNK_S` into a temporary
    folder, read back lazily with MNE (channel types and montage from ``info``, ``Volume``
    annotations at the markers) and copied into the dataset by
    :func:`mne_bids.write_raw_bids`, which writes the sidecars.

    Parameters
    ----------
    root : Path
        Dataset folder.
    subject : str
        Participant label without ``sub-``.
    data : ndarray, shape (n_channels, n_times)
        The recording, V.
    info : mne.Info
        Channel names, types and montage of ``data``, and its sampling rate.
    marker_samples : ndarray of int, shape (V,)
        Sample of each volume marker.
    session, run : str | None
        The recording's session and run labels (None: no such entity).
    """
    import tempfile

    import mne
    import mne_bids

    from .sensors import CHUNK_S

    sfreq = float(info["sfreq"])
    with tempfile.TemporaryDirectory(prefix="samba-scanner-") as tmp:
        vhdr = Path(tmp) / "scanner.vhdr"
        _write_brainvision_streamed(vhdr, data, info["ch_names"], sfreq, marker_samples,
                                    chunk=int(CHUNK_S * sfreq))
        raw = mne.io.read_raw_brainvision(vhdr, preload=False, verbose=False)
        raw.set_channel_types({name: kind for name, kind in
                               zip(info["ch_names"], info.get_channel_types())
                               if kind != "eeg"}, verbose=False)
        raw.set_montage(info.get_montage(), verbose=False)
        raw.set_meas_date(None)
        # MNE truncates onset * sfreq to a sample: a hundredth of a sample keeps k from k - 1
        raw.set_annotations(mne.Annotations((np.asarray(marker_samples) + 0.01) / sfreq,
                                            0.0, TRIGGER))
        bids_path = mne_bids.BIDSPath(subject=subject, session=session, task=TASK, run=run,
                                      root=root, datatype="eeg")
        mne_bids.write_raw_bids(raw, bids_path, overwrite=True, verbose=False)


def write_clean_eeg(truth_root, subject: str, data, info, onsets_s, *,
                    session: str | None = None, run: str | None = None) -> Path:
    """The clean EEG of an in-scanner recording, for scoring artefact removal.

    ``derivatives/truth/sub-<label>/[ses-<label>/]eeg/<prefix>_desc-clean_eeg.vhdr``
    (BrainVision, float32, with every sidecar, by MNE-BIDS): the recording as it would be
    without the scanner, with a ``Volume`` marker at each ideal volume onset. Its samples equal
    those of the raw recording that the same seed writes without ``--mr-artifacts``. With its
    sidecars (channels, electrode positions) the pipeline can read it as a cleaned recording
    (``samba-bids ... -d preproc=... truth=...``): the clean reference of an evaluation.

    Parameters
    ----------
    truth_root : Path
        The ``derivatives/truth`` folder.
    subject : str
        Participant label without ``sub-``.
    data : ndarray, shape (n_channels, n_times)
        Clean EEG, V.
    info : mne.Info
        Measurement info of ``data`` (copied).
    onsets_s : ndarray, shape (V,)
        Ideal volume onsets on the recording clock, s (on samples).
    session, run : str | None
        The recording's session and run labels (None: no such entity).

    Returns
    -------
    Path
        The ``.vhdr`` file.
    """
    import mne
    import mne_bids

    raw = mne.io.RawArray(data, info.copy(), verbose=False)
    raw.set_meas_date(None)
    raw.set_annotations(mne.Annotations(onsets_s, 0.0, TRIGGER))
    bids_path = mne_bids.BIDSPath(subject=subject, session=session, task=TASK, run=run,
                                  root=truth_root, datatype="eeg", description="clean")
    mne_bids.write_raw_bids(raw, bids_path, allow_preload=True, overwrite=True,
                            format="BrainVision", verbose=False)
    return bids_path.fpath


def write_scanner_truth(edir, prefix: str, recording) -> None:
    """R-peaks and true volume onsets of an in-scanner recording.

    ``<prefix>_desc-rpeaks_events.tsv``: ``onset`` (R-peak, s on the recording clock),
    ``duration`` (0), ``trial_type`` (``R-peak``), ``sample`` (nearest sample at the scanner
    rate), ``bcg_amplitude`` (the beat's pulse-artefact amplitude factor).
    ``<prefix>_desc-volumes_events.tsv``: ``onset`` (true onset of the volume's gradient
    artefact, s), ``duration`` (TR, s), ``trial_type`` (``Volume``), ``sample`` (the marker's
    sample), ``offset_samples`` (true onset minus marker, in samples, within +-0.5).

    Parameters
    ----------
    edir : Path
        ``eeg`` folder of the participant in ``derivatives/truth``.
    prefix : str
        ``sub-<label>[_ses-<label>]_task-<task>[_run-<index>]``.
    recording : samba_bids.simulate.scanner.ScannerRecording
        The in-scanner recording.
    """
    fs = recording.sfreq_hz
    pd.DataFrame({
        "onset": recording.r_peaks_s, "duration": 0.0, "trial_type": "R-peak",
        "sample": np.round(recording.r_peaks_s * fs).astype(np.int64),
        "bcg_amplitude": recording.beat_amplitude,
    }).to_csv(edir / f"{prefix}_desc-rpeaks_events.tsv", sep="\t", index=False,
              float_format="%.7f")
    pd.DataFrame({
        "onset": recording.true_onsets_s, "duration": recording.tr_s, "trial_type": TRIGGER,
        "sample": recording.marker_samples,
        "offset_samples": recording.true_onsets_s * fs - recording.marker_samples,
    }).to_csv(edir / f"{prefix}_desc-volumes_events.tsv", sep="\t", index=False,
              float_format="%.7f")


def _parcel_images(padded, vertex_sd, lab, rng):
    """Baseline plus the parcel BOLD of each vertex's parcel (``lab``) plus vertex noise."""
    n_volumes = padded.shape[1]
    return BOLD_BASELINE + padded[lab] + vertex_sd[lab, None] * \
        rng.standard_normal((len(lab), n_volumes))


def write_bold_images(func, prefix: str, noisy, noise_sd, tr_s: float,
                      rng: np.random.Generator, *, surface_parcels=None, volume_parcels=None,
                      grayordinates=None, task: str = TASK) -> None:
    """fMRIPrep-named preprocessed BOLD per space, with its sidecar.

    Every vertex (voxel, grayordinate) carries :data:`BOLD_BASELINE` plus its parcel's noisy
    BOLD plus independent noise of SD :data:`VERTEX_NOISE_FRACTION` times the parcel noise's
    (outside the parcels: the median parcel noise's). The spaces are written in the order
    fsaverage5, MNI152NLin6Asym, fsLR, all from ``rng``.

    Parameters
    ----------
    func : Path
        ``func`` folder of the participant in the preprocessed derivatives.
    prefix : str
        ``sub-<label>_task-<task>``.
    noisy : ndarray, shape (V, M)
        Noisy parcel BOLD, percent signal change.
    noise_sd : ndarray, shape (M,)
        SD of each parcel's noise.
    tr_s : float
        Repetition time, s.
    rng : numpy.random.Generator
        Random generator of the vertex noise.
    surface_parcels : dict | None
        ``{"lh": labels, "rh": labels}`` on fsaverage5 (1-based parcel index, 0 = none);
        None: no fsaverage5 images.
    volume_parcels : tuple | None
        ``(labels, affine)`` of the 4 mm MNI152NLin6Asym grid; None: no NIfTI.
    grayordinates : tuple | None
        ``(labels, brain_models)`` of fsLR 91k; None: no CIFTI.
    task : str
        ``TaskName`` of the sidecars (the task label of ``prefix``).
    """
    import nibabel as nib

    n_volumes = noisy.shape[0]
    padded = np.vstack([np.zeros((1, n_volumes)), noisy.T])  # row 0: no parcel
    vertex_sd = np.concatenate([[np.median(noise_sd)], noise_sd]) * VERTEX_NOISE_FRACTION
    sidecar = {"RepetitionTime": tr_s, "TaskName": task,
               "SliceTimingCorrected": True, "StartTime": tr_s / 2.0,
               "Description": "Simulated by samba-bids-simulate (parcel BOLD plus noise)."}
    if surface_parcels is not None:
        for hemi, key, structure in (("L", "lh", "CortexLeft"), ("R", "rh", "CortexRight")):
            values = _parcel_images(padded, vertex_sd, surface_parcels[key], rng)
            nib.save(_gifti(values, structure, tr_s),
                     func / f"{prefix}_hemi-{hemi}_space-fsaverage5_bold.func.gii")
        write_json(func / f"{prefix}_space-fsaverage5_bold.json", sidecar)
    if volume_parcels is not None:
        lab, affine = volume_parcels
        inside = lab > 0
        values = np.zeros(lab.shape + (n_volumes,), dtype=np.float32)
        values[inside] = _parcel_images(padded, vertex_sd, lab[inside], rng)
        img = nib.Nifti1Image(values, affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = tr_s
        nib.save(img, func / f"{prefix}_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz")
        write_json(func / f"{prefix}_space-MNI152NLin6Asym_desc-preproc_bold.json", sidecar)
    if grayordinates is not None:
        lab, brain_models = grayordinates
        values = _parcel_images(padded, vertex_sd, lab, rng)
        nib.save(_dtseries(values, brain_models, tr_s),
                 func / f"{prefix}_space-fsLR_den-91k_bold.dtseries.nii")
        write_json(func / f"{prefix}_space-fsLR_den-91k_bold.json", sidecar)


def write_confounds(func, prefix: str, noisy, rng: np.random.Generator) -> None:
    """fMRIPrep-named confounds: random motion, ``csf``, ``white_matter``, ``global_signal``.

    Motion is six slow random walks (about 0.1 mm / 0.001 rad) and their derivatives; ``csf``
    and ``white_matter`` are white noise around 100; none of them is in the BOLD.
    """
    n_volumes = noisy.shape[0]
    motion = np.cumsum(rng.standard_normal((n_volumes, 6)), axis=0)
    motion -= motion.mean(axis=0)
    motion *= np.array([0.02] * 3 + [0.0002] * 3)  # mm, rad
    confounds = pd.DataFrame(motion, columns=["trans_x", "trans_y", "trans_z",
                                              "rot_x", "rot_y", "rot_z"])
    for col in list(confounds.columns):
        confounds[f"{col}_derivative1"] = confounds[col].diff()
    confounds["csf"] = 100.0 + rng.standard_normal(n_volumes)
    confounds["white_matter"] = 100.0 + rng.standard_normal(n_volumes)
    confounds["global_signal"] = BOLD_BASELINE + noisy.mean(axis=1)
    confounds.to_csv(func / f"{prefix}_desc-confounds_timeseries.tsv", sep="\t",
                     index=False, na_rep="n/a")


def write_truth(tdir, prefix: str, *, hrf, mixing, bold, bold_names, source_band_power,
                source_names, parameters: dict, hemodynamics=None) -> None:
    """The ground truth of one participant.

    Parameters
    ----------
    tdir : Path
        ``func`` folder of the participant in ``derivatives/truth``.
    prefix : str
        ``sub-<label>[_ses-<label>]_task-<task>[_run-<index>]``.
    hrf, mixing : pandas.DataFrame
        Planted HRFs (Balloon path: ``parcel`` and the effective HRF's ``time_to_peak_s``) and
        mixing weights.
    bold : samba_bids.simulate.hemodynamics.ParcelBold
        Noiseless and noisy parcel BOLD, noise SD and ceiling.
    bold_names, source_names : list of str
        BOLD and source parcel names.
    source_band_power : ndarray, shape (N, n_bands, V)
        Log band power of the source parcels per volume.
    parameters : dict
        Everything else, written to ``_desc-truth_parameters.json``.
    hemodynamics : pandas.DataFrame, optional
        Balloon parameters and effective time to peak per parcel (``hemodynamics='balloon'``),
        written to ``_desc-truth_hemodynamics.tsv``; None writes nothing.
    """
    n_volumes = bold.noisy.shape[0]
    hrf.to_csv(tdir / f"{prefix}_desc-truth_hrf.tsv", sep="\t", index=False,
               float_format="%.6f")
    mixing.to_csv(tdir / f"{prefix}_desc-mixing_weights.tsv", sep="\t", index=False)
    pd.DataFrame(bold.noiseless, columns=bold_names).to_csv(
        tdir / f"{prefix}_desc-noiseless_timeseries.tsv", sep="\t", index=False,
        float_format="%.6g")
    pd.DataFrame(bold.noisy, columns=bold_names).to_csv(
        tdir / f"{prefix}_desc-noisy_timeseries.tsv", sep="\t", index=False,
        float_format="%.6g")
    pd.DataFrame(
        source_band_power.transpose(2, 0, 1).reshape(n_volumes, -1),
        columns=[f"{n}_{b}" for n in source_names for b in BANDS],
    ).to_csv(tdir / f"{prefix}_desc-sourcebandpower_timeseries.tsv", sep="\t",
             index=False, float_format="%.5g")
    pd.DataFrame({"parcel": bold_names, "noise_ceiling_r": bold.ceiling,
                  "noise_sd": bold.noise_sd, "noiseless_sd": bold.noiseless.std(axis=0)}).to_csv(
        tdir / f"{prefix}_desc-noiseceiling_metrics.tsv", sep="\t", index=False,
        float_format="%.6f")
    if hemodynamics is not None:
        hemodynamics.to_csv(tdir / f"{prefix}_desc-truth_hemodynamics.tsv", sep="\t",
                            index=False, float_format="%.6f")
    write_json(tdir / f"{prefix}_desc-truth_parameters.json", parameters)
