"""Reading, preprocessing, template forward/inverse and parcel time courses (ephys/).

Real data from ../shared/data (skipped when absent): the ds-real-rest EEG (30 EEG + 2 EOG,
128 Hz, 238 s), the 1 s MNE sample MEG file, the fsaverage5 templates.
"""

from __future__ import annotations

import shutil

import mne
import numpy as np
import pytest
from mne.minimum_norm import apply_inverse_raw

from samba_bids.ephys import (
    SourceParcels,
    compute_source_parcels,
    detect_modality,
    empty_room_noise_cov,
    make_inverse,
    make_parcel_kernel,
    make_template_forward,
    parcel_time_courses,
    preprocess_raw,
    read_ephys,
    template_labels,
)
from samba_bids.errors import DataError, NoInputError, UsageError
from samba_bids.templates import surface_atlas

EEG_REL = "sub-01/eeg/sub-01_task-rest_eeg.vhdr"
SUBJECT = "fsaverage5"
N_PARCELS = 100


def _max_rel_error(ours, reference):
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def _mne_parcels(raw, inverse, labels, method, lambda2):
    """MNE's own path: full source estimate, then signed label means."""
    stc = apply_inverse_raw(raw, inverse, lambda2, method=method, pick_ori="normal", verbose=False)
    return mne.extract_label_time_course(stc, labels, inverse["src"], mode="mean_flip",
                                         verbose=False)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def eeg_file(real_rest):
    return real_rest / EEG_REL


@pytest.fixture(scope="module")
def eeg_raw(eeg_file):
    return read_ephys(eeg_file)


@pytest.fixture(scope="module")
def eeg_20s(eeg_raw):
    return preprocess_raw(eeg_raw.copy().crop(0.0, 20.0), modality="eeg")


@pytest.fixture(scope="module")
def eeg_model(eeg_20s, templates_dir):
    forward, fwd_prov = make_template_forward(eeg_20s.info, templates_dir, subject=SUBJECT,
                                              modality="eeg")
    inverse, inv_prov = make_inverse(eeg_20s.info, forward, method="dSPM", snr=3.0)
    labels = template_labels(templates_dir, SUBJECT, N_PARCELS)
    return dict(forward=forward, fwd_prov=fwd_prov, inverse=inverse, inv_prov=inv_prov,
                labels=labels)


@pytest.fixture(scope="module")
def _ico4(templates_dir):
    return mne.setup_source_space(SUBJECT, spacing="ico4", subjects_dir=templates_dir,
                                  add_dist=False, verbose=False)


@pytest.fixture
def ico4_source_space(monkeypatch, _ico4):
    """Build template forwards on the ico-4 subset (2 x 2,562) of fsaverage5's vertices.

    Only for the slow forward models (MEG BEM, EEG three-layer BEM: MNE's BEM forward runs
    without numba here); everything else in ``make_template_forward`` is unchanged.
    """
    from samba_bids.ephys import forward as source

    monkeypatch.setattr(source, "_cached_source_space", lambda templates_dir, subject: _ico4)
    return _ico4


def _copy_dataset(real_rest, dest):
    """The EEG files and dataset_description of ds-real-rest, writable, under ``dest``."""
    shutil.copy(real_rest / "dataset_description.json", dest / "dataset_description.json")
    shutil.copytree(real_rest / "sub-01" / "eeg", dest / "sub-01" / "eeg")
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest / EEG_REL


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


# ----------------------------------------------------------------------------- 1. kernel == MNE


@pytest.mark.parametrize("method", ["dSPM", "MNE", "sLORETA", "eLORETA"])
def test_parcel_kernel_equals_mne_path_on_real_eeg(eeg_20s, eeg_model, method):
    """kernel @ data equals apply_inverse_raw(normal) + extract_label_time_course(mean_flip)."""
    inverse, labels = eeg_model["inverse"], eeg_model["labels"]
    lambda2 = 1.0 / 3.0**2
    kernel = make_parcel_kernel(inverse, eeg_20s.info, labels, method=method, lambda2=lambda2)
    assert kernel.shape == (N_PARCELS, 30)
    assert kernel.dtype == np.float64
    ours = parcel_time_courses(eeg_20s, kernel, chunk_seconds=7.0)
    reference = _mne_parcels(eeg_20s, inverse, labels, method, lambda2)
    assert ours.shape == reference.shape == (N_PARCELS, eeg_20s.n_times)
    assert np.abs(reference).max() > 0
    err = _max_rel_error(ours, reference)
    print(f"{method}: max relative error vs MNE {err:.2e}")  # shown with pytest -s
    assert err < 1e-12
    # the average-reference projector is inside the kernel: a common offset on all
    # electrodes changes nothing
    np.testing.assert_allclose(kernel.sum(axis=1), 0.0, atol=1e-12 * np.abs(kernel).max())


