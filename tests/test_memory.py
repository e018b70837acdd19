"""Bounded memory of the electrophysiology stage (issue 5, item 6).

* Equality: the channel-group (streamed) preprocessing of a recording that is not preloaded
  equals MNE's whole-recording path on the real ds-real-rest EEG and the MNE sample MEG, every
  sample (edges included) and the info, annotations and projector.
* Memory (``slow``): the stage that :func:`samba_bids.workflows.prepare_run` runs (read,
  preprocess, template source parcels) on 5- and 10-minute 64-channel 1 kHz EEG recordings, each
  in a child process; its peak RSS (``ru_maxrss`` of that child from ``os.wait4``) may grow by
  little between the two, and its linear extrapolation to 60 minutes stays under 4 GB.
  ``benchmarks/bench_memory.py`` measures the 60-minute case itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest

from samba_bids.ephys import preprocess_raw, read_ephys
from samba_bids.errors import UsageError

EEG_REL = "sub-01/eeg/sub-01_task-rest_eeg.vhdr"
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_memory.py"


def _mne_whole(raw, modality, l_freq=0.5, h_freq=45.0, sfreq=100.0):
    """The reference: MNE's usual path on the whole preloaded recording (the code before the
    stage was chunked)."""
    raw = raw.copy().load_data(verbose=False)
    picks = (mne.pick_types(raw.info, meg=True, ref_meg=False, exclude="bads")
             if modality == "meg" else mne.pick_types(raw.info, eeg=True, exclude="bads"))
    out = raw.pick(picks)
    out.filter(l_freq, h_freq, verbose=False)
    out.resample(sfreq, verbose=False)
    if modality == "eeg":
        out.set_eeg_reference("average", projection=True, verbose=False)
    return out


def _assert_same(ours, reference, rtol=1e-12):
    assert ours.ch_names == reference.ch_names
    assert ours.n_times == reference.n_times and ours.first_samp == reference.first_samp
    assert mne.utils.object_diff(ours.info, reference.info) == ""
    assert ours.annotations == reference.annotations
    a, b = ours.get_data(), reference.get_data()
    # every sample, the first and last included (they use the filter's edge padding)
    assert np.abs(a - b).max() <= rtol * np.abs(b).max()
    np.testing.assert_allclose(a[:, :5], b[:, :5], rtol=0, atol=rtol * np.abs(b).max())
    np.testing.assert_allclose(a[:, -5:], b[:, -5:], rtol=0, atol=rtol * np.abs(b).max())


@pytest.fixture(scope="module")
def eeg_file(real_rest):
    return real_rest / EEG_REL


def test_read_ephys_is_lazy_unless_asked(eeg_file):
    lazy = read_ephys(eeg_file)
    assert not lazy.preload
    full = read_ephys(eeg_file, preload=True)
    assert full.preload
    np.testing.assert_array_equal(lazy.get_data(), full.get_data())


@pytest.mark.parametrize("max_load_mb", [0.7, 2.0, 256.0])  # 10 groups (last short), 4, 1
def test_grouped_preprocessing_equals_whole_recording_eeg(eeg_file, max_load_mb):
    """Real EEG (30 EEG + 2 EOG at 128 Hz, 238 s): groups of channels read from the file,
    filtered and resampled alone, equal MNE on the whole preloaded recording."""
    lazy = read_ephys(eeg_file)
    ours = preprocess_raw(lazy, modality="eeg", max_load_mb=max_load_mb)
    _assert_same(ours, _mne_whole(lazy, "eeg"))
    assert not lazy.preload  # the input is untouched (still not loaded)
    # the package's own preloaded path (one group) is the same too
    _assert_same(preprocess_raw(read_ephys(eeg_file, preload=True), modality="eeg"), ours)


def test_grouped_preprocessing_cropped_with_bad_channel(eeg_file):
    """A lazily cropped recording (first sample not 0) with a bad channel, other band edges."""
    lazy = read_ephys(eeg_file).crop(10.0, 200.0)
    lazy.info["bads"] = ["Cz"]
    kwargs = dict(l_freq_hz=1.0, h_freq_hz=30.0, sfreq_hz=80.0)
    ours = preprocess_raw(lazy, modality="eeg", max_load_mb=0.5, **kwargs)
    assert "Cz" not in ours.ch_names and ours.first_samp > 0
    _assert_same(ours, _mne_whole(lazy, "eeg", 1.0, 30.0, 80.0))


def test_grouped_preprocessing_equals_whole_recording_meg(shared_data):
    """MNE's sample MEG (Maxwell-filtered FIF, 306 MEG channels, 301 samples): the MEG picks
    in groups of ~40 channels. Low-pass only: a 0.5 Hz high-pass is longer than the file."""
    lazy = mne.io.read_raw_fif(shared_data / "recordings/meg/sample_audvis_trunc_raw_sss.fif",
                               verbose=False)
    ours = preprocess_raw(lazy, modality="meg", l_freq_hz=None, max_load_mb=0.1)
    assert ours.info["proc_history"]  # SSS history kept once (MNE's rank estimation reads it)
    _assert_same(ours, _mne_whole(lazy, "meg", l_freq=None))


def test_max_load_mb_must_be_positive(eeg_file):
    with pytest.raises(UsageError, match="max_load_mb"):
        preprocess_raw(read_ephys(eeg_file), modality="eeg", max_load_mb=0)


# ----------------------------------------------------------------------------- peak memory


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child_peak_mb(vhdr, templates_dir, log):
    """Run the stage in a child; its own peak RSS in MB (10^6 bytes) and its JSON result."""
    cmd = [sys.executable, str(BENCH), "--child", "package", str(vhdr),
           "--templates-dir", str(templates_dir)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage alone
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = Path(log).read_text()
    assert proc.returncode == 0, text[-3000:]
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB on Linux
    return usage.ru_maxrss * scale / 1e6, json.loads(text.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 (POSIX)")
def test_stage_peak_memory_is_bounded(templates_dir, tmp_path):
    """5 and 10 minutes of 64-channel EEG at 1 kHz through read -> preprocess -> source
    parcels (prepare_run's arguments). One float64 copy of 5 minutes is 154 MB; the naive
    whole-recording path holds about three (measured: +490 MB per 5 minutes, 5.75 GB at 60 min).
    """
    bench = _bench_module()
    peaks = {}
    for minutes in (5, 10):
        vhdr = bench.write_long_eeg(tmp_path / f"{minutes}min", minutes)
        peaks[minutes], result = _child_peak_mb(vhdr, templates_dir, tmp_path / f"{minutes}.log")
        assert result["parcels_shape"] == [100, minutes * 60 * 100]
    growth = peaks[10] - peaks[5]
    at_60_min = peaks[10] + (60 - 10) / 5 * max(growth, 0.0)
    print(f"peak RSS: 5 min {peaks[5]:.0f} MB, 10 min {peaks[10]:.0f} MB; "
          f"extrapolated to 60 min {at_60_min:.0f} MB")
    assert growth < 150.0, peaks
    assert at_60_min < 4000.0, peaks
