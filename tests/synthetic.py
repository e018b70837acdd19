"""Small synthetic BIDS datasets for tests: real templates, made-up signals.

A dataset has raw EEG (BrainVision, written by MNE-BIDS, with a volume marker per TR) and a
``derivatives/preproc`` folder with fMRIPrep-named preprocessed BOLD on fsaverage5 (GIFTI pair)
and/or MNI152NLin6Asym (NIfTI on a 4 mm grid), a sidecar with the TR, and confounds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def make_eeg_raw(duration_s, sfreq_hz=200.0, n_volumes=None, tr_s=None, seed=0,
                 trigger="Volume", trigger_offset_s=0.0):
    """A 32-channel standard-1020 EEG RawArray of pink-ish noise with volume annotations."""
    import mne

    rng = np.random.default_rng(seed)
    montage = mne.channels.make_standard_montage("fsaverage_1020")
    names = [n for n in montage.ch_names if n[-1].isdigit() or n[-1] == "z"][:32]
    n_times = int(duration_s * sfreq_hz)
    data = np.cumsum(rng.standard_normal((len(names), n_times)), axis=1)
    data -= data.mean(axis=1, keepdims=True)
    data = 1e-6 * (data / data.std(axis=1, keepdims=True) + rng.standard_normal(data.shape))
    info = mne.create_info(names, sfreq_hz, "eeg")
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.set_montage(montage)
    raw.set_meas_date(None)
    if n_volumes:
        onsets = trigger_offset_s + np.arange(n_volumes) * tr_s
        raw.set_annotations(mne.Annotations(onsets, 0.0, trigger))
    return raw


def add_gradient_artifact(raw, n_volumes, tr_s, *, first_s=1.0, slice_rate_hz=17.5,
                          gain=100.0, seed=0):
    """Add an MR gradient-like artefact to ``raw`` (in place) and return it.

    Every volume (from ``first_s``, one every ``tr_s``) repeats the same waveform: harmonics of
    ``slice_rate_hz`` up to 0.4 x the sampling rate, amplitude 1 / sqrt(k) (most power above
    20 Hz, as in the real in-scanner ECG of ../shared/data), random phases, a gain per channel;
    its RMS is ``gain`` times the EEG's. Before the first volume the EEG is clean.
    """
    rng = np.random.default_rng(seed)
    sfreq = raw.info["sfreq"]
    spacing = int(round(tr_s * sfreq))
    t = np.arange(spacing) / sfreq
    ks = np.arange(1, int(0.4 * sfreq / slice_rate_hz) + 1)
    wave = (np.sin(2 * np.pi * slice_rate_hz * ks[:, None] * t + rng.uniform(0, 2 * np.pi,
                                                                          (len(ks), 1)))
            / np.sqrt(ks)[:, None]).sum(axis=0)
    data = raw._data
    wave *= gain * np.median(data.std(axis=1)) / wave.std()
    channel_gain = rng.uniform(0.5, 1.5, (len(data), 1))
    for v in range(n_volumes):
        start = int(round((first_s + v * tr_s) * sfreq))
        data[:, start:start + spacing] += channel_gain * wave[: data.shape[1] - start]
    return raw


def _gifti(data, structure, tr_s):
    import nibabel as nib

    meta = {"AnatomicalStructurePrimary": structure, "TimeStep": f"{tr_s * 1000:.1f}"}
    darrays = [nib.gifti.GiftiDataArray(col.astype(np.float32), intent="NIFTI_INTENT_TIME_SERIES",
                                        datatype="NIFTI_TYPE_FLOAT32") for col in data.T]
    return nib.gifti.GiftiImage(darrays=darrays, meta=nib.gifti.GiftiMetaData(meta))


def make_dataset(root, templates_dir, *, subjects=("01",), n_volumes=80, tr_s=2.0,
                 spaces=("fsaverage5",), with_eeg=True, with_bold=True, seed=0,
                 trigger_offset_s=0.0):
    """Write a synthetic BIDS dataset under ``root`` and return ``root``.

    BOLD parcel signals are smooth random series; each vertex/voxel carries its Schaefer-200
    parcel's series plus noise.
    """
    import mne_bids
    import nibabel as nib

    from samba_bids.templates import surface_atlas, volume_atlas

    root = Path(root)
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "synthetic", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    )
    deriv = root / "derivatives" / "preproc"
    deriv.mkdir(parents=True, exist_ok=True)
    (deriv / "dataset_description.json").write_text(json.dumps({
        "Name": "synthetic preproc", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "tests"}],
    }))
    for subject in subjects:
        if with_eeg:
            raw = make_eeg_raw(n_volumes * tr_s + trigger_offset_s + 2, n_volumes=n_volumes,
                               tr_s=tr_s, seed=seed + int(subject), trigger_offset_s=trigger_offset_s)
            path = mne_bids.BIDSPath(subject=subject, task="rest", root=root, datatype="eeg")
            mne_bids.write_raw_bids(raw, path, format="BrainVision", allow_preload=True,
                                    overwrite=True, verbose=False)
        if not with_bold:
            continue
        func = deriv / f"sub-{subject}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
        signals = np.array([np.convolve(rng.standard_normal(n_volumes + 12), kernel, "valid")
                            for _ in range(200)])
        for space in spaces:
            prefix = func / f"sub-{subject}_task-rest"
            if space == "fsaverage5":
                labels, _ = surface_atlas(templates_dir, "fsaverage5", 200)
                for hemi, key, structure in (("L", "lh", "CortexLeft"), ("R", "rh", "CortexRight")):
                    lab = labels[key]
                    data = np.where(lab[:, None] > 0, signals[np.maximum(lab, 1) - 1], 0.0)
                    data = data + 0.1 * rng.standard_normal(data.shape)
                    nib.save(_gifti(data, structure, tr_s),
                             f"{prefix}_hemi-{hemi}_space-fsaverage5_bold.func.gii")
                (func / f"sub-{subject}_task-rest_space-fsaverage5_bold.json").write_text(
                    json.dumps({"RepetitionTime": tr_s, "TaskName": "rest"}))
            elif space == "MNI152NLin6Asym":
                from nilearn.image import resample_img

                atlas_path, _ = volume_atlas(templates_dir, space, 200)
                atlas = nib.load(atlas_path)
                affine = atlas.affine.copy()
                affine[:3, :3] *= 2  # 4 mm grid
                shape = tuple(int(np.ceil(s / 2)) for s in atlas.shape)
                small = resample_img(atlas, target_affine=affine, target_shape=shape,
                                     interpolation="nearest", force_resample=True,
                                     copy_header=True)
                lab = np.asarray(small.dataobj).astype(int)
                data = np.where(lab[..., None] > 0, signals[np.maximum(lab, 1) - 1], 0.0)
                data = (100 + data + 0.1 * rng.standard_normal(data.shape)).astype(np.float32)
                img = nib.Nifti1Image(data, affine)
                img.header.set_xyzt_units("mm", "sec")
                img.header["pixdim"][4] = tr_s
                nib.save(img, f"{prefix}_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz")
                (func / f"sub-{subject}_task-rest_space-MNI152NLin6Asym_desc-preproc_bold.json"
                 ).write_text(json.dumps({"RepetitionTime": tr_s, "TaskName": "rest"}))
            elif space == "fsLR":
                from nibabel.cifti2.cifti2_axes import SeriesAxis

                from samba_bids.templates import cifti_atlas, read_cifti_labels

                dlabel, _ = cifti_atlas(templates_dir, 200)
                lab, _, brain_models = read_cifti_labels(dlabel)
                data = np.where(lab[:, None] > 0, signals[np.maximum(lab, 1) - 1], 0.0)
                data = (100 + data + 0.1 * rng.standard_normal(data.shape)).astype(np.float32)
                series = SeriesAxis(start=0.0, step=tr_s, size=n_volumes, unit="SECOND")
                header = nib.cifti2.Cifti2Header.from_axes((series, brain_models))
                nib.save(nib.Cifti2Image(data.T, header),
                         f"{prefix}_space-fsLR_den-91k_bold.dtseries.nii")
                (func / f"sub-{subject}_task-rest_space-fsLR_den-91k_bold.json").write_text(
                    json.dumps({"RepetitionTime": tr_s, "TaskName": "rest"}))
        confounds = {f"{n}": rng.standard_normal(n_volumes) * 0.1
                     for n in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                               "csf", "white_matter", "global_signal")}
        import pandas as pd

        pd.DataFrame(confounds).to_csv(
            func / f"sub-{subject}_task-rest_desc-confounds_timeseries.tsv", sep="\t", index=False)
    return root


def tree_digest(root):
    """{relative path: (size, mtime_ns)} of every file under ``root`` (to prove nothing changed)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}
