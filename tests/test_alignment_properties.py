"""Property-based tests (hypothesis) of the alignment and windowing arithmetic.

The properties are those the model's time convention relies on (alignment.py's docstring):
segment ``v`` is the electrophysiology of ``[t_v, t_v + TR)``; train/validation/test blocks are
separated by gaps of at least the HRF support, so no window of one block reads electrophysiology
from another block's target period; windows hold K history segments before W targets.
"""

from __future__ import annotations

import math

import mne
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from samba_bids.alignment import blocked_split, segment_ephys, volume_onsets
from samba_bids.errors import DataError
from samba_bids.training import make_windows

TRAIN, VALIDATION, TEST, GAP = 1, 2, 3, 0

splits = st.fixed_dictionaries({
    "n_volumes": st.integers(10, 3000),
    "tr_s": st.floats(0.3, 4.0, allow_nan=False),
    "hrf_support_s": st.floats(4.0, 40.0, allow_nan=False),
    "train_fraction": st.floats(0.3, 0.85),
    "validation_fraction": st.floats(0.03, 0.35),
    "window_trs": st.integers(1, 60),
})


def _labels(split, n_volumes):
    """Block of every volume (GAP where none); fails if a volume is in two blocks."""
    labels = np.full(n_volumes, GAP)
    for value, block in ((TRAIN, split.train), (VALIDATION, split.validation),
                         (TEST, split.test)):
        assert np.all(labels[block] == GAP), "a volume is in two blocks"
        labels[block] = value
    return labels


def _runs(labels):
    """[(label, first, length)] of the runs of equal labels, in order."""
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.r_[0, edges]
    stops = np.r_[edges, len(labels)]
    return [(int(labels[a]), int(a), int(b - a)) for a, b in zip(starts, stops)]


# --------------------------------------------------------------------------------------------
# blocked_split


@settings(max_examples=300, deadline=None)
@given(kw=splits)
def test_blocked_split_partitions_the_run(kw):
    """Every volume is in exactly one of train, gap, validation, gap, test (in that order);
    the gaps last at least the HRF support; block sizes follow the fractions of the volumes
    left after the gaps; the window fits every block."""
    assume(kw["train_fraction"] + kw["validation_fraction"] <= 0.95)
    n, tr, hrf = kw["n_volumes"], kw["tr_s"], kw["hrf_support_s"]
    try:
        split = blocked_split(**kw, source="sub-01_task-rest_bold.nii.gz")
    except DataError as err:
        assert "sub-01_task-rest_bold.nii.gz" in str(err) and "too few" in str(err)
        # refused only when a block would get fewer than 2 volumes
        gap = math.ceil(hrf / tr - 1e-9)
        usable = n - 2 * gap
        sizes = (usable * kw["train_fraction"], usable * kw["validation_fraction"],
                 usable * (1 - kw["train_fraction"] - kw["validation_fraction"]))
        assert min(sizes) < 2 + 1e-9
        return
    labels = _labels(split, n)
    runs = _runs(labels)
    # contiguous, disjoint, ordered: exactly five runs, train | gap | val | gap | test
    assert [r[0] for r in runs] == [TRAIN, GAP, VALIDATION, GAP, TEST]
    (_, _, n_train), (_, _, gap1), (_, _, n_val), (_, _, gap2), (_, _, n_test) = runs
    for block in (split.train, split.validation, split.test):
        assert len(block) >= 2 and block.dtype.kind == "i"
    # gaps: at least the HRF support, and not a volume more than needed
    assert gap1 == gap2 == split.history
    assert split.history * tr >= hrf * (1 - 1e-9)
    assert (split.history - 1) * tr < hrf
    # fractions of the volumes left after the gaps, within one volume (the test block gets
    # the remainder of both roundings, so within two)
    usable = n - 2 * split.history
    assert abs(n_train - kw["train_fraction"] * usable) < 1
    assert abs(n_val - kw["validation_fraction"] * usable) < 1
    test_share = 1 - kw["train_fraction"] - kw["validation_fraction"]
    assert -1e-9 <= n_test - test_share * usable < 2
    # the window fits every block
    assert 1 <= split.window_trs <= min(kw["window_trs"], n_train, n_val, n_test)
    sidecar = split.to_sidecar()
    assert sorted(sidecar["TrainVolumes"] + sidecar["ValidationVolumes"]
                  + sidecar["TestVolumes"]) == np.flatnonzero(labels != GAP).tolist()


