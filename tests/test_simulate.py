"""The simulator writes a dataset the pipeline reads, with a ground truth that holds up.

One short EEG dataset (120 s, 32 channels, Schaefer-100 on both sides) and one short MEG
dataset (60 s, 102 magnetometers) are simulated per module; the recovery tests run the
pipeline's own EEG and MEG paths on them.
"""

import json

import numpy as np
import pandas as pd
import pytest

from samba_bids import simulate as sim
from samba_bids.errors import NoInputError, UsageError

DURATION_S = 120.0
TR_S = 2.0
N_VOLUMES = int(DURATION_S / TR_S)
SCALE = 100
PREFIX = "sub-01_task-rest"


@pytest.fixture(scope="module")
def dataset(templates_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sim") / "ds"
    return sim.simulate_dataset(
        root, templates_dir, n_subjects=2, duration_s=DURATION_S, tr_s=TR_S, n_channels=32,
        ephys_scale=SCALE, bold_scale=SCALE, seed=0,
    )


def _truth(root, subject="01"):
    return root / "derivatives" / "truth" / f"sub-{subject}" / "func"


def _tsv(path):
    return pd.read_csv(path, sep="\t")


def test_dataset_is_read_by_the_pipeline(dataset, templates_dir, tmp_path):
    from samba_bids.bids.layout import (
        collect_pairs,
        default_derivatives,
        index_dataset,
        validate_dataset,
    )
    from samba_bids.bold.loading import load_surface_bold
    from samba_bids.bold.parcellation import load_bold_atlas, parcellate_bold

    validate_dataset(dataset)
    layout = index_dataset(dataset, default_derivatives(dataset), tmp_path / "work")
    pairs = collect_pairs(layout, bold_space="fsaverage5")
    assert [p.entities["subject"] for p in pairs] == ["01", "02"]
    assert all(p.tr_s == TR_S and p.confounds_file is not None for p in pairs)
    volume_pairs = collect_pairs(layout, bold_space="MNI152NLin6Asym")
    assert len(volume_pairs) == 2

    # the parcel means of the written GIFTI are the recorded noisy BOLD (+ baseline)
    data, _ = load_surface_bold(pairs[0].bold_files)
    atlas = load_bold_atlas(templates_dir, "fsaverage5", SCALE)
    observed = parcellate_bold(data, atlas)
    noisy = _tsv(_truth(dataset) / f"{PREFIX}_desc-noisy_timeseries.tsv").to_numpy().T
    assert observed.shape == noisy.shape == (SCALE, N_VOLUMES)
    r = [np.corrcoef(observed[m], noisy[m])[0, 1] for m in range(SCALE)]
    assert np.min(r) > 0.99


def test_noise_ceiling_matches_snr(dataset):
    expected = sim.expected_noise_ceiling(sim.DEFAULT_SNR)
    assert expected == pytest.approx(0.8)
    for subject in ("01", "02"):
        folder = _truth(dataset, subject)
        prefix = f"sub-{subject}_task-rest"
        ceiling = _tsv(folder / f"{prefix}_desc-noiseceiling_metrics.tsv")
        noiseless = _tsv(folder / f"{prefix}_desc-noiseless_timeseries.tsv")
        noisy = _tsv(folder / f"{prefix}_desc-noisy_timeseries.tsv")
        assert list(ceiling["parcel"]) == list(noisy.columns) == list(noiseless.columns)
        # recomputed independently from the recorded series
        r = [np.corrcoef(noiseless[c], noisy[c])[0, 1] for c in noisy.columns]
        np.testing.assert_allclose(ceiling["noise_ceiling_r"], r, atol=1e-5)
        assert np.median(r) == pytest.approx(expected, abs=0.03)
        assert np.percentile(r, 5) > expected - 0.12
        params = json.loads((folder / f"{prefix}_desc-truth_parameters.json").read_text())
        assert params["SNR"] == pytest.approx(sim.DEFAULT_SNR)
        assert params["NumberOfVolumes"] == N_VOLUMES
    # subjects differ in activity and noise
    a = _tsv(_truth(dataset, "01") / "sub-01_task-rest_desc-noisy_timeseries.tsv").to_numpy()
    b = _tsv(_truth(dataset, "02") / "sub-02_task-rest_desc-noisy_timeseries.tsv").to_numpy()
    assert not np.allclose(a, b)


def test_planted_hrfs_peak_between_4_and_7_s(dataset):
    import torch

    from samba_bids.model.hrf import HRF_PARAMETER_NAMES, HRF_PARAMETERS, double_gamma

    hrf = _tsv(_truth(dataset) / f"{PREFIX}_desc-truth_hrf.tsv")
    assert list(hrf.columns) == ["parcel", *HRF_PARAMETER_NAMES, "time_to_peak_s"]
    assert len(hrf) == SCALE
    ttp = hrf["time_to_peak_s"].to_numpy()
    assert ttp.min() >= 4.0 and ttp.max() <= 7.0
    assert ttp.max() - ttp.min() > 2.0  # spread over the range
    # independently: the maximum of the model's own double gamma on a 1 ms grid
    t = torch.arange(0.0, 32.0, 0.001, dtype=torch.float64)
    params = torch.tensor(hrf[list(HRF_PARAMETER_NAMES)].to_numpy(), dtype=torch.float64)
    peak = t[double_gamma(t, params).argmax(dim=-1)].numpy()
    np.testing.assert_allclose(ttp, peak, atol=0.0015)
    # every planted parameter lies inside the learnable bounds
    for name, _, lower, upper in HRF_PARAMETERS:
        assert hrf[name].between(lower, upper).all(), name
    # shared across subjects
    other = _tsv(_truth(dataset, "02") / "sub-02_task-rest_desc-truth_hrf.tsv")
    pd.testing.assert_frame_equal(hrf, other)


def test_mixing_is_sparse_local_and_alpha_negative(dataset):
    mixing = _tsv(_truth(dataset) / f"{PREFIX}_desc-mixing_weights.tsv")
    assert list(mixing.columns) == ["bold_parcel", "source_parcel", "band", "weight"]
    assert set(mixing["band"]) <= set(sim.BANDS)
    alpha = mixing["band"] == "alpha"
    assert (mixing.loc[alpha, "weight"] < 0).all() and (mixing.loc[~alpha, "weight"] > 0).all()
    per_bold = mixing.groupby("bold_parcel")["source_parcel"].nunique()
    assert len(per_bold) == SCALE and (per_bold == sim.N_SOURCES_PER_BOLD).all()
    hemi = mixing["bold_parcel"].str.contains("_LH_") == mixing["source_parcel"].str.contains(
        "_LH_")
    assert hemi.all()


def test_volume_triggers_read_back(dataset):
    from samba_bids.alignment import volume_onsets
    from samba_bids.ephys.preprocessing import read_ephys

    raw = read_ephys(dataset / "sub-01" / "eeg" / f"{PREFIX}_eeg.vhdr")
    onsets, how = volume_onsets(raw, N_VOLUMES, TR_S, trigger="Volume")
    assert "Volume" in how
    assert onsets[0] == pytest.approx(sim.FIRST_VOLUME_S, abs=1.0 / raw.info["sfreq"])
    np.testing.assert_allclose(np.diff(onsets), TR_S, atol=1.0 / raw.info["sfreq"])
    assert len(raw.ch_names) == 32
    assert raw.times[-1] == pytest.approx(sim.FIRST_VOLUME_S + DURATION_S + sim.TAIL_S,
                                          abs=0.01)


def _planted_vs_reconstructed(root, parcels):
    """The truth parameters, and the Pearson r per source parcel of the planted activity
    (regenerated from the seed, resampled to 100 Hz and band-passed like the pipeline) with
    the reconstructed parcel time courses."""
    import mne

    params = json.loads((_truth(root) / f"{PREFIX}_desc-truth_parameters.json").read_text())
    sfreq = params["SamplingFrequency"]
    n_lead = round(sim.LEAD_IN_S * sfreq)
    n_rec = round(params["RecordingDuration"] * sfreq)
    planted = sim.simulate_parcel_activity(
        SCALE, n_lead + n_rec, sfreq, sim._subject_rng(params["Seed"], 1, 0),
        groups=sim.network_groups(parcels.names),
        group_coupling=params["EnvelopeGroupCoupling"],
    ).data[:, n_lead:].astype(float)
    planted = mne.filter.resample(planted, down=sfreq / 100.0, verbose=False)
    planted = mne.filter.filter_data(planted, 100.0, 0.5, 45.0, verbose=False)
    n = min(planted.shape[1], parcels.data.shape[1])
    r = np.array([np.corrcoef(planted[p, :n], parcels.data[p, :n])[0, 1]
                  for p in range(SCALE)])
    return params, r


def test_planted_activity_is_recovered_by_the_source_path(dataset, templates_dir):
    """Read, preprocess and source-reconstruct the written EEG; compare with the planted."""

    from samba_bids.ephys.preprocessing import preprocess_raw, read_ephys
    from samba_bids.ephys.source import compute_source_parcels

    raw = read_ephys(dataset / "sub-01" / "eeg" / f"{PREFIX}_eeg.vhdr")
    pre = preprocess_raw(raw, modality="eeg", sfreq_hz=100.0)
    parcels = compute_source_parcels(pre, templates_dir, modality="eeg", n_parcels=SCALE)

    params, r = _planted_vs_reconstructed(dataset, parcels)
    # measured (dSPM, 32 channels, 100 parcels): median 0.35, all positive, 85% above 0.2.
    # With every vertex at sign +1 instead of MNE's label flips: median 0.27, 60% above 0.2.
    assert (r > 0).mean() > 0.9
    assert np.median(r) > 0.3
    assert (r > 0.2).mean() > 0.75

    # slow alpha power per volume against the recorded truth (measured: median r 0.31, 89%
    # positive; with vertex signs all +1: 0.22)
    logpow = sim.band_log_power(parcels.data, parcels.sfreq_hz)
    k = list(sim.BANDS).index("alpha")
    onsets = params["FirstVolumeOnset"] + np.arange(N_VOLUMES) * TR_S
    steps = [(int(round(o / sim.DRIVE_STEP_S)), int(round((o + TR_S) / sim.DRIVE_STEP_S)))
             for o in onsets]
    per_volume = np.stack([logpow[:, k, a:b].mean(axis=-1) for a, b in steps], axis=1)
    truth = _tsv(_truth(dataset) / f"{PREFIX}_desc-sourcebandpower_timeseries.tsv")
    truth_alpha = truth[[f"{name}_alpha" for name in parcels.names]].to_numpy().T
    r_alpha = np.array([np.corrcoef(per_volume[p], truth_alpha[p])[0, 1] for p in range(SCALE)])
    assert np.median(r_alpha) > 0.25
    assert (r_alpha > 0).mean() > 0.8


def test_same_seed_same_data_other_seed_other_data(templates_dir, tmp_path):
    kwargs = dict(duration_s=40.0, tr_s=TR_S, n_channels=16, ephys_scale=SCALE,
                  bold_scale=SCALE, spaces=("fsaverage5",))
    roots = [sim.simulate_dataset(tmp_path / name, templates_dir, seed=seed, **kwargs)
             for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    noisy = [_tsv(_truth(root) / f"{PREFIX}_desc-noisy_timeseries.tsv").to_numpy()
             for root in roots]
    np.testing.assert_array_equal(noisy[0], noisy[1])
    assert not np.allclose(noisy[0], noisy[2])
    eeg = [(root / "sub-01" / "eeg" / f"{PREFIX}_eeg.eeg").read_bytes() for root in roots]
    assert eeg[0] == eeg[1] and eeg[0] != eeg[2]


def test_templates_are_required(tmp_path):
    with pytest.raises(NoInputError, match="templates"):
        sim.simulate_dataset(tmp_path / "ds", None, duration_s=40.0)
    code = sim.main([str(tmp_path / "ds"), "--templates-dir", str(tmp_path / "absent")])
    assert code == NoInputError.exit_code
    with pytest.raises(UsageError, match="modality"):
        sim.simulate_dataset(tmp_path / "ds", tmp_path, modality="ieeg")
    args = sim.build_parser().parse_args([str(tmp_path / "ds"), "--modality", "meg"])
    assert args.modality == "meg" and args.channels is None  # None: 102 magnetometers


# --------------------------------------------------------------------------------------------
# MEG: synthetic magnetometer helmet, FIF through MNE-BIDS, the pipeline's inner-skull BEM

MEG_DURATION_S = 60.0


@pytest.fixture(scope="module")
def meg_dataset(templates_dir, tmp_path_factory):
    # the default channel count for MEG (102 magnetometers); the forward (inner-skull BEM,
    # 20,484 sources) dominates the time, not the channels or the duration
    root = tmp_path_factory.mktemp("sim_meg") / "ds"
    return sim.simulate_dataset(
        root, templates_dir, modality="meg", duration_s=MEG_DURATION_S, tr_s=TR_S,
        ephys_scale=SCALE, bold_scale=SCALE, spaces=("fsaverage5",), seed=0,
    )


def test_meg_helmet_surrounds_the_scalp():
    import mne
    from mne.transforms import apply_trans, invert_transform
    from scipy.spatial import cKDTree

    from samba_bids.ephys.source import FSAVERAGE_HEAD, FSAVERAGE_TRANS

    positions, normals = sim.meg_helmet(102)
    centre, radius = sim.head_sphere()
    assert radius == pytest.approx(0.096, abs=0.005)
    np.testing.assert_allclose(np.linalg.norm(positions - centre, axis=1),
                               sim.MEG_HELMET_RADIUS_M)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    scalp = mne.read_bem_surfaces(FSAVERAGE_HEAD, verbose=False)[0]["rr"]
    scalp = apply_trans(invert_transform(mne.read_trans(FSAVERAGE_TRANS)), scalp)
    distance, nearest = cKDTree(scalp).query(positions)
    # outside the scalp (farther from the centre than the nearest scalp point), not touching
    assert (np.linalg.norm(positions - centre, axis=1)
            > np.linalg.norm(scalp[nearest] - centre, axis=1)).all()
    assert distance.min() > 0.008 and 0.015 < np.median(distance) < 0.035
    # whole head: front and back, left and right, down to about the ear level (z = 0)
    assert positions[:, 1].min() < -0.08 and positions[:, 1].max() > 0.1
    assert positions[:, 0].min() < -0.1 and positions[:, 0].max() > 0.1
    assert -0.02 < positions[:, 2].min() < 0.01
    # evenly spread: nearest-neighbour spacing within a narrow range
    spacing = cKDTree(positions).query(positions, k=2)[0][:, 1]
    assert spacing.min() > 0.6 * np.median(spacing)


def test_meg_recording_is_read_as_meg(meg_dataset):
    from mne.io.constants import FIFF

    from samba_bids.alignment import volume_onsets
    from samba_bids.ephys.preprocessing import detect_modality, read_ephys

    path = meg_dataset / "sub-01" / "meg" / f"{PREFIX}_meg.fif"
    raw = read_ephys(path, modality="meg")
    assert detect_modality(raw, "auto") == "meg"
    assert raw.get_channel_types(unique=True) == ["mag"]
    assert len(raw.ch_names) == sim.DEFAULT_CHANNELS["meg"] == 102
    assert {ch["coil_type"] for ch in raw.info["chs"]} == {FIFF.FIFFV_COIL_VV_MAG_T3}
    np.testing.assert_allclose(raw.info["dev_head_t"]["trans"], np.eye(4))
    positions, _ = sim.meg_helmet(102)
    np.testing.assert_allclose([ch["loc"][:3] for ch in raw.info["chs"]], positions,
                               atol=1e-6)
    n_volumes = int(MEG_DURATION_S / TR_S)
    onsets, how = volume_onsets(raw, n_volumes, TR_S, trigger="Volume")
    assert "Volume" in how
    assert onsets[0] == pytest.approx(sim.FIRST_VOLUME_S, abs=1.0 / raw.info["sfreq"])
    np.testing.assert_allclose(np.diff(onsets), TR_S, atol=1.0 / raw.info["sfreq"])
    # brain signal (median channel RMS set to the constant) plus 10x smaller white noise
    rms = np.sqrt(np.mean(raw.get_data() ** 2, axis=1))
    assert sim.MEG_SIGNAL_RMS_T / 1.5 < np.median(rms) < 1.5 * sim.MEG_SIGNAL_RMS_T
    params = json.loads((_truth(meg_dataset) / f"{PREFIX}_desc-truth_parameters.json")
                        .read_text())
    assert params["Modality"] == "meg" and params["SensorUnits"] == "T"
    assert params["SensorSignalRMS"] == sim.MEG_SIGNAL_RMS_T
    assert params["SensorNoiseSD"] == sim.MEG_NOISE_SD_T
    assert "inner-skull BEM" in params["ForwardModel"]["HeadModel"]
    assert "magnetometers" in params["Sensors"]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["MEGChannelCount"] == 102 and sidecar["Manufacturer"] == "n/a"


def test_meg_planted_activity_is_recovered_by_the_source_path(meg_dataset, templates_dir):
    """Read, preprocess and source-reconstruct the written MEG; compare with the planted."""

    from samba_bids.ephys.preprocessing import preprocess_raw, read_ephys
    from samba_bids.ephys.source import compute_source_parcels

    raw = read_ephys(meg_dataset / "sub-01" / "meg" / f"{PREFIX}_meg.fif")
    pre = preprocess_raw(raw, modality="meg", sfreq_hz=100.0)
    parcels = compute_source_parcels(pre, templates_dir, modality="meg", n_parcels=SCALE)
    assert "inner-skull BEM" in parcels.provenance["HeadModel"]

    _, r = _planted_vs_reconstructed(meg_dataset, parcels)
    # measured (dSPM, 102 radial magnetometers, 100 parcels, 67 s): median 0.42, all positive,
    # 88% above 0.2, lowest 0.03 (radial sources, which magnetometers barely see)
    assert (r > 0).mean() > 0.95
    assert np.median(r) > 0.35
    assert (r > 0.2).mean() > 0.75


# --------------------------------------------------------------------------------------------
# several runs and sessions per participant, and runs without BOLD


def test_runs_share_the_planted_truth_and_ephys_only_runs_have_no_bold(templates_dir,
                                                                        tmp_path):
    """Two paired runs and one EEG-only run: one planted HRF/mixing per participant, new
    activity and noise per run, no BOLD in derivatives/preproc for the EEG-only run but its
    BOLD in the truth."""
    root = sim.simulate_dataset(tmp_path / "runs", templates_dir, duration_s=40.0, tr_s=TR_S,
                                n_channels=16, ephys_scale=SCALE, bold_scale=SCALE,
                                spaces=("fsaverage5",), seed=5, n_runs=2, n_ephys_only_runs=1)
    prefixes = [f"sub-01_task-rest_run-{run}" for run in (1, 2, 3)]
    for prefix in prefixes:
        assert (root / "sub-01" / "eeg" / f"{prefix}_eeg.vhdr").is_file()
    preproc = root / "derivatives" / "preproc" / "sub-01" / "func"
    written = sorted(p.name for p in preproc.glob("*_bold.func.gii"))
    assert written == [f"{p}_hemi-{h}_space-fsaverage5_bold.func.gii"
                       for p in prefixes[:2] for h in ("L", "R")]
    assert not list(preproc.glob(f"{prefixes[2]}_*"))  # the EEG-only run has no BOLD

    truth = _truth(root)
    hrfs = [_tsv(truth / f"{p}_desc-truth_hrf.tsv") for p in prefixes]
    mixing = [_tsv(truth / f"{p}_desc-mixing_weights.tsv") for p in prefixes]
    noiseless = [_tsv(truth / f"{p}_desc-noiseless_timeseries.tsv") for p in prefixes]
    for other in (1, 2):
        pd.testing.assert_frame_equal(hrfs[0], hrfs[other])
        pd.testing.assert_frame_equal(mixing[0], mixing[other])
        assert noiseless[0].shape == noiseless[other].shape
        r = [np.corrcoef(noiseless[0][c], noiseless[other][c])[0, 1] for c in noiseless[0]]
        assert np.median(np.abs(r)) < 0.6  # other activity, not a copy
    params = json.loads((truth / f"{prefixes[2]}_desc-truth_parameters.json").read_text())
    assert (params["Run"], params["BOLDWritten"]) == ("3", False)
    assert json.loads((truth / f"{prefixes[0]}_desc-truth_parameters.json").read_text())[
        "BOLDWritten"]


def test_sessions_are_paired_by_the_pipeline(templates_dir, tmp_path):
    from samba_bids.bids.layout import collect_pairs, default_derivatives, index_dataset

    root = sim.simulate_dataset(tmp_path / "sessions", templates_dir, duration_s=30.0,
                                tr_s=TR_S, n_channels=16, ephys_scale=SCALE, bold_scale=SCALE,
                                spaces=("fsaverage5",), seed=6, n_sessions=2)
    for ses in ("1", "2"):
        assert (root / "sub-01" / f"ses-{ses}" / "eeg"
                / f"sub-01_ses-{ses}_task-rest_eeg.vhdr").is_file()
    layout = index_dataset(root, default_derivatives(root), tmp_path / "work")
    pairs = collect_pairs(layout, bold_space="fsaverage5")
    assert [(p.entities["session"], p.entities["run"]) for p in pairs] == [("1", None),
                                                                         ("2", None)]
    assert all(f"ses-{p.entities['session']}" in p.bold_files[0].name for p in pairs)
    with pytest.raises(UsageError, match="n_runs"):
        sim.simulate_dataset(tmp_path / "bad", templates_dir, duration_s=30.0, n_runs=0)
