"""Per-parcel double-gamma hemodynamic response functions and causal convolution.

The HRF follows SPM's parametrisation (``spm_hrf.m``, Friston et al.): the difference of a
response gamma density and a scaled undershoot gamma density,

.. math::

    h(t) = g(t - o;\\, d_1 / s_1, s_1) - g(t - o;\\, d_2 / s_2, s_2) / r,

with :math:`g(x; a, s)` the gamma density of shape :math:`a` and scale :math:`s` (in s),
response delay :math:`d_1`, undershoot delay :math:`d_2`, dispersions :math:`s_1, s_2`,
response/undershoot ratio :math:`r` and onset :math:`o`. SPM's canonical HRF is
:math:`d_1 = 6, d_2 = 16, s_1 = s_2 = 1, r = 6, o = 0` over a 32 s support.

SAMBA (Afrasiyabi et al., arXiv 2409.18462) learns one HRF per region; here it is one per
*BOLD* parcel (neurovascular coupling belongs to the region whose blood flow is measured), its
six parameters are registered ``nn.Parameter`` s (the public code kept them in a Python list,
so they were never trained) and the convolution is causal (the public code applied the kernel
as a cross-correlation, time-reversed and looking into the future).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

#: The six HRF parameters: (name, SPM canonical value, lower bound, upper bound).
#: The bounds keep the HRF physiological while letting its timing vary by seconds across
#: regions and people (Handwerker et al. 2004, NeuroImage 21:1639): anywhere in the box the
#: time to peak lies between about 1.5 and 12.5 s, the positive peak is about 3 times the
#: undershoot's depth or more, and the kernel's area (sum of samples x TR, TR 0.5-3 s) is at
#: least 0.56 (checked on the box's corners and 5,000 random points). The onset may be slightly
#: negative to absorb the timing offset between an electrophysiology segment (volume onset to
#: onset + TR) and slice timing.
HRF_PARAMETERS = (
    ("response_delay_s", 6.0, 4.0, 10.0),
    ("undershoot_delay_s", 16.0, 12.0, 24.0),
    ("response_dispersion_s", 1.0, 0.5, 1.5),
    ("undershoot_dispersion_s", 1.0, 0.5, 2.0),
    ("response_undershoot_ratio", 6.0, 3.0, 20.0),
    ("onset_s", 0.0, -1.0, 3.0),
)
HRF_PARAMETER_NAMES = tuple(p[0] for p in HRF_PARAMETERS)
SPM_CANONICAL = tuple(p[1] for p in HRF_PARAMETERS)


def n_hrf_taps(tr_s: float, support_s: float = 32.0) -> int:
    """Number of kernel taps ``K + 1`` with ``K = ceil(support_s / tr_s)``.

    The same ``K`` is the split's ``history`` (``samba_bids.alignment.blocked_split``).
    """
    if tr_s <= 0 or support_s <= 0:
        raise ValueError(f"tr_s and support_s must be positive; got {tr_s} and {support_s}.")
    return int(math.ceil(support_s / tr_s - 1e-9)) + 1


def spm_canonical_hrf(t_s) -> np.ndarray:
    """SPM's canonical double-gamma HRF evaluated at times ``t_s``.

    Parameters
    ----------
    t_s : array_like
        Times after the neural event, in s. The HRF is 0 for ``t_s <= 0``.

    Returns
    -------
    ndarray, same shape as ``t_s``
        ``gamma.pdf(t, 6, scale=1) - gamma.pdf(t, 16, scale=1) / 6`` in 1/s (unnormalised:
        SPM divides its sampled kernel by the sum of the samples, as
        :meth:`ParcelHRF.kernel` does).

    Notes
    -----
    ``spm_hrf.m`` with ``p = [6 16 1 1 6 0 32]``: peak delay 6 s, undershoot delay 16 s,
    dispersions 1, ratio 6, onset 0. Its maximum lies at about 4.99 s.
    """
    t = np.asarray(t_s, dtype=float)
    return stats.gamma.pdf(t, 6.0, scale=1.0) - stats.gamma.pdf(t, 16.0, scale=1.0) / 6.0


def canonical_kernel(tr_s: float, support_s: float = 32.0) -> np.ndarray:
    """SPM's canonical HRF sampled at ``k * tr_s``, ``k = 0..K``, normalised to unit sum.

    The one canonical kernel of the package: the ridge baseline's regressors and the
    functional graphs' canonical-HRF regressors both use it.

    Parameters
    ----------
    tr_s : float
        Repetition time, in s.
    support_s : float
        HRF support, in s; ``K = ceil(support_s / tr_s)``.

    Returns
    -------
    ndarray, shape (K + 1,)
    """
    kernel = spm_canonical_hrf(np.arange(n_hrf_taps(tr_s, support_s)) * float(tr_s))
    return kernel / kernel.sum()


def _gamma_pdf(x, shape, scale):
    """Gamma density in torch, 0 for x <= 0, finite gradients everywhere."""
    positive = x > 0
    x_safe = torch.where(positive, x, torch.ones_like(x))
    log_pdf = ((shape - 1) * torch.log(x_safe) - x_safe / scale - torch.lgamma(shape)
               - shape * torch.log(scale))
    return torch.where(positive, torch.exp(log_pdf), torch.zeros_like(x))


def double_gamma(t_s: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """SPM double-gamma HRF, differentiable in its parameters.

    Parameters
    ----------
    t_s : Tensor, shape (T,)
        Times after the neural event, in s.
    params : Tensor, shape (..., 6)
        Response delay (s), undershoot delay (s), response dispersion (s), undershoot
        dispersion (s), response/undershoot ratio, onset (s): :data:`HRF_PARAMETER_NAMES`.

    Returns
    -------
    Tensor, shape (..., T)
        HRF values in 1/s (unnormalised).
    """
    if params.shape[-1] != 6:
        raise ValueError(f"params must end with the 6 HRF parameters; got shape {params.shape}.")
    p = params.unsqueeze(-2)  # (..., 1, 6): broadcast over time
    delay1, delay2, disp1, disp2, ratio, onset = (p[..., i] for i in range(6))
    x = t_s.to(params) - onset
    return (_gamma_pdf(x, delay1 / disp1, disp1)
            - _gamma_pdf(x, delay2 / disp2, disp2) / ratio)


def causal_fft_convolve(drive: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal convolution of each parcel's drive with its own kernel, by FFT.

    ``out[b, m, t] = sum_{k=0..K} kernel[m, k] * drive[b, m, t - k]`` with ``drive`` zero
    before ``t = 0``: the output at ``t`` depends only on the drive at times ``<= t`` (a true
    convolution, not the cross-correlation of ``torch.nn.functional.conv1d``).

    Parameters
    ----------
    drive : Tensor, shape (B, M, L)
        Neural drive per parcel and TR segment.
    kernel : Tensor, shape (M, K + 1)
        Per-parcel kernel sampled at ``k * TR``, ``k = 0..K``.

    Returns
    -------
    Tensor, shape (B, M, L)

    Raises
    ------
    ValueError
        If the parcel counts differ.

    Notes
    -----
    Both signals are zero-padded to ``n >= L + K`` before ``torch.fft.rfft``, so the circular
    convolution equals the linear one on the first ``L`` samples.
    """
    if drive.dim() != 3 or kernel.dim() != 2 or drive.shape[1] != kernel.shape[0]:
        raise ValueError(
            f"drive must be (B, M, L) and kernel (M, K + 1) with the same M; got "
            f"{tuple(drive.shape)} and {tuple(kernel.shape)}."
        )
    length = drive.shape[-1]
    n_fft = length + kernel.shape[-1] - 1
    n_fft = 1 << (n_fft - 1).bit_length()  # next power of two
    spectrum = torch.fft.rfft(drive, n=n_fft) * torch.fft.rfft(kernel.to(drive.dtype), n=n_fft)
    return torch.fft.irfft(spectrum, n=n_fft)[..., :length]


