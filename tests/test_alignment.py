"""One clock, segments and blocked splits (alignment.py)."""

import math

import mne
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samba_bids.alignment import (
    blocked_split,
    segment_ephys,
    standardize,
    volume_onsets,
)
from samba_bids.errors import DataError


def _raw_with(annotations, duration_s, sfreq=250.0):
    info = mne.create_info(["Cz"], sfreq, "eeg")
    raw = mne.io.RawArray(np.zeros((1, int(duration_s * sfreq))), info, verbose=False)
    raw.set_annotations(annotations)
    return raw


def test_volume_triggers_from_real_scanner_markers(shared_data):
    """300 'Scan Start' markers of a real in-scanner EEG give 300 onsets 2.16 s apart."""
    vmrk = (shared_data / "recordings/eeg_in_scanner_markers/derivatives/sub-32/eeg"
            / "sub-32_task-rest_eeg.vmrk")
    annotations = mne.read_annotations(vmrk)
    raw = _raw_with(annotations, annotations.onset.max() + 5)
    onsets, how = volume_onsets(raw, 300, 2.16, trigger="Scan Start", source=vmrk.name)
    assert len(onsets) == 300
    assert "Scan Start" in how
    np.testing.assert_allclose(np.diff(onsets), 2.16, atol=0.01)
    # the full MNE description works too
    onsets_full, _ = volume_onsets(raw, 300, 2.16, trigger="Scanner/Scan Start")
    np.testing.assert_array_equal(onsets, onsets_full)
    with pytest.raises(DataError, match="300 'Scan Start' volume triggers.*299 volumes"):
        volume_onsets(raw, 299, 2.16, trigger="Scan Start", source=vmrk.name)
    with pytest.raises(DataError, match="no annotation named 'Volume'"):
        volume_onsets(raw, 300, 2.16, trigger="Volume", source=vmrk.name)


def test_volume_onsets_relative_to_first_sample_with_meas_date():
    """With a measurement date and a first sample > 0, onsets are counted from the first sample."""
    info = mne.create_info(["Cz"], 100.0, "eeg")
    raw = mne.io.RawArray(np.zeros((1, 6000)), info, first_samp=500, verbose=False)
    raw.set_meas_date(1_600_000_000)
    raw.set_annotations(mne.Annotations(raw.first_time + 3.0 + np.arange(10) * 2.0, 0, "V",
                                        orig_time=raw.info["meas_date"]))
    onsets, _ = volume_onsets(raw, 10, 2.0, trigger="V")
    np.testing.assert_allclose(onsets, 3.0 + np.arange(10) * 2.0)


def test_shared_start_without_trigger():
    raw = _raw_with(mne.Annotations([], [], []), 30)
    onsets, how = volume_onsets(raw, 5, 1.5)
    np.testing.assert_allclose(onsets, [0, 1.5, 3, 4.5, 6])
    assert "assumed" in how


def test_segment_ephys_takes_the_samples_of_each_volume():
    sfreq, tr = 10.0, 2.0
    data = np.arange(3 * 100, dtype=float).reshape(3, 100)
    onsets = np.array([0.0, 2.0, 4.0, 9.5])  # the last runs past the end (9.5 s + 2 s > 10 s)
    segments, covered = segment_ephys(data, sfreq, onsets, tr)
    assert segments.shape == (3, 4, 20)
    np.testing.assert_array_equal(segments[1, 1], data[1, 20:40])
    np.testing.assert_array_equal(covered, [True, True, True, False])
    np.testing.assert_array_equal(segments[2, 3, :5], data[2, 95:100])
    assert np.all(segments[:, 3, 5:] == 0)
    with pytest.raises(DataError, match="covers only"):
        segment_ephys(data, sfreq, np.arange(10) * 2.0 + 5, tr, source="x_eeg.vhdr")


@settings(max_examples=200, deadline=None)
@given(n_volumes=st.integers(20, 2000), tr_s=st.floats(0.5, 3.0),
       train=st.floats(0.4, 0.8), val=st.floats(0.05, 0.3), window=st.integers(1, 40))
def test_blocked_split_properties(n_volumes, tr_s, train, val, window):
    """Blocks are contiguous, ordered, disjoint, separated by >= the HRF support, and tile the run."""
    if train + val >= 0.95:
        return
    try:
        split = blocked_split(n_volumes, tr_s, hrf_support_s=32.0, train_fraction=train,
                              validation_fraction=val, window_trs=window)
    except DataError:
        k = math.ceil(32.0 / tr_s)
        usable = n_volumes - 2 * k
        assert min(math.floor(usable * train), math.floor(usable * val),
                   usable - math.floor(usable * train) - math.floor(usable * val)) < 2
        return
    k = split.history
    assert k * tr_s >= 32.0 - 1e-6
    for block in (split.train, split.validation, split.test):
        assert len(block) >= 2
        np.testing.assert_array_equal(np.diff(block), 1)
    assert split.train[0] == 0 and split.test[-1] == n_volumes - 1
    assert split.validation[0] - split.train[-1] - 1 == k
    assert split.test[0] - split.validation[-1] - 1 == k
    assert len(split.train) + len(split.validation) + len(split.test) + 2 * k == n_volumes
    assert 1 <= split.window_trs <= min(window, len(split.validation), len(split.test))


def test_blocked_split_too_short():
    with pytest.raises(DataError, match="too few"):
        blocked_split(40, 2.0, window_trs=15, source="sub-01_bold.nii.gz")


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((4, 100)) * 3 + 7
    train = np.arange(60)
    z, mean, std = standardize(values, train)
    np.testing.assert_allclose(z[:, train].mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, train].std(axis=1), 1)
    changed = values.copy()
    changed[:, 60:] += 100  # test data change nothing in the statistics
    _, mean2, std2 = standardize(changed, train)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(std, std2)


def test_volume_grid_of_a_recording_without_bold():
    """n_volumes=None: every trigger is a volume, or one volume per TR from the first sample."""
    info = mne.create_info(["Cz"], 100.0, "eeg")
    raw = mne.io.RawArray(np.zeros((1, 2050)), info, verbose=False)  # 20.5 s
    onsets, how = volume_onsets(raw, None, 2.0)
    np.testing.assert_allclose(onsets, np.arange(10) * 2.0)  # floor(20.5 / 2) volumes
    assert "from the recording's start" in how
    raw.set_annotations(mne.Annotations(1.0 + np.arange(7) * 2.0, 0, "Scanner/Volume"))
    onsets, how = volume_onsets(raw, None, 2.0, trigger="Volume")
    np.testing.assert_allclose(onsets, 1.0 + np.arange(7) * 2.0)
    assert how == "volume triggers 'Volume'"


def test_fitting_and_held_out_splits():
    """A run that only trains: train block, K-volume gap, validation block; no test. A run
    held out whole: every volume tests."""
    from samba_bids.alignment import fitting_split, held_out_split

    split = fitting_split(150, 2.0, hrf_support_s=32.0, train_fraction=0.7,
                          validation_fraction=0.15)
    assert split.history == 16 and split.test.size == 0
    assert split.train[0] == 0 and split.validation[-1] == 149
    assert split.validation[0] - split.train[-1] - 1 == 16  # the gap
    # the validation share of blocked_split among the volumes it does not test
    assert split.validation.size == int(np.floor((150 - 16) * 0.15 / 0.85))
    held = held_out_split(150, 2.0, hrf_support_s=32.0)
    assert held.train.size == held.validation.size == 0
    np.testing.assert_array_equal(held.test, np.arange(150))
    with pytest.raises(DataError, match="too few"):
        fitting_split(18, 2.0, hrf_support_s=32.0)
