"""Quality-control figure of the MR artefact removal (EEG recorded in the scanner).

One figure per run: the spectrum before and after the gradient removal, with the harmonics of
the slice rate marked, and the average volume epoch of the channel with the largest artefact
before and after. Its numbers come from :class:`samba_bids.ephys.artifacts.ArtifactQC`.
"""

from __future__ import annotations

import numpy as np

from .figures import _new_figure


def mr_artifact_figure(removal):
    """Spectrum and average artefact epoch before and after the gradient removal.

    Parameters
    ----------
    removal : samba_bids.ephys.artifacts.MRArtifactRemoval
        With its quality control filled in (``removal.qc``: per-channel Welch spectra over
        the middle 60 s of the scan, V^2/Hz up to 250 Hz; the average volume epoch of one
        channel, V).

    Returns
    -------
    matplotlib.figure.Figure
        Left: the median spectrum over channels before and after, log power against Hz,
        dotted lines at the multiples of the slice rate. Right: the average volume epoch of
        the channel with the largest artefact, in uV against s.

    Raises
    ------
    ValueError
        If no channel group was corrected (no quality control to show).
    """
    qc = removal.qc
    if qc.freqs is None or not qc.psd_before:
        raise ValueError("no quality control: the gradient artefact was not removed.")
    names = list(qc.psd_before)
    before = np.median(np.stack([qc.psd_before[n] for n in names]), axis=0)
    after = np.median(np.stack([qc.psd_after[n] for n in names]), axis=0)
    fig = _new_figure(9, 3.4)
    spectrum, epoch = fig.subplots(1, 2, width_ratios=(1.4, 1))
    keep = qc.freqs > 0
    spectrum.semilogy(qc.freqs[keep], before[keep], color="#c44e52", lw=0.8, label="before")
    spectrum.semilogy(qc.freqs[keep], after[keep], color="#4c72b0", lw=0.8, label="after")
    rate = removal.detection.slice_rate_hz if removal.detection is not None else None
    if rate:
        for k, f in enumerate(np.arange(rate, qc.freqs[-1], rate)):
            spectrum.axvline(f, color="0.5", ls=":", lw=0.7,
                             label=f"slice rate {rate:g} Hz x k" if k == 0 else None)
    residual = removal.residual_db()["SliceHarmonics"]
    spectrum.set(xlabel="frequency (Hz)", ylabel="power (V²/Hz)",
                 title=f"median over {len(names)} channels; harmonics {residual:+.1f} dB")
    spectrum.legend(fontsize=8, loc="upper right")
    if qc.epoch_before is not None:
        t = np.arange(len(qc.epoch_before)) / removal.sfreq_hz
        epoch.plot(t, 1e6 * qc.epoch_before, color="#c44e52", lw=0.6, label="before")
        epoch.plot(t, 1e6 * qc.epoch_after, color="#4c72b0", lw=0.6, label="after")
        epoch.set(xlabel="time from the volume marker (s)", ylabel="µV",
                  title=f"average volume epoch, {qc.epoch_channel}")
        epoch.legend(fontsize=8, loc="upper right")
    return fig