def test_parcel_kernel_rows_follow_the_labels(eeg_20s, eeg_model):
    """Reordering the labels reorders the kernel rows; the kernel of one label is its row."""
    inverse, labels = eeg_model["inverse"], eeg_model["labels"]
    full = make_parcel_kernel(inverse, eeg_20s.info, labels)
    picked = [labels[7], labels[3], labels[60]]
    part = make_parcel_kernel(inverse, eeg_20s.info, picked)
    np.testing.assert_allclose(part, full[[7, 3, 60]], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------- 2. chunking


@pytest.mark.parametrize("chunk_seconds", [0.01, 1.0, 3.33, 19.99, 1000.0])
def test_chunked_equals_unchunked(eeg_20s, chunk_seconds):
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((5, len(eeg_20s.ch_names)))
    whole = kernel @ eeg_20s.get_data()
    chunked = parcel_time_courses(eeg_20s, kernel, chunk_seconds=chunk_seconds)
    assert chunked.shape == (5, eeg_20s.n_times)
    np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13 * np.abs(whole).max())


def test_parcel_time_courses_rejects_bad_arguments(eeg_20s):
    with pytest.raises(ValueError, match="30 channels"):
        parcel_time_courses(eeg_20s, np.ones((4, 29)))
    with pytest.raises(ValueError, match="chunk_seconds"):
        parcel_time_courses(eeg_20s, np.ones((4, 30)), chunk_seconds=0)


# ----------------------------------------------------------------------------- 3. preprocessing


def test_preprocess_real_eeg(eeg_raw):
    pre = preprocess_raw(eeg_raw, modality="eeg", sfreq_hz=100.0)
    assert pre.info["sfreq"] == 100.0
    assert pre.n_times == round(eeg_raw.n_times * 100 / 128)
    assert pre.get_channel_types(unique=True) == ["eeg"]
    assert len(pre.ch_names) == 30
    assert not {"EOG1", "EOG2"} & set(pre.ch_names)
    assert pre.info["highpass"] == pytest.approx(0.5)
    assert pre.info["lowpass"] == pytest.approx(45.0)
    projs = pre.info["projs"]
    assert len(projs) == 1 and projs[0]["desc"] == "Average EEG reference"
    assert not projs[0]["active"]  # a projector, not applied to the data
    # annotations (events / volume triggers) survive resampling, in seconds
    assert len(pre.annotations) == len(eeg_raw.annotations) > 0
    np.testing.assert_allclose(pre.annotations.onset, eeg_raw.annotations.onset, atol=1e-9)
    assert list(pre.annotations.description) == list(eeg_raw.annotations.description)
    # the input is untouched
    assert eeg_raw.info["sfreq"] == 128.0 and len(eeg_raw.ch_names) == 32


def test_preprocess_drops_bad_channels(eeg_raw):
    raw = eeg_raw.copy()
    raw.info["bads"] = ["Cz", "EOG1"]
    pre = preprocess_raw(raw, modality="eeg")
    assert len(pre.ch_names) == 29 and "Cz" not in pre.ch_names


def _sine_raw(sfreq=500.0, duration_s=20.0, n_channels=4):
    times = np.arange(int(duration_s * sfreq)) / sfreq
    phases = np.linspace(0, np.pi, n_channels)[:, None]
    data = 1e-5 * (np.sin(2 * np.pi * 10 * times + phases)
                   + np.sin(2 * np.pi * 60 * times + 2 * phases))
    info = mne.create_info([f"EEG{i:02d}" for i in range(n_channels)], sfreq, "eeg")
    return mne.io.RawArray(data, info, verbose=False)


def _band_power(raw, freq):
    psd = raw.compute_psd(fmin=1.0, fmax=raw.info["sfreq"] / 2, n_fft=int(raw.info["sfreq"] * 4),
                          verbose=False)
    data, freqs = psd.get_data(return_freqs=True)
    return data[:, np.argmin(np.abs(freqs - freq))].mean()