class ParcelHRF(nn.Module):
    """One learnable double-gamma HRF per BOLD parcel, bounded and initialised at SPM's.

    Each parameter ``p`` lives in ``[lo, hi]`` through ``p = lo + (hi - lo) * sigmoid(raw)``;
    ``raw`` (shape (M, 6), one registered ``nn.Parameter``) starts at the logit of the SPM
    canonical value, so the module starts exactly at the canonical HRF and no gradient step,
    however large, leaves the ranges in :data:`HRF_PARAMETERS`.

    Parameters
    ----------
    n_parcels : int
        Number of BOLD parcels M.
    support_s : float
        Length of the kernel, in s (32 s, as SPM).
    learnable : bool
        False freezes the HRFs at SPM's canonical (``raw.requires_grad`` is False, so no
        optimiser updates it and it is not counted as trainable): the "fixed HRF" ablation.
    """

    def __init__(self, n_parcels: int, support_s: float = 32.0, *, learnable: bool = True):
        super().__init__()
        if n_parcels < 1:
            raise ValueError(f"n_parcels must be positive; got {n_parcels}.")
        self.n_parcels = int(n_parcels)
        self.support_s = float(support_s)
        lower = torch.tensor([p[2] for p in HRF_PARAMETERS], dtype=torch.float64)
        upper = torch.tensor([p[3] for p in HRF_PARAMETERS], dtype=torch.float64)
        init = torch.tensor(SPM_CANONICAL, dtype=torch.float64)
        frac = (init - lower) / (upper - lower)
        raw = torch.log(frac) - torch.log1p(-frac)
        self.register_buffer("lower", lower.float())
        self.register_buffer("upper", upper.float())
        self.learnable = bool(learnable)
        self.raw = nn.Parameter(raw.float().repeat(self.n_parcels, 1),
                                requires_grad=self.learnable)

    def params(self) -> torch.Tensor:
        """The six bounded parameters per parcel, shape (M, 6), in :data:`HRF_PARAMETER_NAMES`
        order (s, except the ratio)."""
        return self.lower + (self.upper - self.lower) * torch.sigmoid(self.raw)

    def kernel(self, tr_s: float, n_taps: int | None = None) -> torch.Tensor:
        """Kernels sampled at ``k * TR``, normalised to unit sum (SPM's ``hrf / sum(hrf)``).

        With unit-sum kernels a sustained unit drive gives a unit steady-state response, so the
        HRF shape and the response amplitude (the parcel gain) stay separate. The sum is
        positive for every parameter value in range (the undershoot holds at most a third of
        the response's area).

        Parameters
        ----------
        tr_s : float
            Repetition time, in s.
        n_taps : int, optional
            ``K + 1`` taps; default ``ceil(support_s / tr_s) + 1``.

        Returns
        -------
        Tensor, shape (M, K + 1)
        """
        if n_taps is None:
            n_taps = n_hrf_taps(tr_s, self.support_s)
        t = torch.arange(n_taps, dtype=self.raw.dtype, device=self.raw.device) * float(tr_s)
        h = double_gamma(t, self.params())
        return h / h.sum(dim=-1, keepdim=True)

    @torch.no_grad()
    def time_to_peak(self, resolution_s: float = 0.01) -> np.ndarray:
        """Time of each parcel's HRF maximum, in s, on a grid of ``resolution_s`` over the
        support.

        Returns
        -------
        ndarray, shape (M,)
        """
        t = torch.arange(0.0, self.support_s, resolution_s, dtype=torch.float64,
                         device=self.raw.device)
        h = double_gamma(t, self.params().double())
        return t[h.argmax(dim=-1)].cpu().numpy()

    @torch.no_grad()
    def curves(self, t_s) -> np.ndarray:
        """Each parcel's HRF sampled at ``t_s``, scaled to a maximum of 1 (for figures).

        Parameters
        ----------
        t_s : array-like, shape (T,)
            Times after the neural event, in s.

        Returns
        -------
        ndarray, shape (M, T)
        """
        t = torch.as_tensor(np.asarray(t_s, dtype=np.float64), device=self.raw.device)
        h = double_gamma(t, self.params().double())
        return (h / h.abs().amax(dim=-1, keepdim=True)).cpu().numpy()

    @torch.no_grad()
    def parameters_frame(self, names) -> pd.DataFrame:
        """One row per BOLD parcel: ``parcel``, the six parameters and ``time_to_peak_s``.

        Parameters
        ----------
        names : sequence of str, length M
            Parcel names.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ValueError
            If ``len(names)`` is not M.
        """
        names = list(names)
        if len(names) != self.n_parcels:
            raise ValueError(f"{len(names)} parcel names given for {self.n_parcels} HRFs.")
        frame = pd.DataFrame(self.params().double().cpu().numpy(),
                             columns=list(HRF_PARAMETER_NAMES))
        frame.insert(0, "parcel", names)
        frame["time_to_peak_s"] = self.time_to_peak()
        return frame

    def extra_repr(self) -> str:
        return (f"n_parcels={self.n_parcels}, support_s={self.support_s:g}, "
                f"learnable={self.learnable}")
