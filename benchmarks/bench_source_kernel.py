"""Source to parcels: the composed parcel kernel against MNE's own path.

Simulated 64-channel EEG (biosemi64 positions) on the fsaverage5 template (20,484 sources,
sphere head model), Schaefer-100 parcels, dSPM with normal orientation. MNE's path,
``apply_inverse_raw`` + ``extract_label_time_course(mode="mean_flip")``, is run in 60-s chunks
(``start``/``stop``): unchunked it would hold n_sources x n_times float64, which for 10 minutes at
250 Hz is 24.6 GB, more than this machine has. Time with ``time.perf_counter``; peak memory of
each path with ``tracemalloc`` (NumPy reports its buffers to it).

Run: ``python benchmarks/bench_source_kernel.py --templates-dir ../shared/data/templates``
"""

import argparse
import time
import tracemalloc

import mne
import numpy as np
from mne.minimum_norm import apply_inverse_raw

from samba_bids.ephys.source import (
    make_inverse,
    make_parcel_kernel,
    make_template_forward,
    parcel_time_courses,
    template_labels,
)


def simulated_eeg(duration_s, sfreq_hz, seed=0):
    """64-channel EEG RawArray of random-walk-plus-white noise, average reference projector."""
    montage = mne.channels.make_standard_montage("biosemi64")
    rng = np.random.default_rng(seed)
    n_times = int(duration_s * sfreq_hz)
    data = rng.standard_normal((64, n_times)).cumsum(axis=1)
    data -= data.mean(axis=1, keepdims=True)
    data = 1e-6 * (data / data.std(axis=1, keepdims=True) + rng.standard_normal(data.shape))
    raw = mne.io.RawArray(data, mne.create_info(montage.ch_names, sfreq_hz, "eeg"),
                          verbose=False)
    raw.set_montage(montage)
    raw.set_eeg_reference("average", projection=True, verbose=False)
    return raw


def measure(func):
    """Run ``func`` once; return (result, seconds, peak traced MB)."""
    tracemalloc.start()
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates-dir", required=True)
    parser.add_argument("--duration", type=float, default=600.0, help="s (default 600)")
    parser.add_argument("--sfreq", type=float, default=250.0, help="Hz (default 250)")
    parser.add_argument("--chunk", type=float, default=60.0, help="MNE path chunk, s")
    args = parser.parse_args(argv)
    mne.set_log_level("ERROR")

    raw = simulated_eeg(args.duration, args.sfreq)
    fwd, _ = make_template_forward(raw.info, args.templates_dir, subject="fsaverage5",
                                   modality="eeg")
    inverse, _ = make_inverse(raw.info, fwd, method="dSPM")
    labels = template_labels(args.templates_dir, "fsaverage5", 100)
    lambda2 = 1.0 / 9.0

    def composed():
        kernel = make_parcel_kernel(inverse, raw.info, labels, method="dSPM", lambda2=lambda2)
        return parcel_time_courses(raw, kernel, chunk_seconds=args.chunk)

    def mne_path():
        step = int(args.chunk * args.sfreq)
        parts = []
        for start in range(0, raw.n_times, step):
            stc = apply_inverse_raw(raw, inverse, lambda2, method="dSPM", pick_ori="normal",
                                    start=start, stop=min(start + step, raw.n_times))
            parts.append(mne.extract_label_time_course(stc, labels, inverse["src"],
                                                       mode="mean_flip"))
            del stc
        return np.concatenate(parts, axis=1)

    fast, fast_s, fast_mb = measure(composed)
    slow, slow_s, slow_mb = measure(mne_path)
    rel = np.abs(fast - slow).max() / np.abs(slow).max()
    n_sources = sum(len(s["vertno"]) for s in inverse["src"])
    print(f"EEG: 64 channels, {args.duration:g} s at {args.sfreq:g} Hz; {n_sources} sources, "
          f"{len(labels)} parcels, dSPM normal orientation")
    print(f"composed parcel kernel : {fast_s:8.2f} s, peak {fast_mb:8.0f} MB (traced)")
    print(f"MNE path ({args.chunk:g}-s chunks): {slow_s:8.2f} s, peak {slow_mb:8.0f} MB (traced)")
    print(f"MNE path unchunked would hold {n_sources * raw.n_times * 8 / 1e9:.1f} GB of sources")
    print(f"speed-up {slow_s / fast_s:.1f}x, memory ratio {slow_mb / fast_mb:.1f}x, "
          f"max relative difference {rel:.1e}")


if __name__ == "__main__":
    main()