def test_bandpass_removes_out_of_band_sine():
    """10 Hz + 60 Hz; a 45 Hz low-pass keeps 10 Hz and removes 60 Hz (PSD, before/after)."""
    raw = _sine_raw()
    pre = preprocess_raw(raw, modality="eeg", l_freq_hz=0.5, h_freq_hz=45.0, sfreq_hz=250.0)
    assert pre.info["sfreq"] == 250.0
    keep = _band_power(pre, 10.0) / _band_power(raw, 10.0)
    drop = _band_power(pre, 60.0) / _band_power(raw, 60.0)
    assert 0.8 < keep < 1.2  # 10 Hz passes (within 1 dB)
    assert drop < 1e-4  # 60 Hz attenuated by more than 40 dB
    # without the low-pass, 60 Hz survives: the attenuation is the filter's doing
    wide = preprocess_raw(raw, modality="eeg", l_freq_hz=0.5, h_freq_hz=None, sfreq_hz=250.0)
    assert _band_power(wide, 60.0) / _band_power(raw, 60.0) > 0.5


def test_lowpass_is_clamped_below_new_nyquist():
    pre = preprocess_raw(_sine_raw(), modality="eeg", h_freq_hz=80.0, sfreq_hz=100.0)
    assert pre.info["sfreq"] == 100.0
    assert pre.info["lowpass"] <= 45.0


def test_preprocess_rejects_nan_flat_and_too_few_channels():
    raw = _sine_raw()
    data = raw.get_data()
    data[2, 100] = np.nan
    with pytest.raises(DataError, match="EEG02.*NaN"):
        preprocess_raw(mne.io.RawArray(data, raw.info, verbose=False), modality="eeg")
    flat = mne.io.RawArray(np.zeros_like(data), raw.info, verbose=False)
    with pytest.raises(DataError, match="flat"):
        preprocess_raw(flat, modality="eeg")
    few = raw.copy()
    few.info["bads"] = ["EEG00", "EEG01", "EEG02"]
    with pytest.raises(DataError, match="1 good EEG channel"):
        preprocess_raw(few, modality="eeg")
    with pytest.raises(UsageError):
        preprocess_raw(raw, modality="auto")


def test_detect_modality(eeg_raw, shared_data):
    assert detect_modality(eeg_raw) == "eeg"
    assert detect_modality(eeg_raw, "eeg") == "eeg"
    with pytest.raises(DataError, match="no MEG channels"):
        detect_modality(eeg_raw, "meg")
    with pytest.raises(UsageError):
        detect_modality(eeg_raw, "ecog")
    meg = mne.io.read_raw_fif(shared_data / "recordings/meg/sample_audvis_trunc_raw_sss.fif",
                              verbose=False)
    assert detect_modality(meg) == "meg"  # MEG preferred; the file also has 60 EEG channels
    assert detect_modality(meg, "eeg") == "eeg"


# ----------------------------------------------------------------------------- 4. reading


def test_read_real_eeg(eeg_raw, eeg_file):
    assert len(eeg_raw.ch_names) == 32
    assert eeg_raw.info["sfreq"] == 128.0
    assert eeg_raw.get_channel_types().count("eog") == 2
    assert eeg_raw.n_times == 30504
    assert len(eeg_raw.annotations) > 0
    montage = eeg_raw.get_montage()
    assert montage is not None and len(montage.ch_names) == 30


@pytest.mark.parametrize("size", [1_000_001, 999_936])  # mid-sample; whole samples (61 s)
def test_read_truncated_brainvision(real_rest, tmp_path, size):
    vhdr = _copy_dataset(real_rest, tmp_path)
    eeg = vhdr.with_suffix(".eeg")
    with open(eeg, "r+b") as fh:
        fh.truncate(size)
    before = _snapshot(tmp_path)
    with pytest.raises(DataError, match=r"sub-01_task-rest_eeg\.(eeg|vhdr): cannot be read as "
                                        r"BrainVision.*truncated"):
        read_ephys(vhdr)
    assert _snapshot(tmp_path) == before  # nothing written into the dataset


