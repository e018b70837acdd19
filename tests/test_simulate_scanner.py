"""``--mr-artifacts``: the simulated in-scanner EEG is the clean EEG plus the scanner's artefacts.

One short dataset (40 s of BOLD, 8 EEG channels) is simulated with and without the flag from
the same seed; the checks read the written files back, so they test what a user gets.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.signal import butter, resample_poly, sosfiltfilt

from samba_bids import simulate as sim
from samba_bids.ephys.preprocessing import read_ephys
from samba_bids.errors import UsageError
from samba_bids.simulate import scanner

DURATION_S = 40.0
TR_S = 2.0
N_VOLUMES = int(DURATION_S / TR_S)
SCANNER_SFREQ_HZ = 5000.0
PREFIX = "sub-01_task-rest"
KWARGS = {"duration_s": DURATION_S, "tr_s": TR_S, "n_channels": 8, "ephys_scale": 100,
          "bold_scale": 100, "spaces": ("fsaverage5",), "seed": 7}


@pytest.fixture(scope="module")
def datasets(templates_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("sim_scanner")
    plain = sim.simulate_dataset(base / "plain", templates_dir, **KWARGS)
    mr = sim.simulate_dataset(base / "mr", templates_dir, mr_artifacts=True,
                              scanner_sfreq_hz=SCANNER_SFREQ_HZ, **KWARGS)
    return plain, mr


def _read(vhdr):
    import mne

    return mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)


def _truth_eeg(root):
    return root / "derivatives" / "truth" / "sub-01" / "eeg"


def _parameters(root):
    path = root / "derivatives" / "truth" / "sub-01" / "func" / (
        f"{PREFIX}_desc-truth_parameters.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def recording(datasets):
    """Raw EEG, ECG, the clean EEG upsampled, the markers, the truth (read from the files)."""
    _, mr = datasets
    raw = _read(mr / "sub-01" / "eeg" / f"{PREFIX}_eeg.vhdr")
    clean = _read(_truth_eeg(mr) / f"{PREFIX}_desc-clean_eeg.vhdr")
    fs = raw.info["sfreq"]
    up = int(round(fs / clean.info["sfreq"]))
    data = raw.get_data()
    clean_data = clean.get_data()
    events = pd.read_csv(mr / "sub-01" / "eeg" / f"{PREFIX}_events.tsv", sep="\t")
    return {
        "fs": fs, "eeg": data[:-1], "ecg": data[-1], "ch_names": raw.ch_names,
        "clean": clean_data, "clean_up": np.array([resample_poly(c, up, 1) for c in clean_data]),
        "eeg_rms": np.median(np.sqrt(np.mean(clean_data ** 2, axis=1))),
        "markers": events["sample"].to_numpy(),
        "per_volume": int(round(TR_S * fs)),
        "rpeaks": pd.read_csv(_truth_eeg(mr) / f"{PREFIX}_desc-rpeaks_events.tsv", sep="\t"),
        "parameters": _parameters(mr)["MRArtifacts"],
    }


def test_clean_truth_is_the_recording_without_the_flag(datasets):
    plain, mr = datasets
    without = _read(plain / "sub-01" / "eeg" / f"{PREFIX}_eeg.vhdr")
    # read as the pipeline reads a cleaned recording from a derivatives folder (-d truth=...)
    clean = read_ephys(_truth_eeg(mr) / f"{PREFIX}_desc-clean_eeg.vhdr")
    assert clean.get_montage() is not None  # electrode positions: the forward model works
    assert clean.ch_names == without.ch_names
    assert clean.info["sfreq"] == without.info["sfreq"] == 250.0
    np.testing.assert_allclose(clean.get_data(), without.get_data(), rtol=1e-6, atol=1e-12)
    # the clean truth keeps the ideal volume onsets; the other streams are unchanged
    onsets = [a["onset"] for a in clean.annotations if a["description"].endswith("Volume")]
    np.testing.assert_allclose(onsets, sim.FIRST_VOLUME_S + TR_S * np.arange(N_VOLUMES))
    for name in ("noisy_timeseries", "noiseless_timeseries"):
        a, b = (pd.read_csv(root / "derivatives" / "truth" / "sub-01" / "func" /
                            f"{PREFIX}_desc-{name}.tsv", sep="\t") for root in datasets)
        pd.testing.assert_frame_equal(a, b)
    params_plain, params_mr = _parameters(plain), _parameters(mr)
    assert "MRArtifacts" not in params_plain
    assert params_mr.pop("MRArtifacts")["RandomStream"] == 5
    assert params_mr == params_plain


def test_raw_recording_is_in_scanner_eeg_with_an_ecg_channel(datasets, recording):
    _, mr = datasets
    eeg = mr / "sub-01" / "eeg"
    channels = pd.read_csv(eeg / f"{PREFIX}_channels.tsv", sep="\t")
    assert list(channels["type"]) == ["EEG"] * 8 + ["ECG"]
    assert channels["name"].iloc[-1] == scanner.ECG_CHANNEL
    assert (channels["sampling_frequency"] == SCANNER_SFREQ_HZ).all()
    sidecar = json.loads((eeg / f"{PREFIX}_eeg.json").read_text())
    assert sidecar["SamplingFrequency"] == SCANNER_SFREQ_HZ
    params = recording["parameters"]
    assert params["SlicesPerVolume"] == 35 and params["SliceRate"] == pytest.approx(17.5)
    # the markers are the nearest samples to the jittered true onsets (< 1 sample from ideal)
    volumes = pd.read_csv(_truth_eeg(mr) / f"{PREFIX}_desc-volumes_events.tsv", sep="\t")
    markers = recording["markers"]
    np.testing.assert_array_equal(volumes["sample"], markers)
    assert np.abs(volumes["offset_samples"]).max() <= 0.5
    true_samples = volumes["onset"].to_numpy() * SCANNER_SFREQ_HZ
    np.testing.assert_allclose(true_samples - markers, volumes["offset_samples"], atol=1e-3)
    ideal = (sim.FIRST_VOLUME_S + TR_S * np.arange(N_VOLUMES)) * SCANNER_SFREQ_HZ
    assert np.abs(true_samples - ideal).max() < scanner.VOLUME_JITTER_SAMPLES
    assert np.std(true_samples - ideal) > 0.1  # it does jitter


def test_artefact_repeats_with_the_volumes_and_only_during_the_scan(recording):
    residual = recording["eeg"] - recording["clean_up"]  # gradient + pulse artefact
    markers, n = recording["markers"], recording["per_volume"]
    epochs = residual[:, markers[:, None] + np.arange(n - 2)]  # (channels, volumes, samples)
    unexplained = np.sum((epochs - epochs.mean(axis=1, keepdims=True)) ** 2, axis=(1, 2))
    explained = 1.0 - unexplained / np.sum(epochs ** 2, axis=(1, 2))
    assert explained.min() > 0.8
    # epochs at random times within the volumes are not: the check can fail
    rng = np.random.default_rng(0)
    starts = markers[:-1] + rng.integers(0, n, len(markers) - 1)
    shuffled = residual[:, starts[:, None] + np.arange(n // 2)]
    share = 1.0 - np.sum((shuffled - shuffled.mean(axis=1, keepdims=True)) ** 2) / np.sum(
        shuffled ** 2)
    assert share < 0.3
    # before the first volume and after the last one: the pulse artefact only (a few times
    # the EEG, below 15 Hz), no gradient
    fs, eeg_rms = recording["fs"], recording["eeg_rms"]
    for part in (residual[:, : markers[0]], residual[:, markers[-1] + n:]):
        rms = np.sqrt(np.mean(part ** 2, axis=1))
        assert np.median(rms) > 0.5 * eeg_rms and rms.max() < 20 * eeg_rms
        spectrum = np.abs(np.fft.rfft(part, axis=1)) ** 2
        freqs = np.fft.rfftfreq(part.shape[1], 1.0 / fs)
        assert (spectrum[:, freqs > 15].sum(axis=1) / spectrum.sum(axis=1)).max() < 0.01


def test_gradient_is_about_100_times_the_eeg(recording):
    residual = recording["eeg"] - recording["clean_up"]
    markers, n = recording["markers"], recording["per_volume"]
    scan = residual[:, markers[0]: markers[-1] + n]
    ratio = np.median(np.sqrt(np.mean(scan ** 2, axis=1))) / recording["eeg_rms"]
    params = recording["parameters"]
    assert 50 < ratio < 200
    assert params["GradientToEEGRMSRatio"] == pytest.approx(ratio, rel=0.05)
    assert params["GradientToEEGRMSRatio"] == pytest.approx(scanner.GRADIENT_RMS_RATIO,
                                                            rel=0.01)
    assert params["CleanEEGRMS"] == pytest.approx(recording["eeg_rms"], rel=1e-4)
    # strongest at the slice harmonics (17.5 Hz) and the EPI readout (about 1 kHz)
    spectrum = np.mean(np.abs(np.fft.rfft(scan[:, : 20 * n], axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(20 * n, 1.0 / recording["fs"])
    top = freqs[np.argsort(spectrum)[-20:]]
    assert np.all(np.abs(top / 17.5 - np.round(top / 17.5)) < 0.01)
    assert np.any(np.abs(top - scanner.EPI_READOUT_HZ) < 30)


def test_heartbeats_and_ecg(recording):
    fs, ecg, markers, n = (recording[k] for k in ("fs", "ecg", "markers", "per_volume"))
    rpeaks = recording["rpeaks"]
    rate = 60.0 / np.diff(rpeaks["onset"].to_numpy())
    assert 55 < rate.mean() < 75 and rate.min() > 55 and rate.max() < 75
    assert rate.std() > 0.2  # it varies
    samples = rpeaks["sample"].to_numpy()
    window = int(0.1 * fs)
    # before the scan: the largest ECG sample within 100 ms of each R-peak is the R-peak
    pre = samples[(samples > window) & (samples + window < markers[0])]
    assert len(pre) >= 3
    lag = np.array([np.argmax(ecg[s - window: s + window]) - window for s in pre])
    assert np.abs(lag).max() <= 0.005 * fs
    assert ecg[pre].min() > 0.8e-3  # about 1 mV
    # during the scan: after subtracting the average volume (AAS) and a 40 Hz low-pass
    corrected = ecg.copy()
    template = ecg[markers[:, None] + np.arange(n - 2)].mean(axis=0)
    for m in markers:
        corrected[m: m + n - 2] -= template
    corrected = sosfiltfilt(butter(4, 40.0, fs=fs, output="sos"), corrected)
    inside = samples[(samples > markers[0] + window) & (samples + window < markers[-1] + n)]
    lag = np.array([np.argmax(corrected[s - window: s + window]) - window for s in inside])
    assert np.mean(np.abs(lag) <= 0.005 * fs) > 0.9
    # the pulse artefact follows the R-peaks by 0.15-0.6 s on the EEG channels
    residual = recording["eeg"][:, : markers[0]] - recording["clean_up"][:, : markers[0]]
    lags = np.arange(int(-0.3 * fs), int(0.8 * fs))
    first = pre[pre + lags[-1] < markers[0]]
    power = np.mean([np.sum(residual[:, s + lags] ** 2, axis=0) for s in first], axis=0)
    peak_s = lags[np.argmax(power)] / fs
    assert 0.15 < peak_s < 0.6
    params = recording["parameters"]
    assert params["ECGChannel"] == "ECG"
    assert params["NumberOfHeartbeats"] == len(rpeaks)
    lo, hi = params["HeartRateRange"]
    assert lo == pytest.approx(rate.min(), rel=1e-4) and hi == pytest.approx(rate.max(), rel=1e-4)


def test_mr_artifacts_argument_errors(templates_dir, tmp_path):
    with pytest.raises(UsageError, match="modality 'meg'"):
        sim.simulate_dataset(tmp_path / "a", templates_dir, modality="meg", mr_artifacts=True,
                             **KWARGS)
    with pytest.raises(UsageError, match="integer multiple"):
        sim.simulate_dataset(tmp_path / "b", templates_dir, mr_artifacts=True,
                             scanner_sfreq_hz=1100.0, **KWARGS)
    code = sim.main([str(tmp_path / "c"), "--templates-dir", str(templates_dir),
                     "--modality", "meg", "--mr-artifacts"])
    assert code == UsageError.exit_code
    # without the flag the scanner rate is not used
    args = sim.build_parser().parse_args([str(tmp_path / "d")])
    assert not args.mr_artifacts and args.scanner_sfreq == scanner.DEFAULT_SCANNER_SFREQ_HZ


def test_cli_writes_in_scanner_eeg(templates_dir, tmp_path):
    root = tmp_path / "ds"
    code = sim.main([str(root), "--templates-dir", str(templates_dir), "--duration", "40",
                     "--channels", "8", "--ephys-scale", "100", "--bold-scale", "100",
                     "--mr-artifacts", "--scanner-sfreq", "2500", "--seed", "3"])
    assert code == 0
    raw = _read(root / "sub-01" / "eeg" / f"{PREFIX}_eeg.vhdr")
    assert raw.info["sfreq"] == 2500.0 and raw.ch_names[-1] == "ECG"
    assert (_truth_eeg(root) / f"{PREFIX}_desc-clean_eeg.vhdr").is_file()
    params = _parameters(root)["MRArtifacts"]
    assert params["ScannerSamplingFrequency"] == 2500.0 and params["UpsamplingFactor"] == 10
