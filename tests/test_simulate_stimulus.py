"""The stimulus-locked simulator: MEG/EEG of some people, fMRI of others, one film.

One small EEG dataset is written through the command line per module (2 + 2 participants,
2 segments of 60 s, 16 electrodes, Schaefer-100 on both sides); the statistical checks run on
the simulator's in-memory arrays of one 300 s segment (the default length), at 100 Hz to keep
them cheap.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from samba_bids import simulate as sim
from samba_bids.errors import UsageError
from samba_bids.simulate import stimulus as st

SEGMENT_S = 60.0
TR_S = 2.0
SCALE = 100
EPHYS = ["01", "02"]
BOLD = ["03", "04"]
SEGMENTS = (1, 2)


@pytest.fixture(scope="module")
def cli_run(templates_dir, tmp_path_factory):
    """Exit code and folder of ``samba-bids-simulate --stimulus-locked`` (EEG, 2 + 2)."""
    root = tmp_path_factory.mktemp("film") / "ds"
    code = sim.main([
        str(root), "--stimulus-locked", "--templates-dir", str(templates_dir),
        "--ephys-subjects", "2", "--bold-subjects", "2", "--segments", "2",
        "--duration", str(SEGMENT_S), "--modality", "eeg", "--channels", "16",
        "--ephys-scale", str(SCALE), "--bold-scale", str(SCALE), "--seed", "5",
    ])
    return code, root


@pytest.fixture(scope="module")
def dataset(cli_run):
    code, root = cli_run
    assert code == 0
    return root


@pytest.fixture(scope="module")
def film_plan(templates_dir, tmp_path_factory):
    """Shared plan and film of one default-length segment (300 s), simulated at 100 Hz."""
    return st._stimulus_plan(
        templates_dir, root=tmp_path_factory.mktemp("unwritten"), n_segments=1,
        segment_duration_s=300.0, modality="eeg", tr_s=TR_S, stimulus_share=0.5,
        n_channels=16, sfreq_hz=100.0, snr=sim.DEFAULT_SNR, ephys_scale=SCALE,
        bold_scale=SCALE, spaces=("fsaverage5",), seed=0,
    )


def _tsv(path):
    return pd.read_csv(path, sep="\t")


def _json(path):
    return json.loads(path.read_text())


def _prefix(subject, segment):
    return f"sub-{subject}_task-film_run-{segment}"


def _truth_parameters(root, subject, segment, datatype):
    return _json(root / "derivatives" / "truth" / f"sub-{subject}" / datatype
                 / f"{_prefix(subject, segment)}_desc-truth_parameters.json")


def _median_r(a, b):
    """Median over columns of the Pearson r of two (T, M) arrays."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return float(np.median((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))))


def _on_film_time(noiseless, onset_s, n_samples):
    """(V, M) BOLD of a run resampled at film times k TR + TR / 2 by its film onset."""
    t_film = np.arange(noiseless.shape[0]) * TR_S + TR_S / 2 - onset_s
    t_samples = np.arange(n_samples) * TR_S + TR_S / 2
    return np.stack([np.interp(t_samples, t_film, col) for col in noiseless.T], axis=1)


# --------------------------------------------------------------------------------------------
# Layout


def test_cli_writes_a_valid_dataset(cli_run):
    from samba_bids.bids.layout import validate_dataset

    code, root = cli_run
    assert code == 0
    validate_dataset(root)
    assert "no raw" in (root / "README").read_text().lower()


def test_electrophysiology_participants_have_a_film_event_and_no_bold(dataset):
    for subject in EPHYS:
        assert not (dataset / f"sub-{subject}" / "func").exists()
        assert not (dataset / "derivatives" / "preproc" / f"sub-{subject}").exists()
        for segment in SEGMENTS:
            eeg = dataset / f"sub-{subject}" / "eeg"
            assert (eeg / f"{_prefix(subject, segment)}_eeg.vhdr").is_file()
            events = _tsv(eeg / f"{_prefix(subject, segment)}_events.tsv")
            assert list(events["trial_type"]) == ["film"]  # no Volume events: no scanner
            assert events["duration"][0] == SEGMENT_S
            assert events["stim_file"][0] == f"film_seg-{segment}.mp4"
            truth = _truth_parameters(dataset, subject, segment, "eeg")
            assert events["onset"][0] == pytest.approx(truth["FilmOnset"], abs=1e-9)
            assert 2.0 <= truth["Lead"] <= 8.0
            # the recording ends 2 s after the segment
            assert truth["RecordingDuration"] == pytest.approx(
                truth["Lead"] + SEGMENT_S + 2.0, abs=1e-6)


