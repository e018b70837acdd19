"""Wavelet band features of electrophysiology segments and attention over wavelet bands.

SAMBA (Afrasiyabi et al., arXiv 2409.18462) decomposes each source parcel's activity during a
TR with a multi-level discrete wavelet transform (Daubechies-5, 3 levels in the paper) and
weights the scales with an attention that depends on the input (scores per band, softmax over
bands). Here the decomposition runs once, with PyWavelets, vectorised over parcels and volumes;
the attention is a torch module.
"""

from __future__ import annotations

import logging

import numpy as np
import pywt
import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Names of the per-band features, in the order of the last axis of
#: :func:`wavelet_band_features`.
FEATURE_NAMES = ("log_mean_power", "log_mean_abs")


def band_names(level: int) -> list[str]:
    """Names of the ``level + 1`` bands in :func:`wavelet_band_features` order.

    ``["A3", "D3", "D2", "D1"]`` for ``level=3``: the approximation, then details from coarse
    (low frequency) to fine (high frequency), as ``pywt.wavedec`` returns them.
    """
    return [f"A{level}"] + [f"D{j}" for j in range(level, 0, -1)]


def band_ranges_hz(level: int, sfreq_hz: float) -> list[tuple[float, float]]:
    """Approximate frequency range of each band of :func:`band_names`, coarse (A) to fine (D1).

    Dyadic: detail ``Dj`` covers ``nyquist / 2**j`` to ``nyquist / 2**(j - 1)``, the
    approximation ``0`` to ``nyquist / 2**level`` (Mallat's filter bank; the real bands of a
    finite wavelet filter overlap at their edges).

    Parameters
    ----------
    level : int
        Decomposition levels.
    sfreq_hz : float
        Sampling rate of the decomposed series, Hz.

    Returns
    -------
    list of (float, float)
        ``level + 1`` (low, high) pairs in Hz.
    """
    nyquist = sfreq_hz / 2.0
    edges = [0.0] + [nyquist / 2 ** j for j in range(level, 0, -1)] + [nyquist]
    return list(zip(edges[:-1], edges[1:]))


def wavelet_band_features(segments, wavelet: str = "db5", level: int = 3) -> np.ndarray:
    """Log band power and log mean magnitude of each segment's wavelet bands.

    Parameters
    ----------
    segments : ndarray, shape (N, V, S)
        Source-parcel activity during each volume: N parcels, V volumes, S samples per TR.
    wavelet : str
        PyWavelets discrete wavelet name (``"db5"``, as SAMBA).
    level : int
        Decomposition levels; ``level + 1`` bands (approximation + ``level`` details). At
        100 Hz and 3 levels: A3 0-6.25 Hz, D3 6.25-12.5, D2 12.5-25, D1 25-50 Hz.

    Returns
    -------
    ndarray, shape (N, V, level + 1, 2), float64
        For each band (:func:`band_names` order), the features :data:`FEATURE_NAMES`:
        ``log(mean(c ** 2) + eps)`` and ``log(mean(|c|) + eps)`` over the band's coefficients
        ``c``. ``eps`` is ``1e-10`` times the mean power of all segments (plus the smallest
        positive float), so the features do not depend on the data's unit except for an additive
        constant, and all-zero (zero-filled) segments stay finite.

    Raises
    ------
    ValueError
        If ``segments`` is not 3-D, holds non-finite values, ``level < 1``, or the wavelet is
        unknown.

    Notes
    -----
    ``pywt.wavedec(segments, wavelet, level=level, axis=-1)`` (symmetric extension) runs on the
    whole array at once. If ``level`` exceeds ``pywt.dwt_max_level(S, wavelet)`` the coarse
    bands are dominated by boundary effects; a warning is logged.
    """
    segments = np.asarray(segments, dtype=float)
    if segments.ndim != 3:
        raise ValueError(f"segments must be (parcels, volumes, samples); got {segments.shape}.")
    if level < 1:
        raise ValueError(f"level must be at least 1; got {level}.")
    if not np.isfinite(segments).all():
        raise ValueError("segments hold NaN or infinite values; zero-fill missing samples.")
    try:
        wavelet_obj = pywt.Wavelet(wavelet)
    except ValueError as err:
        raise ValueError(f"unknown wavelet {wavelet!r}; see pywt.wavelist(kind='discrete').") \
            from err
    n_samples = segments.shape[-1]
    max_level = pywt.dwt_max_level(n_samples, wavelet_obj.dec_len)
    if level > max_level:
        logger.warning(
            "%d samples per TR allow at most %d useful %s levels; level %d is dominated by "
            "boundary effects. Lower wavelet_level or raise the sampling rate.",
            n_samples, max_level, wavelet, level,
        )
    coefficients = pywt.wavedec(segments, wavelet_obj, level=level, axis=-1)
    eps = 1e-10 * float(np.mean(segments**2)) + np.finfo(float).tiny
    out = np.empty(segments.shape[:2] + (level + 1, len(FEATURE_NAMES)))
    for band, c in enumerate(coefficients):  # level + 1 bands, each vectorised over (N, V)
        out[:, :, band, 0] = np.log(np.mean(c**2, axis=-1) + eps)
        out[:, :, band, 1] = np.log(np.mean(np.abs(c), axis=-1) + np.sqrt(eps))
    return out


