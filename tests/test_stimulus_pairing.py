"""Stimulus-locked pairing (issue 16): events, the stimulus-time grid, and the group scores.

Known answers: the stimulus row of hand-written events tables; a BOLD series shifted by a
known onset lands back on the grid; the pooled Spearman of 30-s windows equals the mean of
SciPy's per window; the inter-subject correlation and the ceiling of a simulated shared
response with known noise.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from samba_bids.bids.stimulus import StimulusEvent, read_stimulus_event
from samba_bids.errors import DataError
from samba_bids.metrics import (
    group_mean_ceiling,
    intersubject_correlation,
    windowed_pooled_spearman,
)
from samba_bids.workflows.stimulus import stimulus_grid_bold


def _events(path, rows, columns=("onset", "duration", "trial_type", "stim_file")):
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def test_stimulus_row_from_stim_file_or_trial_type(tmp_path):
    path = _events(tmp_path / "a_events.tsv", [(1.0, 0.0, "Volume", "n/a"),
                                              (6.5, 300.0, "film", "film_seg-2.mp4"),
                                              (8.0, 0.0, "Volume", "n/a")])
    event = read_stimulus_event(path)
    assert isinstance(event, StimulusEvent)
    assert (event.stimulus, event.onset_s, event.duration_s) == ("film_seg-2.mp4", 6.5, 300.0)
    # by trial_type: the stim_file still names it
    assert read_stimulus_event(path, stimulus_event="film").stimulus == "film_seg-2.mp4"
    # without a stim_file column, the trial_type is the identity
    plain = _events(tmp_path / "b_events.tsv", [(4.0, "n/a", "movie")],
                    columns=("onset", "duration", "trial_type"))
    event = read_stimulus_event(plain, stimulus_event="movie")
    assert (event.stimulus, event.onset_s, event.duration_s) == ("movie", 4.0, None)
    # the reasons a run has no stimulus, one line each
    assert "no stim_file column" in read_stimulus_event(plain)
    assert "no row with a trial_type 'film'" in read_stimulus_event(plain,
                                                                     stimulus_event="film")
    two = _events(tmp_path / "c_events.tsv", [(1.0, 10.0, "film", "a.mp4"),
                                              (20.0, 10.0, "film", "b.mp4")])
    assert "2 rows" in read_stimulus_event(two)
    bad = tmp_path / "d_events.tsv"
    bad.write_text("time\tvalue\n1\t2\n")
    with pytest.raises(DataError, match="no 'onset' column"):
        read_stimulus_event(bad)


def test_bold_lands_on_the_stimulus_grid():
    """A response to a stimulus that starts 7.3 s into the run: on the grid, stimulus time
    ``k TR + TR / 2`` of every run agrees, whatever the run's onset; outside, DataError."""
    tr, n_grid = 2.0, 40

    def response(t):  # stimulus time -> signal, two parcels
        return np.stack([np.sin(2 * np.pi * t / 37.0), np.cos(2 * np.pi * t / 23.0)])

    grid_times = np.arange(n_grid) * tr + tr / 2
    for onset in (7.3, 4.0, 11.9):
        n_volumes = int(np.ceil((onset + n_grid * tr + 10) / tr))
        sample_times = np.arange(n_volumes) * tr + tr / 2 - onset
        on_grid = stimulus_grid_bold(response(sample_times), tr, onset, n_grid)
        # linear interpolation every 2 s errs by at most h^2/8 max|f''| = 0.037 here; an
        # onset off by one volume would err by up to 0.5
        np.testing.assert_allclose(on_grid, response(grid_times), atol=0.04)
        if onset == 4.0:  # on the samples: exact
            np.testing.assert_allclose(on_grid, response(grid_times), atol=1e-12)
    with pytest.raises(DataError, match="not inside the run"):
        stimulus_grid_bold(np.zeros((2, 30)), tr, 7.3, n_grid, source="x_bold.func.gii")


def test_windowed_pooled_spearman_is_the_mean_of_scipys():
    rng = np.random.default_rng(0)
    predicted, observed = rng.normal(size=(2, 5, 47))
    observed += predicted
    volumes = np.arange(47)
    expected = np.mean([stats.spearmanr(predicted[:, i * 15:(i + 1) * 15].ravel(),
                                        observed[:, i * 15:(i + 1) * 15].ravel())[0]
                        for i in range(3)])  # the last 2 volumes make no whole window
    assert windowed_pooled_spearman(predicted, observed, volumes, 15) == pytest.approx(expected)
    assert np.isnan(windowed_pooled_spearman(predicted, observed, volumes[:10], 15))
    with pytest.raises(ValueError, match="at least 2"):
        windowed_pooled_spearman(predicted, observed, volumes, 1)


def test_isc_and_ceiling_of_a_shared_response():
    """P people = a shared response + independent noise of known variance: the pairwise ISC
    estimates var(s) / var(s + e) and the ceiling predicts the r of the people's mean with
    the shared response."""
    rng = np.random.default_rng(1)
    n_people, n_parcels, n_volumes, noise_sd = 8, 30, 4000, 1.5
    shared = rng.normal(size=(n_parcels, n_volumes))
    series = shared + noise_sd * rng.normal(size=(n_people, n_parcels, n_volumes))
    loo, pairwise = intersubject_correlation(series)
    rho = 1.0 / (1.0 + noise_sd**2)
    np.testing.assert_allclose(pairwise, rho, atol=0.03)
    assert np.all(loo > pairwise)  # the mean of 7 others is less noisy than one person
    ceiling = group_mean_ceiling(pairwise, n_people)
    actual = [np.corrcoef(series[:, m].mean(axis=0), shared[m])[0, 1] for m in range(n_parcels)]
    np.testing.assert_allclose(ceiling, actual, atol=0.02)
    assert np.isnan(group_mean_ceiling([-0.1], 8)).all()
    with pytest.raises(ValueError, match="P >= 2"):
        intersubject_correlation(series[:1])