def test_fmri_participants_have_events_sidecar_and_preprocessed_bold_only(dataset):
    import nibabel as nib

    for subject in BOLD:
        raw_func = dataset / f"sub-{subject}" / "func"
        assert sorted(p.name for p in raw_func.iterdir()) == sorted(
            f"{_prefix(subject, s)}_{suffix}" for s in SEGMENTS
            for suffix in ("bold.json", "events.tsv"))
        assert not (dataset / f"sub-{subject}" / "eeg").exists()
        for segment in SEGMENTS:
            prefix = _prefix(subject, segment)
            sidecar = _json(raw_func / f"{prefix}_bold.json")
            assert sidecar == {"RepetitionTime": TR_S, "TaskName": "film"}
            events = _tsv(raw_func / f"{prefix}_events.tsv")
            assert list(events.columns) == ["onset", "duration", "trial_type", "stim_file"]
            assert list(events["trial_type"]) == ["film"]
            assert events["stim_file"][0] == f"film_seg-{segment}.mp4"
            assert events["duration"][0] == SEGMENT_S
            truth = _truth_parameters(dataset, subject, segment, "func")
            lead = truth["FilmOnset"]
            assert events["onset"][0] == pytest.approx(lead, abs=1e-9)
            assert 4.0 <= lead <= 12.0 and abs(lead / TR_S - round(lead / TR_S)) > 1e-3
            n_volumes = math.ceil((lead + SEGMENT_S + 10.0) / TR_S)
            assert truth["NumberOfVolumes"] == n_volumes
            func = dataset / "derivatives" / "preproc" / f"sub-{subject}" / "func"
            gifti = nib.load(func / f"{prefix}_hemi-L_space-fsaverage5_bold.func.gii")
            assert len(gifti.darrays) == n_volumes
            assert _json(func / f"{prefix}_space-fsaverage5_bold.json")["TaskName"] == "film"
            assert len(_tsv(func / f"{prefix}_desc-confounds_timeseries.tsv")) == n_volumes
            assert not list(func.glob("*MNI152NLin6Asym*"))  # default: fsaverage5 only
            noiseless = dataset / "derivatives" / "truth" / f"sub-{subject}" / "func" / (
                f"{prefix}_desc-noiseless_timeseries.tsv")
            assert len(_tsv(noiseless)) == n_volumes


def test_run_entity_is_written_even_for_one_segment():
    assert st._film_run(1, has_bold=False).prefix("01") == "sub-01_task-film_run-1"
    assert sim.stim_file(1) == "film_seg-1.mp4" and sim.STIMULUS_TASK == "film"


def test_leads_differ_between_participants_and_runs(dataset):
    leads = [_truth_parameters(dataset, subject, segment, kind)["Lead"]
             for subject, kind in [(s, "eeg") for s in EPHYS] + [(s, "func") for s in BOLD]
             for segment in SEGMENTS]
    assert len(set(np.round(leads, 6))) == len(leads)