def test_read_corrupt_header_and_bad_names(real_rest, tmp_path):
    vhdr = _copy_dataset(real_rest, tmp_path)
    before = _snapshot(tmp_path)
    assert len(read_ephys(vhdr).ch_names) == 32
    assert _snapshot(tmp_path) == before
    vhdr.write_bytes(b"\x00\x01garbage, not a BrainVision header\n")
    with pytest.raises(DataError, match="sub-01_task-rest_eeg.vhdr: cannot be read as "
                                        "BrainVision"):
        read_ephys(vhdr)
    with pytest.raises(NoInputError):
        read_ephys(tmp_path / "sub-01/eeg/sub-01_task-missing_eeg.vhdr")
    with pytest.raises(DataError, match="no MEG channels"):
        read_ephys(real_rest / EEG_REL, modality="meg")
    stray = tmp_path / "recording.vhdr"
    shutil.copy(real_rest / EEG_REL, stray)
    with pytest.raises(DataError, match="recording.vhdr: not a BIDS electrophysiology file"):
        read_ephys(stray)


# ----------------------------------------------------------------------------- 5. MEG forward


def test_meg_template_forward_single_layer_bem(shared_data, templates_dir, ico4_source_space):
    """The real sample MEG (SSS) builds a template forward on MNE's fsaverage inner skull.

    On the ico-4 vertices, with the magnetometers and 30 gradiometers (mixed units in the
    whitener; the inverse's SVD stays small); the kernel still equals MNE's path.
    """
    raw = mne.io.read_raw_fif(shared_data / "recordings/meg/sample_audvis_trunc_raw_sss.fif",
                              preload=True, verbose=False)
    pre = preprocess_raw(raw, modality="meg", l_freq_hz=None, h_freq_hz=40.0, sfreq_hz=100.0)
    assert set(pre.get_channel_types()) == {"mag", "grad"} and len(pre.ch_names) == 306
    grads = [name for name, kind in zip(pre.ch_names, pre.get_channel_types()) if kind == "grad"]
    mags = [name for name, kind in zip(pre.ch_names, pre.get_channel_types()) if kind == "mag"]
    pre.pick(mags + grads[:30])
    n_meg = len(pre.ch_names)
    assert n_meg == 132
    forward, prov = make_template_forward(pre.info, templates_dir, subject=SUBJECT,
                                          modality="meg")
    assert prov["HeadModel"] == "single-layer inner-skull BEM (MNE fsaverage)"
    assert "ico-4" in prov["BEM"] and "0.3 S/m" in prov["BEM"]
    assert prov["NSources"] == 5124 == forward["nsource"]  # every source inside the skull
    assert "fsaverage-trans.fif" in prov["Transform"]
    assert forward["sol"]["data"].shape == (n_meg, 3 * 5124)
    assert np.isfinite(forward["sol"]["data"]).all()
    inverse, inv_prov = make_inverse(pre.info, forward)
    assert inv_prov["NoiseCovariance"].startswith("ad hoc")
    labels = template_labels(templates_dir, SUBJECT, N_PARCELS)
    kernel = make_parcel_kernel(inverse, pre.info, labels)
    assert kernel.shape == (N_PARCELS, n_meg)
    # every channel contributes (truncating the diagonal ad hoc covariance to the SSS rank
    # would zero whole channels), and every parcel has sources
    assert inv_prov["NoiseCovarianceRank"] == n_meg
    assert (np.abs(kernel).max(axis=0) > 0).all()
    assert (np.abs(kernel).max(axis=1) > 0).all()
    reference = _mne_parcels(pre, inverse, labels, "dSPM", 1.0 / 9.0)
    assert _max_rel_error(parcel_time_courses(pre, kernel), reference) < 1e-12


# ----------------------------------------------------------------------------- 6. EEG head model


def test_eeg_without_bem_uses_sphere_fitted_to_head(eeg_model):
    prov = eeg_model["fwd_prov"]
    assert prov["HeadModel"].startswith("sphere model fitted to the head (r0 = ")
    assert "radius" in prov["HeadModel"]
    assert prov["NSources"] == 20484  # the sphere encloses the whole template cortex
    gain = eeg_model["forward"]["sol"]["data"]
    assert gain.shape == (30, 3 * 20484)
    # no source left without a field (MNE zeroes sources outside the brain shell)
    assert (np.abs(gain).reshape(30, -1, 3).sum(axis=(0, 2)) > 0).all()


