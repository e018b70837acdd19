"""The simulated dataset: one function that plans, simulates and writes every participant.

:func:`simulate_dataset` checks its arguments, draws what the participants share (planted HRFs
and mixing, sensors and parcel gain, BOLD atlases), then per participant simulates the source
activity, the sensor recording and the parcel BOLD, and writes them with the ground truth
(:mod:`samba_bids.simulate.bids_writer`). The generative model is described in
:mod:`samba_bids.simulate`.

About 720 lines: the plan, the per-run simulation and the truth parameters of every option
(runs and sessions, in-scanner recordings, Balloon hemodynamics) meet here, where each run's
random streams are drawn; the physics lives in its own modules (sources, sensors,
hemodynamics, balloon, scanner). If it grows, ``_truth_parameters`` (the truth JSON) is the
part to move next to the writer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import NoInputError, UsageError
from .balloon import (
    _STREAM_BALLOON,
    HEMODYNAMICS,
    BalloonParameters,
    balloon_description,
    draw_balloon_parameters,
    effective_time_to_peak,
    simulate_balloon_bold,
)
from .bids_writer import (
    TASK,
    TRIGGER,
    VERTEX_NOISE_FRACTION,
    _grayordinate_parcels,
    _small_volume_atlas,
    write_bold_images,
    write_clean_eeg,
    write_confounds,
    write_dataset_descriptions,
    write_ephys,
    write_readme,
    write_scanner_eeg,
    write_scanner_truth,
    write_truth,
)
from .hemodynamics import (
    BOLD_GAIN,
    DEFAULT_SNR,
    HRF_SUPPORT_S,
    ParcelBold,
    expected_noise_ceiling,
    hrf_kernels,
    mixing_matrix,
    plant_hrfs,
    plant_mixing,
    simulate_parcel_bold,
)
from .scanner import (
    _STREAM_SCANNER,
    DEFAULT_SCANNER_SFREQ_HZ,
    scanner_info,
    simulate_scanner_recording,
)
from .sensors import (
    DEFAULT_CHANNELS,
    SENSOR_LEVELS,
    SensorModel,
    make_sensors,
    project_to_sensors,
)
from .sources import (
    _STREAM_ACTIVITY,
    _STREAM_BOLD,
    _STREAM_CONFOUNDS,
    _STREAM_IMAGE,
    _STREAM_SENSOR,
    BANDS,
    DRIVE_STEP_S,
    ENVELOPE_GROUP_COUPLING,
    _subject_rng,
    band_log_power,
    network_groups,
    simulate_parcel_activity,
    source_model_parameters,
)

logger = logging.getLogger(__name__)

#: Time from the start of the recording to the first volume onset, s.
FIRST_VOLUME_S = 5.0
#: Recording kept after the last volume ends, s.
TAIL_S = 2.0
#: Neural activity simulated before the recording starts (not written), so the first volumes
#: have a full HRF history, s.
LEAD_IN_S = 32.0
#: Template subject of the source space and the source parcels.
EPHYS_SUBJECT = "fsaverage5"


def simulate_dataset(
    root,
    templates_dir,
    *,
    n_subjects: int = 1,
    duration_s: float = 600.0,
    tr_s: float = 2.0,
    modality: str = "eeg",
    n_channels: int | None = None,
    sfreq_hz: float = 250.0,
    snr: float = DEFAULT_SNR,
    ephys_scale: int = 100,
    bold_scale: int = 200,
    spaces=("fsaverage5", "MNI152NLin6Asym"),
    seed: int = 0,
    n_runs: int = 1,
    n_sessions: int = 1,
    n_ephys_only_runs: int = 0,
    progress: bool = False,
    mr_artifacts: bool = False,
    scanner_sfreq_hz: float = DEFAULT_SCANNER_SFREQ_HZ,
    hemodynamics: str = "linear",
) -> Path:
    """Write a BIDS EEG-fMRI (or MEG-fMRI) dataset with a known ground truth.

    See the module docstring for the generative model.

    Parameters
    ----------
    root : path-like
        Dataset folder to create (may exist; files of the same names are overwritten).
    templates_dir : path-like
        Templates folder (``--templates-dir`` layout): ``fsaverage5/`` with surfaces and
        Schaefer annotations, ``MNI152NLin6Asym/`` with the Schaefer volume atlas (or the
        offline fallback of :func:`samba_bids.templates.build_fallback_templates`, which has
        no MNI folder).
    n_subjects : int
        Participants ``sub-01`` .. ``sub-<n>``.
    duration_s : float
        Length of the BOLD run, s; ``n_volumes = floor(duration_s / tr_s)``. The recording is
        ``FIRST_VOLUME_S + n_volumes * tr_s + TAIL_S`` long.
    tr_s : float
        Repetition time, s.
    modality : {'eeg', 'meg'}
        Electrophysiology modality: EEG (BrainVision, 10-05 electrodes, sphere model or
        three-layer BEM) or MEG (FIF, magnetometers of the synthetic helmet of
        :func:`meg_helmet`, single-layer inner-skull BEM).
    n_channels : int | None
        EEG electrodes (10-05 positions, spread out; see :func:`eeg_channel_names`) or MEG
        magnetometers (8-400); None: :data:`DEFAULT_CHANNELS` (64 EEG, 102 MEG).
    sfreq_hz : float
        Sampling rate of the recording, Hz (>= 100, and ``sfreq_hz * 0.1`` an integer).
    snr : float
        ``var(noiseless parcel BOLD) / var(noise)`` per parcel (a variance ratio); the expected
        noise ceiling is ``sqrt(snr / (1 + snr))`` (default 16/9: 0.8).
    ephys_scale : int
        Schaefer 2018 scale of the source parcels (100, 200 or 400).
    bold_scale : int
        Schaefer 2018 scale of the BOLD parcels (100, 200 or 400).
    spaces : sequence of {'fsaverage5', 'MNI152NLin6Asym', 'fsLR'}
        BOLD spaces to write. ``MNI152NLin6Asym`` is skipped, with a logged warning, when the
        templates folder has no ``MNI152NLin6Asym/``, and ``fsLR`` when it has no fsLR 91k
        Schaefer dlabel at ``bold_scale`` (the truth parameters list the spaces written).
        ``fsLR`` writes ``_space-fsLR_den-91k_bold.dtseries.nii`` (fMRIPrep's CIFTI name):
        each grayordinate of a dlabel parcel carries the simulated BOLD of the parcel of the
        same Schaefer name plus noise, like a fsaverage5 vertex; the other grayordinates
        (medial wall, subcortex) carry the baseline plus noise.
    seed : int
        Seed of everything: the planted HRFs and mixing (shared by the subjects and their
        runs) and each run's activity and noise.
    n_runs : int
        Runs with electrophysiology and BOLD per session (``run-1`` .. ``run-<n>``; no run
        entity when there is one run in all). Every run of a participant has the same planted
        HRFs and mixing and its own activity and noise.
    n_sessions : int
        Sessions per participant (``ses-1`` .. ``ses-<n>``; no session entity for one).
    n_ephys_only_runs : int
        Further runs per session with electrophysiology only (numbered after the paired runs):
        the recording is in the raw dataset, no BOLD in ``derivatives/preproc``, and the BOLD
        it would have given (noiseless and noisy) is in ``derivatives/truth``, so a
        translation of it can be scored.
    progress : bool
        Log each subject's timing and noise ceiling at INFO level (else DEBUG).
    mr_artifacts : bool
        EEG as recorded inside the MR scanner (EEG only; every run, the EEG-only ones
        included): the clean EEG, simulated exactly as without the flag, is upsampled to
        ``scanner_sfreq_hz`` and gets a gradient artefact, a pulse artefact and an ``ECG``
        channel (:func:`samba_bids.simulate.scanner.simulate_scanner_recording`, random
        stream 5); the ``Volume`` markers move to the nearest sample of each volume's
        jittered true onset. The clean EEG (``_desc-clean_eeg.vhdr``), the R-peaks
        (``_desc-rpeaks_events.tsv``) and the true volume onsets
        (``_desc-volumes_events.tsv``) go to ``derivatives/truth/<sub>/[<ses>/]eeg``, the
        artefacts' parameters to the ``MRArtifacts`` entry of the truth parameters.
    scanner_sfreq_hz : float
        Sampling rate of the in-scanner recording, Hz (with ``mr_artifacts``): an integer
        multiple of ``sfreq_hz``, with ``tr_s * scanner_sfreq_hz`` a whole number.
    hemodynamics : {'linear', 'balloon'}
        How the drive becomes BOLD. ``'linear'``: convolution with each parcel's planted
        double-gamma HRF (step 4 of the module docstring). ``'balloon'``: a saturating
        neurovascular coupling and the Balloon-Windkessel model with per-parcel parameters
        (:mod:`samba_bids.simulate.balloon`; random stream 6 of subject 0, so the electrophysiology,
        the mixing and the noise draws are those of the linear dataset of the same seed);
        ``derivatives/truth`` then also holds ``_desc-truth_hemodynamics.tsv`` (the parameters
        and effective time to peak per parcel), and ``_desc-truth_hrf.tsv`` holds ``parcel``
        and the effective HRF's ``time_to_peak_s``.

    Returns
    -------
    Path
        ``root``.

    Raises
    ------
    NoInputError
        If ``templates_dir`` is None or lacks the template files (or the MNI folder when
        ``spaces`` asks for MNI152NLin6Asym or fsLR alone).
    UsageError
        If a parameter is out of range, ``hemodynamics`` is not ``'linear'`` or ``'balloon'``,
        or ``mr_artifacts`` is asked for MEG or with a ``scanner_sfreq_hz`` that is not a
        multiple of ``sfreq_hz``.
    """
    from ..config import check_option

    check_option("hemodynamics", hemodynamics, HEMODYNAMICS)
    t_start = time.perf_counter()
    templates_dir, n_channels, spaces, n_volumes = _check_arguments(
        templates_dir, n_subjects=n_subjects, duration_s=duration_s, tr_s=tr_s,
        modality=modality, n_channels=n_channels, sfreq_hz=sfreq_hz, snr=snr,
        ephys_scale=ephys_scale, bold_scale=bold_scale, spaces=spaces,
    )
    if mr_artifacts:
        _check_scanner(modality, sfreq_hz, scanner_sfreq_hz, tr_s)
    runs = _run_plan(n_runs, n_sessions, n_ephys_only_runs)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    preproc = root / "derivatives" / "preproc"
    truth = root / "derivatives" / "truth"
    preproc.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)

    sim = _plan(templates_dir, root=root, tr_s=tr_s, n_volumes=n_volumes, modality=modality,
                n_channels=n_channels, sfreq_hz=sfreq_hz, snr=snr, ephys_scale=ephys_scale,
                bold_scale=bold_scale, spaces=spaces, seed=seed, hemodynamics=hemodynamics)
    if mr_artifacts:
        sim.scanner_sfreq_hz = float(scanner_sfreq_hz)
    write_dataset_descriptions(root, preproc, truth, modality)
    ceilings_all = [_simulate_run(sim, index, run, progress=progress)
                    for index in range(1, n_subjects + 1) for run in runs]
    write_readme(root, modality)
    logger.info("Simulated %d subject(s) in %.1f s into %s (median noise ceiling %.3f)",
                n_subjects, time.perf_counter() - t_start, root,
                float(np.median(np.concatenate(ceilings_all))))
    return root


# --------------------------------------------------------------------------------------------
# Arguments


def _check_positive(name, value):
    if not np.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number, got {value!r}.")


def _check_arguments(templates_dir, *, n_subjects, duration_s, tr_s, modality, n_channels,
                     sfreq_hz, snr, ephys_scale, bold_scale, spaces):
    """Checked arguments of :func:`simulate_dataset`.

    Returns
    -------
    templates_dir : Path
    n_channels : int
        With the modality's default filled in.
    spaces : tuple of str
        The spaces to write (those the templates folder cannot give left out).
    n_volumes : int
    """
    if templates_dir is None:
        raise NoInputError(
            "simulate_dataset needs a templates folder (fsaverage5 surfaces and Schaefer "
            "atlases); pass --templates-dir PATH, or build an offline one with "
            "samba_bids.templates.find_templates_dir(fallback=True)."
        )
    templates_dir = Path(templates_dir)
    if not templates_dir.is_dir():
        raise NoInputError(f"{templates_dir} does not exist; pass the templates folder.")
    if modality not in SENSOR_LEVELS:
        raise UsageError(f"modality must be 'eeg' or 'meg', got {modality!r}.")
    if n_channels is None:
        n_channels = DEFAULT_CHANNELS[modality]
    for name, value in (("duration_s", duration_s), ("tr_s", tr_s), ("snr", snr),
                        ("sfreq_hz", sfreq_hz)):
        _check_positive(name, value)
    if sfreq_hz < 100:
        raise UsageError(f"sfreq_hz must be at least 100 Hz (bands up to 45 Hz), got {sfreq_hz}.")
    if abs(sfreq_hz * DRIVE_STEP_S - round(sfreq_hz * DRIVE_STEP_S)) > 1e-9:
        raise UsageError(f"sfreq_hz x {DRIVE_STEP_S} s must be a whole number, got {sfreq_hz}.")
    for name, value in (("ephys_scale", ephys_scale), ("bold_scale", bold_scale)):
        if value not in (100, 200, 400):
            raise UsageError(f"{name} must be 100, 200 or 400, got {value!r}.")
    spaces = _available_spaces(templates_dir, spaces, bold_scale)
    n_volumes = int(np.floor(duration_s / tr_s + 1e-9))
    if n_volumes < 10:
        raise UsageError(f"duration_s / tr_s gives {n_volumes} volumes; at least 10 are needed.")
    if n_subjects < 1:
        raise UsageError(f"n_subjects must be at least 1, got {n_subjects}.")
    return templates_dir, n_channels, spaces, n_volumes


def _check_scanner(modality: str, sfreq_hz: float, scanner_sfreq_hz: float, tr_s: float):
    """Check the arguments of ``mr_artifacts``.

    Raises
    ------
    UsageError
        If the modality is not EEG, ``scanner_sfreq_hz`` is not an integer multiple of
        ``sfreq_hz``, a volume is not a whole number of scanner samples, or ``tr_s`` is under
        0.05 s (a slice of the simulated EPI sequence needs about 45 ms).
    """
    if modality != "eeg":
        raise UsageError(f"--mr-artifacts simulates EEG recorded in the MR scanner; it is not "
                         f"available for modality {modality!r}. Use --modality eeg or drop "
                         "--mr-artifacts.")
    _check_positive("scanner_sfreq_hz", scanner_sfreq_hz)
    ratio = scanner_sfreq_hz / sfreq_hz
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
        raise UsageError(f"The scanner sampling rate ({scanner_sfreq_hz:g} Hz) must be an "
                         f"integer multiple of the EEG sampling rate ({sfreq_hz:g} Hz); pass "
                         f"e.g. --scanner-sfreq {sfreq_hz * max(1, round(ratio)):g}.")
    if tr_s < 0.05:
        raise UsageError(f"--mr-artifacts needs a TR of at least 0.05 s, got {tr_s:g} s.")
    if abs(tr_s * scanner_sfreq_hz - round(tr_s * scanner_sfreq_hz)) > 1e-6:
        raise UsageError(f"A volume (TR {tr_s:g} s) must be a whole number of samples at the "
                         f"scanner sampling rate ({scanner_sfreq_hz:g} Hz); change --tr or "
                         "--scanner-sfreq.")


def _available_spaces(templates_dir: Path, spaces, bold_scale: int) -> tuple:
    """``spaces`` checked, less fsLR and MNI152NLin6Asym where the templates lack their atlas."""
    from ..templates.locate import is_fallback_templates

    spaces = tuple(spaces)
    unknown = sorted(set(spaces) - {"fsaverage5", "MNI152NLin6Asym", "fsLR"})
    if unknown or not spaces:
        raise UsageError(
            f"spaces must be among fsaverage5, MNI152NLin6Asym, fsLR; got {spaces}."
        )
    fslr_dlabel = Path(templates_dir) / "fsLR" / (
        f"tpl-fsLR_den-91k_atlas-Schaefer2018_desc-{bold_scale}Parcels7Networks_dseg.dlabel.nii"
    )
    if "fsLR" in spaces and not fslr_dlabel.is_file():
        spaces = tuple(s for s in spaces if s != "fsLR")
        if not spaces:
            raise NoInputError(
                f"{fslr_dlabel} is missing, and fsLR is the only space asked for; pass a "
                "templates folder with the fsLR 91k Schaefer dlabel or another space."
            )
        logger.warning("%s is missing: the fsLR space is skipped, only %s is written.",
                       fslr_dlabel, ", ".join(spaces))
    if "MNI152NLin6Asym" in spaces and not (templates_dir / "MNI152NLin6Asym").is_dir():
        spaces = tuple(s for s in spaces if s != "MNI152NLin6Asym")
        if not spaces:
            raise NoInputError(
                f"{templates_dir} has no MNI152NLin6Asym folder, the only space asked for; "
                "pass a templates folder with the MNI atlas or spaces=('fsaverage5',)."
            )
        logger.warning("%s has no MNI152NLin6Asym folder%s: the MNI152NLin6Asym space is "
                       "skipped, only %s is written.", templates_dir,
                       " (offline fallback templates)" if is_fallback_templates(templates_dir)
                       else "", ", ".join(spaces))
    return spaces


@dataclass(frozen=True)
class RunPlan:
    """One run of a participant: its session and run labels (None: no such entity), task."""

    session: str | None
    run: str | None
    has_bold: bool
    task: str = TASK

    def prefix(self, subject: str) -> str:
        """``sub-<label>[_ses-<label>]_task-<task>[_run-<index>]``."""
        ses = f"_ses-{self.session}" if self.session is not None else ""
        run = f"_run-{self.run}" if self.run is not None else ""
        return f"sub-{subject}{ses}_task-{self.task}{run}"

    def folder(self, subject: str) -> Path:
        """``sub-<label>[/ses-<label>]``."""
        folder = Path(f"sub-{subject}")
        return folder / f"ses-{self.session}" if self.session is not None else folder


def _run_plan(n_runs: int, n_sessions: int, n_ephys_only_runs: int) -> list[RunPlan]:
    """The runs every participant gets: per session, the paired runs then the EEG/MEG-only.

    Raises
    ------
    UsageError
        If ``n_runs`` or ``n_sessions`` is below 1 or ``n_ephys_only_runs`` below 0.
    """
    for name, value, least in (("n_runs", n_runs, 1), ("n_sessions", n_sessions, 1),
                               ("n_ephys_only_runs", n_ephys_only_runs, 0)):
        if isinstance(value, bool) or int(value) != value or value < least:
            raise UsageError(f"{name} must be an integer of at least {least}, got {value!r}.")
    per_session = n_runs + n_ephys_only_runs
    return [RunPlan(session=str(ses) if n_sessions > 1 else None,
                    run=str(run) if per_session > 1 else None, has_bold=run <= n_runs)
            for ses in range(1, n_sessions + 1) for run in range(1, per_session + 1)]


def _run_rng(seed: int, index: int, stream: int, run: RunPlan) -> np.random.Generator:
    """The random stream of one purpose in one run of participant ``index``.

    A participant with a single run keeps the streams ``[seed, index, stream]`` of
    :func:`~samba_bids.simulate.sources._subject_rng` (datasets of earlier versions are
    reproduced); further runs add ``[session, run]`` (0 for an absent entity).
    """
    if run.session is None and run.run is None:
        return _subject_rng(seed, index, stream)
    return np.random.default_rng([int(seed), int(index), int(stream), int(run.session or 0),
                                  int(run.run or 0)])


# --------------------------------------------------------------------------------------------
# What every participant shares


@dataclass
class _Simulation:
    """Settings, timing and shared truth of one :func:`simulate_dataset` call."""

    root: Path
    modality: str
    sfreq_hz: float
    snr: float
    ephys_scale: int
    bold_scale: int
    spaces: tuple
    seed: int
    tr_s: float
    n_volumes: int
    first_volume_s: float
    n_rec: int  # samples of the recording
    n_lead: int  # samples simulated before the recording
    onsets_s: np.ndarray  # volume onsets on the recording clock
    source_names: list
    bold_names: list
    bold_vertex_parcels: dict
    hrf: pd.DataFrame
    mixing: pd.DataFrame
    weights: np.ndarray  # (M, N, bands)
    kernels: np.ndarray  # (M, K + 1)
    sensors: SensorModel
    volume_atlas_small: tuple | None
    grayordinates: tuple | None
    scanner_sfreq_hz: float | None = None  # None: no MR artefacts
    hemodynamics: str = "linear"
    balloon: BalloonParameters | None = None  # (M,) each, with hemodynamics "balloon"
    hemodynamics_table: pd.DataFrame | None = None  # parcel, Balloon parameters, time to peak

    @property
    def truth_hrf(self) -> pd.DataFrame:
        """``_desc-truth_hrf.tsv``: the planted double-gamma HRFs (linear), or ``parcel`` and
        the effective HRF's ``time_to_peak_s`` (balloon)."""
        if self.hemodynamics_table is None:
            return self.hrf
        return self.hemodynamics_table[["parcel", "time_to_peak_s"]]


def _plan(templates_dir, *, root, tr_s, n_volumes, modality, n_channels, sfreq_hz, snr,
          ephys_scale, bold_scale, spaces, seed, hemodynamics="linear") -> _Simulation:
    """Atlases, planted HRFs and mixing (from ``seed`` alone), sensors, and the run's timing.

    The double-gamma HRFs are drawn for either ``hemodynamics`` (the mixing is drawn after them
    from the same stream); ``'balloon'`` draws the Balloon parameters from their own stream.
    """
    from ..templates.atlases import surface_atlas, surface_parcel_centroids

    src_vertex_parcels, source_names = surface_atlas(templates_dir, EPHYS_SUBJECT, ephys_scale)
    source_centroids = surface_parcel_centroids(templates_dir, EPHYS_SUBJECT, src_vertex_parcels)
    bold_vertex_parcels, bold_names = surface_atlas(templates_dir, "fsaverage5", bold_scale)
    bold_centroids = surface_parcel_centroids(templates_dir, "fsaverage5", bold_vertex_parcels)
    shared_rng = _subject_rng(seed, 0, 0)
    hrf = plant_hrfs(len(bold_names), shared_rng)
    hrf.insert(0, "parcel", bold_names)
    mixing = plant_mixing(source_centroids, bold_centroids, source_names, bold_names, shared_rng)
    balloon, hemodynamics_table = None, None
    if hemodynamics == "balloon":
        balloon = draw_balloon_parameters(len(bold_names), _subject_rng(seed, 0, _STREAM_BALLOON))
        hemodynamics_table = balloon.frame(bold_names)
        hemodynamics_table["time_to_peak_s"] = effective_time_to_peak(balloon)
    sensors = make_sensors(templates_dir, modality, n_channels, sfreq_hz,
                           subject=EPHYS_SUBJECT, n_parcels=ephys_scale)
    volume_atlas_small = None
    if "MNI152NLin6Asym" in spaces:
        volume_atlas_small = _small_volume_atlas(templates_dir, bold_scale)
    grayordinates = None
    if "fsLR" in spaces:
        grayordinates = _grayordinate_parcels(templates_dir, bold_scale, bold_names)

    first_volume_s = FIRST_VOLUME_S
    rec_duration_s = first_volume_s + n_volumes * tr_s + TAIL_S
    return _Simulation(
        root=root, modality=modality, sfreq_hz=sfreq_hz, snr=snr, ephys_scale=ephys_scale,
        bold_scale=bold_scale, spaces=spaces, seed=seed, tr_s=tr_s, n_volumes=n_volumes,
        first_volume_s=first_volume_s,
        n_rec=int(round(rec_duration_s * sfreq_hz)),
        n_lead=int(round(LEAD_IN_S * sfreq_hz)),
        onsets_s=first_volume_s + np.arange(n_volumes) * tr_s,
        source_names=source_names, bold_names=bold_names,
        bold_vertex_parcels=bold_vertex_parcels, hrf=hrf, mixing=mixing,
        weights=mixing_matrix(mixing, source_names, bold_names),
        kernels=hrf_kernels(hrf.iloc[:, 1:7].to_numpy(), DRIVE_STEP_S),
        sensors=sensors, volume_atlas_small=volume_atlas_small, grayordinates=grayordinates,
        hemodynamics=hemodynamics, balloon=balloon, hemodynamics_table=hemodynamics_table,
    )


# --------------------------------------------------------------------------------------------
# One participant


def _simulate_run(sim: _Simulation, index: int, run: RunPlan, *,
                  progress: bool) -> np.ndarray:
    """Simulate and write one run of participant ``index`` (from 1); returns its noise
    ceilings."""
    subject = f"{index:02d}"
    t_sub = time.perf_counter()
    # neural activity (lead-in + recording)
    activity = simulate_parcel_activity(len(sim.source_names), sim.n_lead + sim.n_rec,
                                        sim.sfreq_hz,
                                        _run_rng(sim.seed, index, _STREAM_ACTIVITY, run),
                                        groups=network_groups(sim.source_names),
                                        group_coupling=ENVELOPE_GROUP_COUPLING)
    data, moment_am = project_to_sensors(sim.sensors, activity.data, sim.n_lead, sim.n_rec,
                                         sim.sfreq_hz,
                                         _run_rng(sim.seed, index, _STREAM_SENSOR, run))
    mr_artifacts = None
    if sim.scanner_sfreq_hz is None:
        write_ephys(sim.root, subject, data, sim.sensors.info, sim.onsets_s, sim.modality,
                    session=run.session, run=run.run)
    else:
        mr_artifacts = _write_scanner_run(sim, index, run, data)
    del data
    logpow = band_log_power(activity.data, sim.sfreq_hz)  # (N, bands, bins) from the lead-in
    del activity
    bold = _simulate_bold(sim, logpow, _run_rng(sim.seed, index, _STREAM_BOLD, run))
    per_volume = _band_power_per_volume(sim, logpow)

    prefix = run.prefix(subject)
    if run.has_bold:
        func = sim.root / "derivatives" / "preproc" / run.folder(subject) / "func"
        func.mkdir(parents=True, exist_ok=True)
        write_bold_images(
            func, prefix, bold.noisy, bold.noise_sd, sim.tr_s,
            _run_rng(sim.seed, index, _STREAM_IMAGE, run),
            surface_parcels=sim.bold_vertex_parcels if "fsaverage5" in sim.spaces else None,
            volume_parcels=sim.volume_atlas_small, grayordinates=sim.grayordinates,
        )
        write_confounds(func, prefix, bold.noisy,
                        _run_rng(sim.seed, index, _STREAM_CONFOUNDS, run))
    tdir = sim.root / "derivatives" / "truth" / run.folder(subject) / "func"
    tdir.mkdir(parents=True, exist_ok=True)
    write_truth(tdir, prefix, hrf=sim.truth_hrf, mixing=sim.mixing, bold=bold,
                bold_names=sim.bold_names, source_band_power=per_volume,
                source_names=sim.source_names,
                parameters=_truth_parameters(sim, index, bold, moment_am, run,
                                             mr_artifacts=mr_artifacts),
                hemodynamics=sim.hemodynamics_table)
    logger.log(logging.INFO if progress else logging.DEBUG,
               "%s simulated in %.1f s (median noise ceiling %.3f)%s", prefix,
               time.perf_counter() - t_sub, float(np.median(bold.ceiling)),
               "" if run.has_bold else "; no BOLD written (electrophysiology only)")
    return bold.ceiling


def _write_scanner_run(sim: _Simulation, index: int, run: RunPlan, clean) -> dict:
    """Write one run's clean EEG to the truth and its in-scanner recording as the raw EEG.

    Returns the ``MRArtifacts`` entry of the truth parameters.
    """
    subject = f"{index:02d}"
    prefix = run.prefix(subject)
    edir = sim.root / "derivatives" / "truth" / run.folder(subject) / "eeg"
    edir.mkdir(parents=True, exist_ok=True)
    write_clean_eeg(sim.root / "derivatives" / "truth", subject, clean, sim.sensors.info,
                    sim.onsets_s, session=run.session, run=run.run)
    recording = simulate_scanner_recording(
        clean, sfreq_hz=sim.sfreq_hz, onsets_s=sim.onsets_s, tr_s=sim.tr_s,
        scanner_sfreq_hz=sim.scanner_sfreq_hz, ch_names=sim.sensors.info["ch_names"],
        rng=_run_rng(sim.seed, index, _STREAM_SCANNER, run),
    )
    write_scanner_eeg(sim.root, subject, recording.data,
                      scanner_info(sim.sensors.info, recording.sfreq_hz),
                      recording.marker_samples, session=run.session, run=run.run)
    recording.data = None  # free the scanner-rate samples
    write_scanner_truth(edir, prefix, recording)
    return recording.parameters


def _simulate_bold(sim: _Simulation, logpow, rng) -> ParcelBold:
    """Parcel BOLD from the log band power (0.1 s bins from the start of the lead-in)."""
    t_bins = (np.arange(logpow.shape[-1]) + 0.5) * DRIVE_STEP_S - LEAD_IN_S  # recording clock
    t_acq = sim.onsets_s + sim.tr_s / 2.0
    if sim.hemodynamics == "balloon":
        return simulate_balloon_bold(logpow, sim.weights, sim.balloon, t_bins, t_acq, sim.snr,
                                     rng, DRIVE_STEP_S)
    return simulate_parcel_bold(logpow, sim.weights, sim.kernels, t_bins, t_acq, sim.snr, rng)


def _band_power_per_volume(sim: _Simulation, logpow) -> np.ndarray:
    """Mean log band power in [onset, onset + TR) per volume (truth for the reverse direction).

    Returns
    -------
    ndarray, shape (N, n_bands, V)
    """
    per_volume = np.empty((len(sim.source_names), len(BANDS), sim.n_volumes))
    for v, onset in enumerate(sim.onsets_s):
        lo = int(round((onset + LEAD_IN_S) / DRIVE_STEP_S))
        hi = int(round((onset + sim.tr_s + LEAD_IN_S) / DRIVE_STEP_S))
        per_volume[:, :, v] = logpow[:, :, lo:hi].mean(axis=-1)
    return per_volume


def _truth_parameters(sim: _Simulation, index: int, bold: ParcelBold, moment_am,
                      run: RunPlan, *, mr_artifacts: dict | None = None) -> dict:
    """The ``_desc-truth_parameters.json`` of one run of participant ``index``.

    ``mr_artifacts`` (the in-scanner recording's parameters) is added as ``MRArtifacts``;
    None leaves the entry out.
    """
    scanner = {} if mr_artifacts is None else {"MRArtifacts": mr_artifacts}
    if sim.hemodynamics == "balloon":
        hemodynamics = {
            "Hemodynamics": "balloon",
            "HRF": "none planted: saturating neurovascular coupling and the Balloon-Windkessel "
                   "model (BalloonModel); _desc-truth_hrf.tsv holds the time to peak of each "
                   "parcel's effective HRF (impulse response at rest), "
                   "_desc-truth_hemodynamics.tsv the parameters",
            "BOLDGain": BOLD_GAIN,
            "BalloonModel": balloon_description(),
        }
    else:
        hemodynamics = {
            "Hemodynamics": "linear",
            "HRF": "SPM double gamma (samba_bids.model.hrf.double_gamma), unit-sum kernel, "
                   f"{HRF_SUPPORT_S} s support, causal",
            "BOLDGain": BOLD_GAIN,
        }
    modality, sensors = sim.modality, sim.sensors
    several = {} if run.session is None and run.run is None else {
        "Session": run.session, "Run": run.run,
        "BOLDWritten": run.has_bold,
        "RunRandomStreams": "numpy default_rng([Seed, SubjectIndex, stream, session, run]) "
                            "(0 for an absent entity); the HRFs and mixing are shared by "
                            "every run of every subject",
    }
    return {
        "Description": "Parameters of the simulation of this subject (samba-bids-simulate).",
        "Seed": int(sim.seed),
        "SubjectIndex": index,
        "RandomStreams": "numpy default_rng([Seed, SubjectIndex, stream]); stream 0 "
                         "activity, 1 sensor noise, 2 BOLD noise, 3 image noise, "
                         "4 confounds; [Seed, 0, 0] the shared HRFs and mixing",
        "SNR": float(sim.snr),
        "SNRDefinition": "var(noiseless parcel BOLD) / var(noise), per parcel",
        "ExpectedNoiseCeiling": expected_noise_ceiling(sim.snr),
        "MedianNoiseCeiling": float(np.median(bold.ceiling)),
        "RepetitionTime": float(sim.tr_s),
        "NumberOfVolumes": sim.n_volumes,
        "DurationBOLD": sim.n_volumes * float(sim.tr_s),
        "RecordingDuration": sim.n_rec / float(sim.sfreq_hz),
        "FirstVolumeOnset": sim.first_volume_s,
        "VolumeTrigger": TRIGGER,
        "BOLDSampleTime": "onset + TR/2 (middle of each volume's acquisition)",
        "LeadIn": LEAD_IN_S,
        "Modality": modality,
        "Channels": list(sensors.info["ch_names"]),
        "SamplingFrequency": float(sim.sfreq_hz),
        "SourceParcels": f"Schaefer 2018, 7 networks, {sim.ephys_scale} parcels on "
                         f"{EPHYS_SUBJECT}",
        "BOLDParcels": f"Schaefer 2018, 7 networks, {sim.bold_scale} parcels",
        **source_model_parameters(),
        "SourceBandPowerPerVolume": "mean of the 0.1 s log band power over [onset, "
                                    "onset + TR) (not z-scored)",
        **hemodynamics,
        "BOLDUnits": "percent signal change (images: 100 + value)",
        "VertexNoiseFraction": VERTEX_NOISE_FRACTION,
        "DipoleMomentPerVertex": float(moment_am),
        "DipoleMomentUnits": "A m per unit of parcel activity",
        "SensorNoiseSD": sensors.noise_sd,
        "SensorSignalRMS": sensors.signal_rms,
        "SensorUnits": sensors.unit,
        "SensorSignalRMSDefinition": "median over channels of the RMS of the noiseless "
                                     "brain signal over the first 60 s"
                                     + (" (before referencing)" if modality == "eeg"
                                        else ""),
        **sensors.description,
        "LabelVertices": dict(zip(sim.source_names, sensors.n_label_vertices.tolist())),
        "ForwardModel": sensors.forward_provenance,
        "Confounds": "random motion (not added to the BOLD), csf/white_matter noise, "
                     "global_signal = 100 + mean noisy parcel BOLD",
        "Spaces": list(sim.spaces),
        **several,
        **scanner,
    }