def test_stimulus_truth_files(dataset):
    truth = dataset / "derivatives" / "truth"
    params = _json(truth / "task-film_desc-stimulus_parameters.json")
    assert params["StimFiles"] == ["film_seg-1.mp4", "film_seg-2.mp4"]
    assert params["Segments"] == ["task-film_run-1", "task-film_run-2"]
    assert params["SegmentDurations"] == [SEGMENT_S, SEGMENT_S]
    assert params["StimulusShare"] == 0.5 and params["Seed"] == 5
    n_samples = int(SEGMENT_S // TR_S)
    for segment in SEGMENTS:
        stem = f"task-film_run-{segment}_desc-stimulus_timeseries"
        sidecar = _json(truth / f"{stem}.json")
        assert sidecar["RepetitionTime"] == TR_S
        assert sidecar["FilmTimeOfFirstSample"] == TR_S / 2
        stimulus = _tsv(truth / f"{stem}.tsv")
        noiseless = [_tsv(truth / f"sub-{s}" / "func"
                          / f"{_prefix(s, segment)}_desc-noiseless_timeseries.tsv")
                     for s in BOLD]
        assert stimulus.shape == (n_samples, SCALE)
        assert list(stimulus.columns) == list(noiseless[0].columns)
        # the written files agree: the two fMRI participants' mean noiseless BOLD, put on
        # film time by the onsets of their events.tsv, follows the stimulus-driven BOLD
        # (expected r about sqrt(0.5 / (0.5 + 0.5 / 2)) = 0.82; observed 0.81 and 0.83)
        on_film = [
            _on_film_time(frame.to_numpy(), _tsv(
                dataset / f"sub-{s}" / "func" / f"{_prefix(s, segment)}_events.tsv"
            )["onset"][0], n_samples)
            for s, frame in zip(BOLD, noiseless)
        ]
        assert _median_r(np.mean(on_film, axis=0), stimulus.to_numpy()) > 0.6


# --------------------------------------------------------------------------------------------
# Generative model


def test_default_parcel_activity_is_unchanged():
    """Without a shared envelope the activity is that of earlier versions (values recorded
    before the stimulus option existed), whether None is passed or not; a zero share keeps
    the person's own stream bit for bit."""
    names = [f"7Networks_{h}_{n}_{i}" for h in ("LH", "RH") for n in ("Vis", "Default", "SomMot")
             for i in (1, 2)]
    kwargs = dict(groups=sim.network_groups(names), group_coupling=0.9)
    default = sim.simulate_parcel_activity(len(names), 2000, 250.0,
                                           np.random.default_rng([3, 1, 0]), **kwargs).data
    np.testing.assert_allclose(default[[0, 5, 11], [0, 999, 1999]],
                               [0.8267234, -0.5918725, 0.67999876], rtol=1e-6)
    explicit = sim.simulate_parcel_activity(len(names), 2000, 250.0,
                                            np.random.default_rng([3, 1, 0]), shared_slow=None,
                                            shared_weight=None, **kwargs).data
    assert np.array_equal(default, explicit)
    ungrouped = sim.simulate_parcel_activity(3, 1000, 100.0, np.random.default_rng(7)).data
    np.testing.assert_allclose(ungrouped[:, 500], [-1.9922628, 2.5471969, -1.6192886],
                               rtol=1e-6)

    n_coarse = sim.coarse_grid_size(2000, 250.0)
    shared = np.random.default_rng(1).standard_normal((len(names), len(sim.BANDS), n_coarse))
    zero_share = sim.simulate_parcel_activity(
        len(names), 2000, 250.0, np.random.default_rng([3, 1, 0]), shared_slow=shared,
        shared_share=0.0, **kwargs).data
    assert np.array_equal(default, zero_share)
    half = sim.simulate_parcel_activity(
        len(names), 2000, 250.0, np.random.default_rng([3, 1, 0]), shared_slow=shared,
        shared_share=0.5, **kwargs).data
    assert not np.allclose(default, half)
    with pytest.raises(ValueError, match="shape"):
        sim.simulate_parcel_activity(len(names), 2000, 250.0, np.random.default_rng(0),
                                     shared_slow=shared[:, :, :-1], **kwargs)


def test_stimulus_envelope_depends_on_seed_and_segment_only(film_plan):
    plan, film = film_plan
    again = sim.stimulus_envelopes(0, 1, plan.source_names, 300.0)
    assert np.array_equal(film.envelopes[0], again)
    other = sim.stimulus_envelopes(0, 2, plan.source_names, 300.0)
    assert abs(np.corrcoef(again.ravel(), other.ravel())[0, 1]) < 0.05
    assert again.shape == (SCALE, len(sim.BANDS), 3002)
    assert abs(np.median(again.std(axis=-1)) - 1.0) < 0.05  # unit variance (in expectation)


def test_electrophysiology_band_power_is_shared_during_the_film_only(film_plan):
    """Two electrophysiology participants' planted source log band power (2 s means on film
    time) correlates while the film plays and not before it.

    With a stimulus share of 0.5 the slow log-envelopes correlate 0.5 across people during
    the film; the log band power a little less, as the 1/f background and the power's
    fluctuation within bins are not shared (observed median over parcels and bands 0.34-0.40
    over seeds 0-2; alpha, where the band component dominates, 0.34-0.45). Before the film
    (the 34 s of lead-in and lead both simulations have) the people are independent
    (observed 0.01-0.06).
    """
    plan, film = film_plan

    def two_second_means(band_power, start_s, stop_s):
        logpow, t_film = band_power
        edges = np.arange(start_s, stop_s + 1e-9, 2.0)
        bins = np.digitize(t_film, edges) - 1
        means = [logpow[..., bins == j].mean(axis=-1) for j in range(len(edges) - 1)]
        return np.stack(means, axis=-1).reshape(-1, len(means)).T  # (bins, parcels x bands)

    first, second = (st._ephys_band_power(plan, film, index, 1) for index in (1, 2))
    during = _median_r(two_second_means(first, 0.0, 300.0),
                       two_second_means(second, 0.0, 300.0))
    before = _median_r(two_second_means(first, -34.0, 0.0),
                       two_second_means(second, -34.0, 0.0))
    assert 0.25 < during < 0.6
    assert abs(before) < 0.15


def test_fmri_group_mean_follows_the_stimulus_driven_bold(film_plan):
    """The mean noiseless BOLD of 8 fMRI participants, put on film time by their film
    onsets, correlates with the stimulus-driven BOLD more than one participant's does.

    Each participant's BOLD is the stimulus-driven part plus an own part of about the same
    variance (stimulus share 0.5), so one participant is expected at r ~ sqrt(0.5) = 0.71 and
    the mean of 8 at sqrt(0.5 / (0.5 + 0.5 / 8)) = 0.94, less the unshared background of the
    band power. Observed with the defaults (300 s, share 0.5, TR 2 s; 100 Hz here, Schaefer-100
    BOLD parcels; seeds 0-2): median over parcels 0.92-0.93 for the mean of 8, 0.63-0.73 for
    single participants; at 250 Hz and Schaefer-200, 0.93 and 0.64-0.69.
    """
    plan, film = film_plan
    runs = [st._simulate_bold_run(plan, film, index, 1) for index in range(3, 11)]
    n_samples = int(300.0 // TR_S)
    gain = np.mean([run.gain for run in runs], axis=0)
    truth = sim.stimulus_bold(film.envelopes[0], gain, plan.weights, plan.kernels, TR_S, 300.0)
    assert truth.shape == (n_samples, SCALE)
    on_film = [_on_film_time(run.bold.noiseless, run.lead_s, n_samples) for run in runs]
    group = _median_r(np.mean(on_film, axis=0), truth)
    single = [_median_r(one, truth) for one in on_film]
    assert group > 0.85
    assert max(single) < group - 0.1
    assert min(single) > 0.5  # the stimulus drives every participant
    # the leads differ (the BOLD runs are not aligned by their first volumes)
    assert len({round(run.lead_s, 6) for run in runs}) == len(runs)


# --------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize("flags", [["--runs", "2"], ["--sessions", "2"],
                                   ["--ephys-only-runs", "1"], ["--mr-artifacts"],
                                   ["--hemodynamics", "balloon"], ["--subjects", "3"]])
def test_cli_refuses_options_of_the_other_design(flags, tmp_path, capsys):
    code = sim.main([str(tmp_path / "ds"), "--stimulus-locked", *flags])
    assert code == UsageError.exit_code == 64
    message = capsys.readouterr().err.strip()
    assert flags[0] in message and "--stimulus-locked" in message and "\n" not in message
    assert not (tmp_path / "ds").exists()
    assert sim.main([str(tmp_path / "ds"), "--segments", "2"]) == 64


def test_api_checks_its_arguments(tmp_path, templates_dir):
    with pytest.raises(UsageError, match="n_bold_subjects"):
        sim.simulate_stimulus_locked_dataset(tmp_path, templates_dir, n_bold_subjects=0)
    with pytest.raises(UsageError, match="stimulus_share"):
        sim.simulate_stimulus_locked_dataset(tmp_path, templates_dir, stimulus_share=1.5)
    with pytest.raises(UsageError, match="volumes"):
        sim.simulate_stimulus_locked_dataset(tmp_path, templates_dir, segment_duration_s=10.0)
