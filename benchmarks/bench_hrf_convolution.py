"""HRF convolution: one batched causal FFT convolution against a per-parcel ``conv1d`` loop.

400 parcels, 10 minutes on a 100 Hz grid (60,000 samples), a 32-s HRF (3,200 taps) per parcel.
The loop is the public SAMBA code's pattern (one ``conv1d`` per parcel), written here as a true
causal convolution (kernel flipped, left padding) so both give the same numbers.

Run: ``python benchmarks/bench_hrf_convolution.py``
"""

import argparse
import time

import torch
import torch.nn.functional as F

from samba_bids.model.hrf import ParcelHRF, causal_fft_convolve


def per_parcel_loop(drive, kernel):
    """(B, M, L) drive, (M, K) kernel -> (B, M, L), one conv1d call per parcel."""
    taps = kernel.shape[1]
    out = []
    for parcel in range(kernel.shape[0]):
        x = F.pad(drive[:, parcel:parcel + 1], (taps - 1, 0))
        out.append(F.conv1d(x, kernel[parcel].flip(-1).view(1, 1, -1)))
    return torch.cat(out, dim=1)


def best_of(func, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return result, min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=400)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="grid rate, Hz")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    dt = 1.0 / args.rate
    length = int(args.minutes * 60 * args.rate)
    hrf = ParcelHRF(args.parcels)
    with torch.no_grad():
        kernel = hrf.kernel(dt)  # (M, K+1) sampled every dt seconds over 32 s
        drive = torch.randn(1, args.parcels, length)
        fast, fast_s = best_of(lambda: causal_fft_convolve(drive, kernel), args.repeats)
        slow, slow_s = best_of(lambda: per_parcel_loop(drive, kernel), args.repeats)
    err = (fast - slow).abs().max() / slow.abs().max()
    print(f"{args.parcels} parcels x {length} samples, {kernel.shape[1]} taps, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"batched causal FFT : {fast_s:8.3f} s")
    print(f"conv1d per parcel  : {slow_s:8.3f} s")
    print(f"speed-up {slow_s / fast_s:.1f}x, max relative difference {float(err):.1e}")


if __name__ == "__main__":
    main()