def broadband_log_power(features) -> np.ndarray:
    """Log broadband power per parcel and volume from :func:`wavelet_band_features` output.

    Parameters
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)

    Returns
    -------
    ndarray, shape (N, V)
        ``log(mean over bands of exp(log_mean_power))``: the log of the bands' mean
        coefficient power, averaged over bands.
    """
    features = np.asarray(features, dtype=float)
    log_power = features[..., 0]
    peak = log_power.max(axis=-1, keepdims=True)
    return (peak[..., 0] + np.log(np.mean(np.exp(log_power - peak), axis=-1)))


class WaveletAttention(nn.Module):
    """Input-dependent attention over wavelet bands, per parcel and TR segment.

    Each band ``b`` has its own embedding ``e_b = tanh(x_b W_b + c_b)`` (``W_b``: n_features x
    hidden). A score ``s_b = q . e_b + d_b`` (shared query ``q``, band bias ``d_b``) is computed
    from the input, ``alpha = softmax_b(s)``, and the output is ``sum_b alpha_b e_b`` plus a
    learned per-parcel embedding (so later stages know which parcel a feature comes from).

    With ``input_dependent=False`` (the "no wavelet attention" ablation) the same embeddings are
    averaged with uniform weights ``alpha_b = 1 / n_bands``; the query and score biases are not
    created.

    Parameters
    ----------
    n_parcels : int
        Source parcels N (for the parcel embedding).
    n_bands : int
        Wavelet bands (``level + 1``).
    n_features : int
        Features per band.
    hidden_size : int
        Output size.
    input_dependent : bool
        True: softmax over input-dependent band scores (SAMBA). False: uniform average.

    Attributes
    ----------
    last_attention : Tensor, shape (B, N, L, n_bands) or None
        Attention weights of the last forward pass (detached), for reports.
    """

    def __init__(self, n_parcels: int, n_bands: int, n_features: int, hidden_size: int, *,
                 input_dependent: bool = True):
        super().__init__()
        self.n_bands = int(n_bands)
        self.n_features = int(n_features)
        self.input_dependent = bool(input_dependent)
        bound = 1.0 / np.sqrt(n_features)
        self.band_weight = nn.Parameter(
            torch.empty(n_bands, n_features, hidden_size).uniform_(-bound, bound))
        self.band_bias = nn.Parameter(torch.zeros(n_bands, hidden_size))
        if self.input_dependent:
            self.query = nn.Parameter(torch.empty(hidden_size).uniform_(-0.5, 0.5))
            self.score_bias = nn.Parameter(torch.zeros(n_bands))
        self.parcel_embedding = nn.Parameter(0.1 * torch.randn(n_parcels, hidden_size))
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over bands.

        Parameters
        ----------
        x : Tensor, shape (B, N, L, n_bands, n_features)
            Standardised band features.

        Returns
        -------
        Tensor, shape (B, N, L, hidden)
        """
        if x.dim() != 5 or x.shape[-2:] != (self.n_bands, self.n_features):
            raise ValueError(
                f"expected (B, N, L, {self.n_bands}, {self.n_features}); got {tuple(x.shape)}.")
        embedded = torch.tanh(torch.einsum("bnlkf,kfh->bnlkh", x, self.band_weight)
                              + self.band_bias)
        if self.input_dependent:
            scores = embedded @ self.query + self.score_bias  # (B, N, L, n_bands)
            attention = torch.softmax(scores, dim=-1)
        else:
            attention = embedded.new_full(embedded.shape[:-1], 1.0 / self.n_bands)
        self.last_attention = attention.detach()
        out = (attention.unsqueeze(-1) * embedded).sum(dim=-2)
        return out + self.parcel_embedding[:, None, :]

    def extra_repr(self) -> str:
        return (f"n_bands={self.n_bands}, n_features={self.n_features}, "
                f"input_dependent={self.input_dependent}")
