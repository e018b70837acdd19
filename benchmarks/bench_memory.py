"""Peak memory of the electrophysiology stage on a long recording: 60 min, 64 channels, 1 kHz.

Writes a BIDS BrainVision EEG recording (default 60 minutes of 64 channels at 1 kHz, the
electrodes of :func:`samba_bids.simulate.eeg_channel_names` at their ``fsaverage_1005`` 10-05
positions, so the template forward model works) and runs the participant level's
electrophysiology stage on it, exactly as :func:`samba_bids.workflows.prepare_run` calls it
(default :class:`samba_bids.config.Config`: :func:`~samba_bids.ephys.read_ephys` ->
:func:`~samba_bids.ephys.detect_modality` -> :func:`~samba_bids.ephys.preprocess_raw`
(0.5-45 Hz FIR, 100 Hz, average-reference projector) ->
:func:`~samba_bids.ephys.compute_source_parcels` (fsaverage5, Schaefer-100, dSPM, SNR 3,
60-s chunks)), in a child process under ``/usr/bin/time -v``. It prints the child's peak
resident set size ("Maximum resident set size") and wall time, and the same for the naive
reference measured in the same run: MNE's usual whole-recording path (``read_raw_bids`` with
``preload=True``, ``raw.copy().pick(...)``, ``filter``, ``resample``, then the same source
stage), which is what the package did before the stage was chunked.

How the recording is written: MNE-BIDS writes a 1-s recording with every sidecar
(``channels.tsv``, ``electrodes.tsv``, ``coordsystem.json``, ``eeg.json``); its binary ``.eeg``
file (IEEE float32, multiplexed, 0.1 uV resolution, as pybv writes it) is then replaced by the
long recording written 60 s at a time, and ``RecordingDuration`` in ``eeg.json`` is updated.
So the writer never holds more than one 60-s chunk (64 x 60,000 float64, 31 MB); the full-rate
recording would be 1.84 GB as float64 (0.92 GB on disk as float32). The signal is
"1/f-ish" noise per channel: a first-order autoregressive process (pole 0.995, a random walk
above ~0.8 Hz), plus white noise and a 10 Hz alpha rhythm, RMS about 20 uV; the filter state is
carried from chunk to chunk, so the recording has no seams.

With ``--mr-artifacts`` the recording is EEG as recorded in the scanner (issue 14; default
then 30 min x 64 channels x 5 kHz, 4.6 GB as float64): the same EEG plus a gradient artefact
that repeats every volume (TR 2 s from 5 s after the start to 5 s before the end; harmonics
of a 17.5-Hz slice rate up to 2 kHz, amplitudes 1/sqrt(k), random phases per channel, RMS
100x the EEG's), a pulse artefact after each heartbeat (about 65 beats per minute) and an
``ECG`` channel (type ECG) with R-peaks and its own gradient artefact; the volume markers
(``Volume``) go into ``events.tsv``. The package path then runs the whole stage as
``prepare_run`` does with ``--mr-artifacts auto``: detection, gradient removal (AAS) and pulse
removal (PCA-OBS) streamed by channel groups with the band-pass and resampling; the naive
reference is skipped (its float64 copies would need about 15 GB).

Run: ``python benchmarks/bench_memory.py --templates-dir ../shared/data/templates``
(about 3 minutes on 2 cores; the recording is cached in ``--out-dir`` and reused), or with
``--mr-artifacts`` (about 30 minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: Units of one float32 value in the ``.eeg`` file that MNE-BIDS/pybv write (0.1 uV), in V.
_RESOLUTION_V = 1e-7
#: Seconds of recording generated and written at a time.
_CHUNK_S = 60.0
#: In-scanner recordings: TR, slice rate, and the EEG's RMS the artefacts are scaled to.
_TR_S = 2.0
_SLICE_RATE_HZ = 17.5
_EEG_RMS_V = 20e-6


# --------------------------------------------------------------------------------------------
# Writing the recording


def _scanner_artefacts(n_channels, sfreq_hz, n_times, rng):
    """What the scanner adds: per-channel volume waveforms, the volume onsets, R-peaks.

    Returns
    -------
    wave : ndarray, shape (n_channels + 1, spacing)
        The gradient artefact of one volume per EEG channel and the ECG channel, V.
    first, n_volumes, spacing : int
        First volume sample, volumes, samples per volume (TR 2 s).
    r_peaks : ndarray of int
        R-peak samples.
    """
    spacing = int(round(_TR_S * sfreq_hz))
    first = int(round(5.0 * sfreq_hz))
    n_volumes = (n_times - 2 * first) // spacing
    t = np.arange(spacing) / sfreq_hz
    ks = np.arange(1, int(min(2000.0, 0.4 * sfreq_hz) / _SLICE_RATE_HZ) + 1)
    wave = np.zeros((n_channels + 1, spacing))
    for k in ks:
        phase = rng.uniform(0, 2 * np.pi, (n_channels + 1, 1))
        wave += np.sin(2 * np.pi * _SLICE_RATE_HZ * k * t + phase) / np.sqrt(k)
    wave *= (100 * _EEG_RMS_V / wave.std(axis=1, keepdims=True)
             * rng.uniform(0.5, 1.5, (n_channels + 1, 1)))
    beats = np.cumsum(60.0 / rng.normal(65.0, 3.0, int(n_times / sfreq_hz) + 10))
    r_peaks = np.round(beats * sfreq_hz).astype(np.int64)
    return wave, first, n_volumes, spacing, r_peaks[r_peaks < n_times]


def _add_scanner(chunk, start, sfreq_hz, artefacts, bcg_gain):
    """Add the gradient, pulse and ECG signals to one chunk (EEG rows, then the ECG row)."""
    wave, first, n_volumes, spacing, r_peaks = artefacts
    n = chunk.shape[1]
    samples = start + np.arange(n)
    inside = (samples >= first) & (samples < first + n_volumes * spacing)
    chunk[:, inside] += wave[:, (samples[inside] - first) % spacing]
    width = int(0.6 * sfreq_hz)
    bump = np.exp(-0.5 * ((np.arange(width) / sfreq_hz - 0.25) / 0.06) ** 2)
    spike = np.exp(-0.5 * ((np.arange(width) / sfreq_hz - 0.05) / 0.008) ** 2)
    for peak in r_peaks[(r_peaks > start - width) & (r_peaks < start + n)]:
        lo, hi = max(peak, start), min(peak + width, start + n)
        chunk[:-1, lo - start:hi - start] += bcg_gain * bump[lo - peak:hi - peak]
        chunk[-1, lo - start:hi - start] += 1e-3 * spike[lo - peak:hi - peak]


def _write_volume_events(bids_path, artefacts, sfreq_hz):
    """The volume markers as ``events.tsv`` rows (read by MNE-BIDS as annotations)."""
    _, first, n_volumes, spacing, _ = artefacts
    samples = first + spacing * np.arange(n_volumes)
    rows = ["onset\tduration\ttrial_type\tvalue\tsample"]
    rows += [f"{s / sfreq_hz:.6f}\t0.0\tVolume\t1\t{s}" for s in samples]
    events = bids_path.copy().update(suffix="events", extension=".tsv").fpath
    events.write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_long_eeg(root, minutes: float, *, n_channels: int = 64, sfreq_hz: float = 1000.0,
                   seed: int = 0, mr_artifacts: bool = False) -> Path:
    """Write a long BIDS BrainVision EEG recording, 60 s at a time.

    Parameters
    ----------
    root : path-like
        Folder for the BIDS dataset (created; an existing recording there is overwritten).
    minutes : float
        Duration, minutes.
    n_channels : int
        EEG channels (10-05 positions of the ``fsaverage_1005`` montage).
    sfreq_hz : float
        Sampling rate, Hz.
    seed : int
        Random seed of the noise.
    mr_artifacts : bool
        Add the scanner's gradient and pulse artefacts and an ECG channel (module docstring).

    Returns
    -------
    pathlib.Path
        The ``.vhdr`` file, ``<root>/sub-01/eeg/sub-01_task-rest_eeg.vhdr``.

    Notes
    -----
    Peak memory is one chunk (``n_channels`` x 60 s float64), whatever the duration.
    """
    import mne
    import mne_bids
    from scipy.signal import lfilter

    from samba_bids.simulate import eeg_channel_names

    root = Path(root)
    names = eeg_channel_names(n_channels)
    kinds = ["eeg"] * n_channels + (["ecg"] if mr_artifacts else [])
    info = mne.create_info(names + (["ECG"] if mr_artifacts else []), sfreq_hz, kinds)
    info.set_montage(mne.channels.make_standard_montage("fsaverage_1005"), verbose=False)
    stub = mne.io.RawArray(np.zeros((len(kinds), int(sfreq_hz))), info, verbose=False)
    stub.set_meas_date(None)
    bids_path = mne_bids.BIDSPath(subject="01", task="rest", root=root, datatype="eeg")
    mne_bids.write_raw_bids(stub, bids_path, allow_preload=True, format="BrainVision",
                            overwrite=True, verbose=False)
    vhdr = bids_path.copy().update(suffix="eeg", extension=".vhdr").fpath
    header = vhdr.read_text(encoding="utf-8")
    if "BinaryFormat=IEEE_FLOAT_32" not in header or ",0.1,µV" not in header:
        raise RuntimeError(f"{vhdr}: unexpected BrainVision header written by MNE-BIDS/pybv")

    rng = np.random.default_rng(seed)
    n_times = int(round(minutes * 60.0 * sfreq_hz))
    step = int(_CHUNK_S * sfreq_hz)
    artefacts = _scanner_artefacts(n_channels, sfreq_hz, n_times, rng) if mr_artifacts else None
    bcg_gain = 3 * _EEG_RMS_V * rng.uniform(-1.0, 1.0, (n_channels, 1))
    pole = 0.995
    state = np.zeros((n_channels, 1))
    alpha_phase = rng.uniform(0, 2 * np.pi, (n_channels, 1))
    # scale: the AR(1) process has SD 1/sqrt(1 - pole^2) ~ 10 per unit white noise
    ar_scale = 15e-6 * np.sqrt(1 - pole**2)
    with open(vhdr.with_suffix(".eeg"), "wb") as fh:
        for start in range(0, n_times, step):
            n = min(step, n_times - start)
            slow, state = lfilter([1.0], [1.0, -pole], rng.standard_normal((n_channels, n)),
                                  axis=1, zi=state)
            t = (start + np.arange(n)) / sfreq_hz
            chunk = (ar_scale * slow + 5e-6 * rng.standard_normal((n_channels, n))
                     + 10e-6 * np.sin(2 * np.pi * 10.0 * t + alpha_phase))
            if artefacts is not None:
                chunk = np.vstack([chunk, 2e-5 * rng.standard_normal((1, n))])
                _add_scanner(chunk, start, sfreq_hz, artefacts, bcg_gain)
            # multiplexed: sample-major, channel-minor
            (chunk / _RESOLUTION_V).astype("<f4").T.tofile(fh)
    sidecar = bids_path.copy().update(suffix="eeg", extension=".json").fpath
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    meta["RecordingDuration"] = (n_times - 1) / sfreq_hz
    sidecar.write_text(json.dumps(meta, indent=4), encoding="utf-8")
    if artefacts is not None:
        _write_volume_events(bids_path, artefacts, sfreq_hz)
    return vhdr


def cached_long_eeg(out_dir, minutes: float, *, n_channels: int = 64,
                    sfreq_hz: float = 1000.0, mr_artifacts: bool = False) -> Path:
    """:func:`write_long_eeg` into ``out_dir``, reused when it holds the same recording.

    Parameters
    ----------
    out_dir : path-like
        Folder of the BIDS dataset; ``recording.json`` there records what was written.
    minutes, n_channels, sfreq_hz, mr_artifacts
        As for :func:`write_long_eeg`.

    Returns
    -------
    pathlib.Path
        The ``.vhdr`` file.
    """
    out_dir = Path(out_dir)
    stamp = out_dir / "recording.json"
    key = {"minutes": minutes, "n_channels": n_channels, "sfreq_hz": sfreq_hz, "version": 1,
           **({"mr_artifacts": True} if mr_artifacts else {})}
    vhdr = out_dir / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr"
    if stamp.is_file() and vhdr.is_file() and json.loads(stamp.read_text()) == key:
        return vhdr
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    vhdr = write_long_eeg(out_dir, minutes, n_channels=n_channels, sfreq_hz=sfreq_hz,
                          mr_artifacts=mr_artifacts)
    stamp.write_text(json.dumps(key))
    return vhdr


# --------------------------------------------------------------------------------------------
# The stage (run in the child process)


def run_stage(vhdr, templates_dir, mode: str = "package", save=None) -> dict:
    """Run the electrophysiology stage of :func:`samba_bids.workflows.prepare_run`.

    Parameters
    ----------
    vhdr : path-like
        The recording.
    templates_dir : path-like
        Templates folder.
    mode : {'package', 'naive'}
        ``'package'``: the package's functions with prepare_run's arguments (default
        :class:`samba_bids.config.Config`). ``'naive'``: MNE's usual whole-recording path
        (preloaded read, ``raw.copy().pick``, ``filter``, ``resample``, average-reference
        projector), then the same source stage.
    save : path-like | None
        Write the parcel time courses here (``.npy``, float64) for comparison.

    Returns
    -------
    dict
        Shapes and seconds per step, JSON-serialisable.
    """
    from samba_bids.config import Config
    from samba_bids.ephys import (
        compute_source_parcels,
        detect_modality,
        plan_mr_artifacts,
        preprocess_raw,
        read_ephys,
    )
    from samba_bids.workflows.inputs import EPHYS_SUBJECT

    config = Config()
    seconds = {}
    t0 = time.perf_counter()
    if mode == "package":
        import mne

        raw = read_ephys(vhdr, modality=config.modality)
        modality = detect_modality(raw, config.modality)
        seconds["read"] = time.perf_counter() - t0
        removal = plan_mr_artifacts(  # as prepare_ephys (--mr-artifacts auto)
            raw, mode=config.mr_artifacts, trigger=config.volume_trigger,
            picks=mne.pick_types(raw.info, meg=False, eeg=True, exclude="bads"),
            band_hz=(config.l_freq_hz, config.h_freq_hz))
        seconds["mr_plan"] = time.perf_counter() - t0 - seconds["read"]
        raw = preprocess_raw(raw, modality=modality, l_freq_hz=config.l_freq_hz,
                             h_freq_hz=config.h_freq_hz, sfreq_hz=config.resample_sfreq_hz,
                             n_jobs=config.nprocs or 1, mr_artifacts=removal)
        mr = {"removed": list(removal.steps), "residual_db": removal.residual_db(),
              "heart_rate_bpm": removal.heart_rate_bpm}
    elif mode == "naive":
        import mne
        import mne_bids

        bids_path = mne_bids.get_bids_path_from_fname(vhdr, check=False, verbose=False)
        raw = mne_bids.read_raw_bids(bids_path, verbose=False)
        raw.load_data(verbose=False)
        modality = "eeg"
        seconds["read"] = time.perf_counter() - t0
        picks = mne.pick_types(raw.info, eeg=True, exclude="bads")
        pre = raw.copy().pick(picks)
        pre.filter(config.l_freq_hz, config.h_freq_hz, verbose=False)
        pre.resample(config.resample_sfreq_hz, verbose=False)
        pre.set_eeg_reference("average", projection=True, verbose=False)
        raw = pre
        mr = None
    else:
        raise ValueError(f"mode must be 'package' or 'naive', got {mode!r}")
    seconds["preprocess"] = time.perf_counter() - t0 - sum(seconds.values())
    t1 = time.perf_counter()
    parcels = compute_source_parcels(
        raw, templates_dir, modality=modality, subject=EPHYS_SUBJECT,
        n_parcels=config.ephys_atlas_scale, method=config.inverse_method, snr=config.snr,
        noise_cov=None, chunk_seconds=config.chunk_s, progress=False,
    )
    seconds["source"] = time.perf_counter() - t1
    if save is not None:
        np.save(save, parcels.data)
    return {"mode": mode, "parcels_shape": list(parcels.data.shape),
            "sfreq_hz": parcels.sfreq_hz, "seconds": seconds, "mr_artifacts": mr}


# --------------------------------------------------------------------------------------------
# Measuring a child


def _time_v_field(text: str, label: str) -> str:
    match = re.search(rf"^\s*{re.escape(label)}:\s*(.+)$", text, flags=re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/usr/bin/time -v printed no {label!r}:\n{text[-2000:]}")
    return match.group(1).strip()


def _wall_seconds(text: str) -> float:
    value = _time_v_field(text, "Elapsed (wall clock) time (h:mm:ss or m:ss)")
    seconds = 0.0
    for part in value.split(":"):
        seconds = 60.0 * seconds + float(part)
    return seconds


def measure_stage(vhdr, templates_dir, mode: str = "package", save=None) -> dict:
    """Run :func:`run_stage` in a child process under ``/usr/bin/time -v``.

    Parameters
    ----------
    vhdr : path-like
        The recording.
    templates_dir : path-like
        Templates folder.
    mode : {'package', 'naive'}
        See :func:`run_stage`.
    save : path-like | None
        See :func:`run_stage`.

    Returns
    -------
    dict
        ``peak_rss_mb`` (the child's "Maximum resident set size", MB = 10^6 bytes),
        ``wall_s`` (its elapsed wall-clock time, start-up and imports included) and the
        child's own result (``seconds`` per step, shapes).

    Raises
    ------
    RuntimeError
        If the child fails.
    """
    cmd = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), "--child",
           mode, str(vhdr), "--templates-dir", str(templates_dir)]
    if save is not None:
        cmd += ["--save", str(save)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = int(_time_v_field(proc.stderr, "Maximum resident set size (kbytes)")
                                ) * 1024 / 1e6
    result["wall_s"] = _wall_seconds(proc.stderr)
    return result


def main(argv=None):
    """Write (or reuse) the recording, measure both paths, print the figures; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates-dir", required=True)
    parser.add_argument("--minutes", type=float, default=None,
                        help="duration (default 60, with --mr-artifacts 30)")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--sfreq", type=float, default=None,
                        help="Hz (default 1000, with --mr-artifacts 5000)")
    parser.add_argument("--mr-artifacts", action="store_true",
                        help="EEG recorded in the scanner (gradient and pulse artefacts, ECG)")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/samba-bids-bench-memory"),
                        help="folder for the recording (reused when it matches)")
    parser.add_argument("--no-naive", action="store_true",
                        help="skip the naive reference (it needs about 3x the memory)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "VHDR"), help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        mode, vhdr = args.child
        print(json.dumps(run_stage(vhdr, args.templates_dir, mode, args.save)))
        return 0

    if args.minutes is None:
        args.minutes = 30.0 if args.mr_artifacts else 60.0
    if args.sfreq is None:
        args.sfreq = 5000.0 if args.mr_artifacts else 1000.0
    t0 = time.perf_counter()
    vhdr = cached_long_eeg(args.out_dir / f"{args.minutes:g}min-{args.channels}ch-"
                           f"{args.sfreq:g}Hz{'-scanner' if args.mr_artifacts else ''}",
                           args.minutes, n_channels=args.channels, sfreq_hz=args.sfreq,
                           mr_artifacts=args.mr_artifacts)
    n_times = int(round(args.minutes * 60 * args.sfreq))
    print(f"recording: {args.minutes:g} min x {args.channels} channels x {args.sfreq:g} Hz "
          f"({vhdr.with_suffix('.eeg').stat().st_size / 1e9:.2f} GB float32 on disk; one "
          f"float64 copy {args.channels * n_times * 8 / 1e9:.2f} GB), ready after "
          f"{time.perf_counter() - t0:.0f} s: {vhdr}")
    modes = ["package"] + ([] if args.no_naive or args.mr_artifacts else ["naive"])
    results = {}
    for mode in modes:
        res = measure_stage(vhdr, args.templates_dir, mode, save=vhdr.parents[2] /
                            f"parcels-{mode}.npy")
        results[mode] = res
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in res["seconds"].items())
        print(f"{mode:8s} peak RSS {res['peak_rss_mb']:8.0f} MB   wall {res['wall_s']:6.1f} s   "
              f"({steps}; parcels {res['parcels_shape']} at {res['sfreq_hz']:g} Hz)")
        if res.get("mr_artifacts"):
            print(f"         MR artefacts removed: {res['mr_artifacts']}")
    if "naive" in results:
        ours, ref = results["package"], results["naive"]
        print(f"ratio (naive / package): peak RSS {ref['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x,"
              f" wall {ref['wall_s'] / ours['wall_s']:.2f}x")
        a = np.load(vhdr.parents[2] / "parcels-package.npy", mmap_mode="r")
        b = np.load(vhdr.parents[2] / "parcels-naive.npy", mmap_mode="r")
        diff = max(float(np.abs(a[i] - b[i]).max()) for i in range(len(b)))
        print(f"parcel time courses, package vs naive: max abs difference {diff:.3g} "
              f"(relative to max |naive| {diff / float(np.abs(b).max()):.3g})")
    bound = 4000.0
    verdict = "under" if results["package"]["peak_rss_mb"] < bound else "OVER"
    print(f"package peak RSS {results['package']['peak_rss_mb']:.0f} MB: {verdict} the "
          f"{bound:.0f} MB bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