def test_sphere_forward_matches_mne_head_frame_forward(eeg_20s, eeg_model, templates_dir):
    """The MRI-frame sphere forward equals MNE's head-frame one where MNE computes it.

    (MNE drops the sources whose MRI coordinates fall outside a sphere given in head
    coordinates and zeroes others; compared on the sources it keeps with a non-zero field.)
    """
    from mne.transforms import apply_trans, invert_transform

    from samba_bids.ephys.source import FSAVERAGE_TRANS, _template_sphere

    r0_mri, radius, _ = _template_sphere(str(templates_dir.resolve()), SUBJECT)
    assert f"radius {radius * 1000:.1f} mm" in eeg_model["fwd_prov"]["HeadModel"]
    trans = mne.read_trans(FSAVERAGE_TRANS)
    r0_head = apply_trans(invert_transform(trans), r0_mri)
    sphere = mne.make_sphere_model(r0=r0_head, head_radius=radius, verbose=False)
    src = mne.setup_source_space(SUBJECT, spacing="all", subjects_dir=templates_dir,
                                 add_dist=False, verbose=False)
    theirs = mne.make_forward_solution(eeg_20s.info, trans, src, sphere, meg=False, eeg=True,
                                       verbose=False)
    theirs = mne.convert_forward_solution(theirs, surf_ori=True, verbose=False)
    ours = eeg_model["forward"]
    keep = [np.searchsorted(o["vertno"], t["vertno"])
            for o, t in zip(ours["src"], theirs["src"])]
    index = np.concatenate([keep[0], keep[1] + len(ours["src"][0]["vertno"])])
    normal_ours = ours["sol"]["data"][:, 2::3][:, index]  # surf_ori: normal component third
    normal_theirs = theirs["sol"]["data"][:, 2::3]
    nonzero = np.abs(normal_theirs).sum(axis=0) > 0
    assert nonzero.sum() > 10_000
    np.testing.assert_allclose(normal_ours[:, nonzero], normal_theirs[:, nonzero], rtol=0,
                               atol=1e-6 * np.abs(normal_theirs).max())


def test_eeg_uses_three_layer_bem_when_present(eeg_20s, templates_dir, tmp_path,
                                                ico4_source_space):
    """A ``<subject>/bem/*-bem-sol.fif`` with three layers is used instead of the sphere."""
    from samba_bids.ephys.source import FSAVERAGE_INNER_SKULL

    # a coarse three-layer BEM made of the fsaverage inner skull scaled outwards
    templates = tmp_path / "templates"
    (templates / SUBJECT).mkdir(parents=True)
    for sub in ("surf", "label"):
        (templates / SUBJECT / sub).symlink_to(templates_dir / SUBJECT / sub)
    bem_dir = templates / SUBJECT / "bem"
    bem_dir.mkdir()
    inner = mne.read_bem_surfaces(FSAVERAGE_INNER_SKULL, verbose=False)[0]
    centre = inner["rr"].mean(axis=0)
    for name, scale in (("inner_skull", 1.0), ("outer_skull", 1.08), ("outer_skin", 1.2)):
        rr = centre + scale * (inner["rr"] - centre)
        mne.write_surface(bem_dir / f"{name}.surf", rr * 1000, inner["tris"])
    model = mne.make_bem_model(SUBJECT, ico=2, subjects_dir=templates, verbose=False)
    mne.write_bem_solution(bem_dir / "test-bem-sol.fif", mne.make_bem_solution(model,
                                                                               verbose=False))
    forward, prov = make_template_forward(eeg_20s.info, templates, modality="eeg")
    assert prov["HeadModel"] == "three-layer BEM"
    assert forward["nsource"] == prov["NSources"] > 5000
    assert forward["sol"]["data"].shape[0] == 30


# ----------------------------------------------------------------------------- labels, workflow


def test_template_labels_follow_the_atlas_order(templates_dir):
    labels = template_labels(templates_dir, SUBJECT, N_PARCELS)
    vertex_parcels, names = surface_atlas(templates_dir, SUBJECT, N_PARCELS)
    assert [label.name.rsplit("-", 1)[0] for label in labels] == names
    assert [label.hemi for label in labels] == ["lh"] * 50 + ["rh"] * 50
    for index in (1, 37, 50, 51, 100):
        label = labels[index - 1]
        expected = np.flatnonzero(vertex_parcels[label.hemi] == index)
        np.testing.assert_array_equal(np.sort(label.vertices), expected)