@settings(max_examples=200, deadline=None)
@given(kw=splits)
def test_windows_never_read_another_blocks_targets(kw):
    """With the split's own K and W, every window of a block has its targets inside the block
    and its history inside the block or the gap before it (or before the recording start for
    the first block): no window reads the segments of another block's targets."""
    assume(kw["train_fraction"] + kw["validation_fraction"] <= 0.95)
    try:
        split = blocked_split(**kw)
    except DataError:
        return
    labels = _labels(split, kw["n_volumes"])
    for value, block in ((TRAIN, split.train), (VALIDATION, split.validation),
                         (TEST, split.test)):
        for tile in (False, True):
            windows = make_windows(block, split.history, split.window_trs, tile=tile)
            read = windows[windows >= 0]
            assert read.max() < kw["n_volumes"]
            assert set(np.unique(labels[read])) <= {value, GAP}
            assert np.all(labels[windows[:, split.history:]] == value)


# --------------------------------------------------------------------------------------------
# make_windows


blocks = st.tuples(st.integers(-5, 500), st.integers(1, 200)).map(
    lambda t: np.arange(t[0], t[0] + t[1]))


@settings(max_examples=300, deadline=None)
@given(block=blocks, history=st.integers(0, 40), window=st.integers(1, 60), tile=st.booleans())
def test_make_windows_shape_history_and_targets(block, history, window, tile):
    """Each window is K consecutive history volumes followed by W consecutive targets that lie
    inside the block; without tiling, every possible target start appears once."""
    if len(block) < window:
        with pytest.raises(ValueError, match="cannot hold a window"):
            make_windows(block, history, window, tile=tile)
        return
    windows = make_windows(block, history, window, tile=tile)
    assert windows.ndim == 2 and windows.shape[1] == history + window
    # consecutive volumes, the last W of them the targets
    assert np.all(np.diff(windows, axis=1) == 1)
    targets = windows[:, history:]
    assert targets.min() >= block[0] and targets.max() <= block[-1]
    assert np.all(windows[:, :history] < targets[:, :1])
    if not tile:
        assert windows.shape[0] == len(block) - window + 1
        np.testing.assert_array_equal(targets[:, 0], block[: len(block) - window + 1])


@settings(max_examples=300, deadline=None)
@given(block=blocks, history=st.integers(0, 40), window=st.integers(1, 60))
def test_tiled_windows_cover_every_volume(block, history, window):
    """tile=True: every volume of the block is a target, and exactly once when W divides the
    block; otherwise only the last window (moved back to end at the block's end) overlaps its
    neighbour, by fewer than W volumes."""
    assume(len(block) >= window)
    targets = make_windows(block, history, window, tile=True)[:, history:]
    counts = np.bincount(targets.ravel() - block[0], minlength=len(block))
    assert counts.shape == (len(block),) and np.all(counts >= 1)
    assert targets[-1, -1] == block[-1]
    overlap = int(counts.sum() - len(block))
    if len(block) % window == 0:
        assert overlap == 0
    else:
        assert 0 < overlap < window
        # the overlap is the tail of the next-to-last window
        np.testing.assert_array_equal(np.flatnonzero(counts > 1) + block[0],
                                      np.intersect1d(targets[-2], targets[-1]))
    assert len(targets) == math.ceil(len(block) / window)


def test_make_windows_rejects_gapped_blocks():
    with pytest.raises(ValueError, match="contiguous"):
        make_windows(np.array([0, 1, 3, 4]), 2, 2)


# --------------------------------------------------------------------------------------------
# volume_onsets and segment_ephys


def _indexed_raw(n_times, sfreq_hz, first_samp, meas_date):
    """Two channels whose value is (sample index + 1) and 10**7 + that: 0 means 'not read'."""
    index = np.arange(n_times, dtype=np.float64) + 1
    info = mne.create_info(["A", "B"], sfreq_hz, "misc")
    raw = mne.io.RawArray(np.stack([index, 1e7 + index]), info, first_samp=first_samp,
                          verbose=False)
    if meas_date:
        raw.set_meas_date(1_600_000_000)
    return raw


