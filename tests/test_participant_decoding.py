"""Stimulus decoding at the participant level (issue 16): windows inside stimulus events,
leave-one-run-out, above chance on planted stimulus patterns and at chance on shuffled labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from samba_bids.bids.stimulus import (
    StimulusEvent,
    read_stimulus_event,
    read_stimulus_events,
)
from samba_bids.workflows.participant_decoding import (
    FEATURE_SETS,
    HEMODYNAMIC_LAG_S,
    decode_runs,
    event_windows,
)

TR_S = 2.0


def _event(stimulus, onset, duration=None):
    return StimulusEvent(stimulus=stimulus, onset_s=onset, duration_s=duration,
                         events_file=Path("events.tsv"))


def test_windows_are_whole_volumes_inside_each_event():
    events = [_event("b.mp4", 61.0, 60.0), _event("a.mp4", 0.0, 59.0)]  # rows out of order
    # a: volumes 0..28 (29 volumes, 59 s) -> windows at 0 and 10 of 10 volumes (20 s)
    # b: onset 61 s -> first whole volume 31, end 121 s -> volumes 31..59 -> 31, 41
    assert event_windows(events, 100, TR_S, 10) == [(0, "a.mp4"), (10, "a.mp4"),
                                                    (31, "b.mp4"), (41, "b.mp4")]
    # no duration: until the next event, then until the end of the run
    open_ended = [_event("a.mp4", 0.0), _event("b.mp4", 100.0)]
    assert event_windows(open_ended, 80, TR_S, 20) == [(0, "a.mp4"), (20, "a.mp4"),
                                                       (50, "b.mp4")]
    # a lag shifts every window and drops the ones it pushes past the end
    assert event_windows(open_ended, 80, TR_S, 20, lag_volumes=3) == [
        (3, "a.mp4"), (23, "a.mp4"), (53, "b.mp4")]
    assert event_windows(open_ended, 80, TR_S, 20, lag_volumes=11) == [(11, "a.mp4"),
                                                                       (31, "a.mp4")]
    with pytest.raises(ValueError, match="positive"):
        event_windows(events, 100, 0.0, 10)


def test_events_file_with_several_stimuli(tmp_path):
    path = tmp_path / "sub-01_task-clips_run-1_events.tsv"
    pd.DataFrame({"onset": [0.0, 30.0, 90.0], "duration": [60.0, 1.0, 60.0],
                  "trial_type": ["clip", "button", "clip"],
                  "stim_file": ["a.mp4", "n/a", "b.mp4"]}).to_csv(path, sep="\t", index=False)
    events = read_stimulus_events(path)
    assert [(e.stimulus, e.onset_s, e.duration_s) for e in events] == [
        ("a.mp4", 0.0, 60.0), ("b.mp4", 90.0, 60.0)]
    assert [e.stimulus for e in read_stimulus_events(path, stimulus_event="button")] == [
        "button"]
    # the stimulus pairing expects one stimulus per run and says why not
    assert "2 rows with a stim_file" in read_stimulus_event(path)
    assert read_stimulus_events(path, stimulus_event="rest") == "no row with a trial_type 'rest'"


STIMULI = ("a.mp4", "b.mp4", "c.mp4")


def _planted_runs(seed, n_runs=6, n_features=20, snr=1.0):
    """Runs showing stimuli a, b, c in turn (60 volumes each); each stimulus adds its own
    fixed spatial pattern to noise, in every feature set (the BOLD-domain ones
    HEMODYNAMIC_LAG_S later). Six runs of three stimuli give the block permutation (3!)^6
    relabelings; 4 runs of 2 stimuli would give 2^4 = 16, so p could not go below 2/16."""
    rng = np.random.default_rng(seed)
    patterns = {name: rng.standard_normal(n_features) for name in STIMULI}
    lag = int(round(HEMODYNAMIC_LAG_S / TR_S))
    n_volumes = 60 * len(STIMULI)
    series = {name: {} for name in FEATURE_SETS}
    events = {}
    for run in range(1, n_runs + 1):
        label = f"sub-01_task-clips_run-{run}"
        events[label] = [_event(name, 120.0 * k, 120.0) for k, name in enumerate(STIMULI)]
        for name, bold_domain in FEATURE_SETS.items():
            signal = np.zeros((n_features, n_volumes))
            shift = lag if bold_domain else 0
            for k, stimulus in enumerate(STIMULI):
                signal[:, 60 * k + shift:60 * (k + 1) + shift] += patterns[stimulus][:, None]
            series[name][label] = snr * signal + rng.standard_normal((n_features, n_volumes))
    return series, events


def test_planted_stimuli_are_decoded_above_chance_leave_one_run_out():
    series, events = _planted_runs(seed=1)
    both = decode_runs(series, events, TR_S, window_s=30.0, n_permutations=49, seed=0)
    assert list(both["target"]) == ["segment"] * 4 + ["window"] * 4
    table = both[both["target"] == "segment"]
    assert list(table["feature_set"]) == list(FEATURE_SETS)
    # 6 runs x 3 events x (60 volumes // 15) windows; BOLD-domain windows shifted by the lag
    # lose the last window of c (it would run past the end of the run)
    assert table.set_index("feature_set")["n_windows"].to_dict() == {
        "samba_latent": 72, "band_power": 72, "ridge_prediction": 66, "observed_bold": 66}
    assert (table["n_folds"] == 6).all() and (table["n_classes"] == 3).all()
    assert (table["accuracy"] > 0.9).all()
    assert (table["ci_low"] > table["chance"]).all()
    assert (table["p_value"] <= 0.02).all()  # 1 / (1 + 49) is the smallest possible
    # which window of which stimulus: 3 stimuli x 4 windows (3 for the lagged BOLD sets,
    # whose last window of c is dropped); the planted pattern is constant within a stimulus,
    # so only the stimulus can be told: about 1 in 4 (1 in 3) windows right, far above 1/12
    windows = both[both["target"] == "window"].set_index("feature_set")
    assert windows.loc["samba_latent", "n_classes"] == 12
    assert windows.loc["observed_bold", "n_classes"] == 11
    assert (windows["accuracy"] < 0.5).all() and (windows["accuracy"] > 1 / 12).all()


def test_shuffled_stimulus_labels_decode_at_chance():
    series, events = _planted_runs(seed=2)
    rng = np.random.default_rng(7)
    shuffled = {}
    for label, run_events in events.items():  # names drawn independently of the data
        names = rng.permutation(STIMULI)
        shuffled[label] = [_event(name, e.onset_s, e.duration_s)
                           for name, e in zip(names, run_events)]
    if len({tuple(e.stimulus for e in s) for s in shuffled.values()}) < 3:
        pytest.fail("the shuffle kept too few orders across runs; pick another seed")
    table = decode_runs(series, shuffled, TR_S, window_s=30.0, n_permutations=49, seed=0)
    table = table[table["target"] == "segment"]
    assert (table["p_value"] > 0.05).all()
    assert (table["ci_low"] <= 1 / 3).all()


def test_a_stimulus_in_one_run_only_cannot_be_decoded(caplog):
    series, events = _planted_runs(seed=3, n_runs=2)
    events["sub-01_task-clips_run-2"] = [_event(name, 120.0 * k, 120.0)
                                         for k, name in enumerate(("d.mp4", "e.mp4", "f.mp4"))]
    with caplog.at_level("INFO", logger="samba_bids"):  # the CLI may have raised its level
        assert decode_runs(series, events, TR_S, window_s=30.0, n_permutations=9) is None
    assert "single group" in caplog.text
    # runs without stimulus events are left out
    assert decode_runs(series, {}, TR_S, window_s=30.0, n_permutations=9) is None