def test_compute_source_parcels_on_real_eeg(eeg_20s, eeg_model, templates_dir):
    parcels = compute_source_parcels(eeg_20s, templates_dir, modality="eeg", subject=SUBJECT,
                                     n_parcels=N_PARCELS, method="dSPM", snr=3.0,
                                     chunk_seconds=5.0)
    assert isinstance(parcels, SourceParcels)
    assert parcels.data.shape == (N_PARCELS, eeg_20s.n_times)
    assert parcels.data.dtype == np.float64
    assert parcels.sfreq_hz == 100.0
    _, names = surface_atlas(templates_dir, SUBJECT, N_PARCELS)
    assert parcels.names == names
    assert parcels.centroids_mm.shape == (N_PARCELS, 3)
    # left-hemisphere parcels have negative x, right positive (fsaverage RAS, mm)
    assert (parcels.centroids_mm[:50, 0] < 0).all() and (parcels.centroids_mm[50:, 0] > 0).all()
    prov = parcels.provenance
    assert prov["ParcelKernelShape"] == [N_PARCELS, 30]
    assert prov["InverseMethod"] == "dSPM" and prov["Lambda2"] == pytest.approx(1 / 9)
    assert prov["SourceOrientation"] == "normal"
    assert prov["NoiseCovariance"].startswith("ad hoc")
    assert prov["NoiseCovarianceRank"] == 29  # 30 electrodes, average reference
    assert prov["HeadModel"].startswith("sphere model")
    reference = _mne_parcels(eeg_20s, eeg_model["inverse"], eeg_model["labels"], "dSPM", 1 / 9)
    assert _max_rel_error(parcels.data, reference) < 1e-12
    import json

    json.dumps(prov)  # goes into JSON sidecars


def test_make_inverse_with_given_noise_cov(eeg_20s, eeg_model):
    cov = mne.compute_raw_covariance(eeg_20s, verbose=False)
    inverse, prov = make_inverse(eeg_20s.info, eeg_model["forward"], method="MNE", snr=2.0,
                                 noise_cov=cov)
    assert prov["NoiseCovariance"].startswith("empirical")
    assert prov["Lambda2"] == pytest.approx(0.25) and prov["InverseMethod"] == "MNE"
    assert prov["NoiseCovarianceRank"] == 29
    kernel = make_parcel_kernel(inverse, eeg_20s.info, eeg_model["labels"], method="MNE",
                                lambda2=0.25)
    reference = _mne_parcels(eeg_20s, inverse, eeg_model["labels"], "MNE", 0.25)
    assert _max_rel_error(parcel_time_courses(eeg_20s, kernel), reference) < 1e-12
    with pytest.raises(UsageError, match="inverse method"):
        make_inverse(eeg_20s.info, eeg_model["forward"], method="LCMV")


def test_empty_room_noise_cov_absent(eeg_file, eeg_20s):
    assert empty_room_noise_cov(eeg_file, eeg_20s) is None  # EEG: never


@pytest.mark.filterwarnings("ignore:Too few samples:RuntimeWarning")  # a 1 s recording
def test_empty_room_noise_cov_from_bids_meg(shared_data, tmp_path):
    """A BIDS MEG run with an empty-room recording of the same day gets its covariance.

    The "empty room" here is the run itself, so the answer is the covariance of the
    preprocessed run.
    """
    import mne_bids

    raw = mne.io.read_raw_fif(shared_data / "recordings/meg/sample_audvis_trunc_raw_sss.fif",
                              verbose=False)
    root = tmp_path / "bids"
    run = mne_bids.BIDSPath(subject="01", task="rest", datatype="meg", root=root)
    date = raw.info["meas_date"].strftime("%Y%m%d")
    empty = mne_bids.BIDSPath(subject="emptyroom", session=date, task="noise", datatype="meg",
                              root=root)
    for bids_path in (run, empty):
        mne_bids.write_raw_bids(raw, bids_path, overwrite=True, verbose=False)
    fname = run.copy().update(suffix="meg", extension=".fif").fpath
    before = _snapshot(root)
    pre = preprocess_raw(read_ephys(fname), modality="meg", l_freq_hz=None, h_freq_hz=40.0,
                         sfreq_hz=100.0)
    cov = empty_room_noise_cov(fname, pre)
    assert _snapshot(root) == before  # reading and searching wrote nothing
    assert isinstance(cov, mne.Covariance)
    assert cov["names"] == pre.ch_names
    expected = mne.compute_raw_covariance(pre, verbose=False)
    np.testing.assert_allclose(cov.data, expected.data, rtol=1e-10,
                               atol=1e-10 * np.abs(expected.data).max())