@settings(max_examples=150, deadline=None)
@given(
    sfreq_hz=st.sampled_from([100.0, 128.0, 250.0, 256.0, 500.0, 1000.0, 5000.0]),
    tr_s=st.floats(0.5, 3.0),
    n_volumes=st.integers(2, 40),
    offset_s=st.floats(0.0, 10.0),
    jitter=st.lists(st.floats(-0.002, 0.002), min_size=40, max_size=40),
    tail_s=st.floats(-3.0, 5.0),
    first_samp=st.integers(0, 5000),
    meas_date=st.booleans(),
    other=st.lists(st.floats(0.0, 1.0), max_size=5),
)
def test_triggered_segments_cover_each_volume(sfreq_hz, tr_s, n_volumes, offset_s, jitter,
                                              tail_s, first_samp, meas_date, other):
    """Volume triggers (among other annotations; with or without a measurement date and a
    first sample > 0) give onsets counted from the first sample; segment k then holds exactly
    the samples of [onset_k, onset_k + TR) (to the nearest sample), zero where that interval
    leaves the recording, and nothing else."""
    times = offset_s + np.arange(n_volumes) * tr_s + np.asarray(jitter[:n_volumes])
    times = np.maximum(times, 0.0)
    duration_s = max(times[-1] + tr_s + tail_s, times[-1] + 1.0 / sfreq_hz)
    n_times = int(math.ceil(duration_s * sfreq_hz)) + 1
    raw = _indexed_raw(n_times, sfreq_hz, first_samp, meas_date)
    base = raw.first_time if meas_date else 0.0
    onsets = np.r_[times, np.asarray(other) * duration_s]
    descriptions = ["Volume"] * n_volumes + ["Stimulus/S  1"] * len(other)
    raw.set_annotations(mne.Annotations(base + onsets, 0.0, descriptions,
                                        orig_time=raw.info["meas_date"]))

    got, how = volume_onsets(raw, n_volumes, tr_s, trigger="Volume", source="x_eeg.vhdr")
    assert "Volume" in how
    np.testing.assert_allclose(got, np.sort(times), atol=1e-6)
    with pytest.raises(DataError, match=f"x_eeg.vhdr: {n_volumes} 'Volume' volume triggers"):
        volume_onsets(raw, n_volumes + 1, tr_s, trigger="Volume", source="x_eeg.vhdr")

    data = raw.get_data()
    n_samples = int(round(tr_s * sfreq_hz))
    n_covered = sum(int(round(t * sfreq_hz)) + n_samples <= n_times for t in got)
    if n_volumes - n_covered > n_volumes / 2:
        with pytest.raises(DataError, match="covers only"):
            segment_ephys(data, sfreq_hz, got, tr_s, source="x_eeg.vhdr")
        return
    segments, covered = segment_ephys(data, sfreq_hz, got, tr_s, source="x_eeg.vhdr")
    assert segments.shape == (2, n_volumes, n_samples)
    assert covered.sum() == n_covered
    for k, onset in enumerate(got):
        read = segments[0, k]
        inside = read > 0
        samples = read[inside].astype(np.int64) - 1  # the sample indices read
        # the samples of [onset, onset + TR): consecutive, from the sample nearest the onset
        start = int(round(onset * sfreq_hz))
        assert abs(start / sfreq_hz - onset) <= 0.5 / sfreq_hz + 1e-9
        expected = np.arange(start, start + n_samples)
        expected = expected[(expected >= 0) & (expected < n_times)]
        np.testing.assert_array_equal(samples, expected)
        assert np.all(read[~inside] == 0)  # outside the recording: zero, never a clipped read
        assert covered[k] == (len(expected) == n_samples)
        # the channels stay aligned with each other
        np.testing.assert_array_equal(segments[1, k][inside], 1e7 + read[inside])


def test_volume_onsets_first_sample_without_meas_date():
    """Regression (found by the property above): without a measurement date MNE stores
    annotation onsets shifted by first_time; onsets must still count from the first sample."""
    raw = _indexed_raw(2000, 100.0, first_samp=500, meas_date=False)
    raw.set_annotations(mne.Annotations(1.0 + 2.0 * np.arange(5), 0.0, "Volume"))
    onsets, _ = volume_onsets(raw, 5, 2.0, trigger="Volume")
    np.testing.assert_allclose(onsets, 1.0 + 2.0 * np.arange(5))
    events, _ = mne.events_from_annotations(raw, verbose=False)  # MNE agrees
    np.testing.assert_allclose((events[:, 0] - raw.first_samp) / 100.0, onsets)
