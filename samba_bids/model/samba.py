"""SAMBA: electrophysiology -> fMRI BOLD translation (Afrasiyabi et al., arXiv 2409.18462).

Composition (all stages batched; no Python loop over samples, batch items or parcels)::

    band features (B, N, L, n_bands, n_feat)
      -> standardise (training statistics, stored as buffers)
      linear path:
      -> LinearPath              (B, M, L)              band power -> BOLD parcels, the ridge
      nonlinear (graph) path, added to it:
      -> WaveletAttention        (B, N, L, hidden)      attention over wavelet bands
      -> x + LSTM/GRU(x) over L  (B, N, L, hidden)      per source parcel, causal in time
      -> BipartiteGAT            (B, L, M, hidden)      N source -> M BOLD parcels, per TR
      -> ParcelGAT               (B, L, M, hidden)      BOLD parcel graph, residual
      -> per-parcel readout      (B, M, L)              zero at initialisation (residual)
      = neural drive per BOLD parcel and TR (linear + nonlinear)
      -> ParcelHRF, causal FFT   (B, M, L)              one learned HRF per BOLD parcel
      -> gain * bold + offset    (B, M, L)              per BOLD parcel

The RNN sits in a residual branch (then layer norm): the current segment reaches the graph
layers directly, so the RNN adds temporal context without having to learn to pass the present
through. Without it the RNN's initial smoothing delays the drive and the HRFs learn to peak
early to compensate (a latency trade-off the data cannot resolve).

The standard model of EEG-informed fMRI is inside (DESIGN.md, "The SAMBA model", point 8):
the :class:`LinearPath` maps the standardised log band power of each BOLD parcel's source
parcels (its neighbours in the bipartite graph; all of them without the graph) to its drive,
and the HRF convolution after it makes it the canonical-HRF band-power ridge
(:class:`~.baselines.RidgeBaseline`) when the HRFs are canonical. :meth:`SAMBA.init_linear_path`
sets it to the closed-form ridge fit restricted to the graph (penalty chosen on the validation
block), with the nonlinear path's readout at zero, so training starts from the ridge's
prediction exactly and the graph path learns a residual on top of it.
:func:`~samba_bids.training.fit_samba` keeps the linear weights fixed, learns the HRFs first,
then the residual, and keeps the start unless training beats it clearly on validation.

Every stage is causal in time (per-segment operations, a unidirectional RNN, a causal
convolution), so the prediction for volume ``v`` uses the electrophysiology at and before ``v``
only. Differences from the public code (SAMBA_NOTES.md): HRFs live on BOLD parcels and are
registered parameters; the convolution is causal; no observed BOLD is fed to the model;
dropout is off in ``eval()``.

Ablations (DESIGN.md, "Baselines"; constructor flags, saved in :attr:`SAMBA.hparams`):

* ``use_wavelet_attention=False``: uniform average of the band embeddings instead of the
  input-dependent softmax (:class:`~.wavelet.WaveletAttention` with ``input_dependent=False``);
* ``use_graph=False``: :class:`~.graph.DenseParcelMap` (a learned dense N -> M linear map per
  TR segment) instead of the bipartite GAT and the BOLD parcel GAT; no edges are needed;
* ``learn_hrf=False``: HRFs frozen at SPM's canonical (:class:`~.hrf.ParcelHRF` with
  ``learnable=False``);
* ``nonlinear_path=False``: the linear path only (the ridge with learned HRFs); no wavelet
  attention, RNN or graph modules;
* ``linear_path=False``: the nonlinear path only (SAMBA before the linear path existed;
  checkpoints written then load this way).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .graph import BipartiteGAT, DenseParcelMap, ParcelGAT
from .hrf import ParcelHRF, causal_fft_convolve
from .wavelet import WaveletAttention


def default_head_channels(hidden_size: int, heads: int) -> int:
    """Channels per attention head: ``max(2, hidden_size // (4 * heads))``.

    Per-edge tensors hold ``B * L * E * heads * head_channels`` values; with the real case
    (B 8, L 38, 200 BOLD parcels x ~12 edges) 8 values per edge keep a training step well
    under a second on two CPU cores. The heads are concatenated and projected back to
    ``hidden_size``.
    """
    return max(2, int(hidden_size) // (4 * int(heads)))


@torch.no_grad()
def store_standardization(mean_buffer, std_buffer, mean, std) -> None:
    """Copy a mean and SD into a model's buffers (same shapes); SDs below 1e-6 become 1.

    Raises
    ------
    ValueError
        If a shape differs from the buffers'.
    """
    mean = torch.as_tensor(mean, dtype=mean_buffer.dtype)
    std = torch.as_tensor(std, dtype=std_buffer.dtype)
    if mean.shape != mean_buffer.shape or std.shape != std_buffer.shape:
        raise ValueError(f"standardisation must have shape {tuple(mean_buffer.shape)}.")
    mean_buffer.copy_(mean)
    std_buffer.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))


class LinearPath(nn.Module):
    """The standard model's weights: standardised band power -> BOLD parcel drive, per TR.

    ``drive[b, m, t] = sum_{n, k} weight[m, n * n_bands + k] * z[b, n, t, k]`` with ``z`` the
    standardised log band power of source parcel ``n`` in band ``k`` (feature
    ``feature_index`` of :data:`~.wavelet.FEATURE_NAMES`). Followed by the per-parcel HRF and
    gain of :class:`SAMBA`, it is the canonical-HRF band-power ridge regression
    (:class:`~.baselines.RidgeBaseline`; Goldman et al. 2002, NeuroReport 13:2487) with
    learnable HRFs.

    Parameters
    ----------
    n_src, n_bands, n_bold : int
        Source parcels N, wavelet bands, BOLD parcels M.
    feature_index : int
        Which band feature is the band power (0: log mean coefficient power).
    edge_index : array_like of int, shape (2, E), optional
        Source parcel -> BOLD parcel edges (SAMBA's bipartite graph): each BOLD parcel is
        driven by the bands of its source parcels only. Default: every source parcel.

    Attributes
    ----------
    weight : Parameter, shape (M, N * n_bands)
        Source parcel major (``p = n * n_bands + k``), as the ridge's coefficients; entries
        outside ``mask`` are never used.
    mask : Tensor, shape (M, N * n_bands)
        Buffer: 1 where a BOLD parcel takes a source parcel's band, else 0.
    regressor_scale : Tensor, shape (N * n_bands,)
        Buffer: the training SD of each HRF-convolved regressor at the ridge fit, so that
        ``gain * weight * mask * regressor_scale`` are the ridge's coefficients on
        standardised regressors (the units its penalty is in); ones before
        :meth:`SAMBA.init_linear_path`.
    """

    def __init__(self, n_src: int, n_bands: int, n_bold: int, feature_index: int = 0,
                 edge_index=None):
        super().__init__()
        self.n_src, self.n_bands, self.n_bold = int(n_src), int(n_bands), int(n_bold)
        self.feature_index = int(feature_index)
        self.weight = nn.Parameter(torch.zeros(n_bold, n_src * n_bands))
        self.register_buffer("regressor_scale", torch.ones(n_src * n_bands))
        mask = torch.ones(n_bold, n_src, n_bands)
        if edge_index is not None:
            edges = torch.as_tensor(np.asarray(edge_index), dtype=torch.long)
            mask.zero_()
            mask[edges[1], edges[0]] = 1.0
        self.register_buffer("mask", mask.reshape(n_bold, n_src * n_bands))

    def n_weights(self) -> int:
        """Weights in use (inside the mask), fitted in closed form or trained."""
        return int(self.mask.sum())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Drive per BOLD parcel and TR segment.

        Parameters
        ----------
        z : Tensor, shape (B, N, L, n_bands, n_features)
            Standardised band features (masked segments already zero).

        Returns
        -------
        Tensor, shape (B, M, L)
        """
        power = z[..., self.feature_index]  # (B, N, L, n_bands)
        weight = (self.weight * self.mask).view(self.n_bold, self.n_src, self.n_bands)
        return torch.einsum("bnlk,mnk->bml", power, weight)


class SAMBA(nn.Module):
    """Electrophysiology-to-BOLD translator.

    Parameters
    ----------
    n_src : int
        Source (electrophysiology) parcels N.
    n_bold : int
        BOLD parcels M.
    n_bands : int
        Wavelet bands (``wavelet_level + 1``).
    n_features : int
        Features per band.
    bipartite_edge_index : array_like of int, shape (2, E1), or None
        Source -> BOLD edges (:func:`~.graph.build_graphs`); ignored (may be None) when
        ``use_graph`` is False.
    bold_edge_index : array_like of int, shape (2, E2), or None
        BOLD -> BOLD edges; ignored (may be None) when ``use_graph`` is False.
    tr_s : float
        Repetition time, in s (the HRF is sampled at ``k * tr_s``).
    history : int
        K: the HRF kernel has ``K + 1`` taps (``K = ceil(hrf_support_s / tr_s)``).
    hidden_size : int
    rnn : {"lstm", "gru"}
    gat_heads : int
    gat_head_channels : int, optional
        Default :func:`default_head_channels`.
    dropout : float
        Dropout after the wavelet attention, the RNN and in the graph layers (training only).
    hrf_support_s : float
        HRF support, in s (used for the time-to-peak grid).
    gat_backend : {"dense", "pyg"}
        Graph attention evaluation (:mod:`~.graph`); same results.
    use_wavelet_attention : bool
        False: uniform average over wavelet bands (ablation).
    use_graph : bool
        False: a dense learned N -> M map per TR segment replaces both graph attention layers
        (ablation); the model then has no ``bipartite`` and ``parcel_gat`` modules but
        ``parcel_map``.
    learn_hrf : bool
        False: HRFs fixed at SPM's canonical, not trained (ablation).
    linear_path : bool
        Include the :class:`LinearPath` (the standard model inside; set it with
        :meth:`init_linear_path`). The nonlinear path's readout then starts at zero. Off by
        default here, where nothing initialises it; :func:`~samba_bids.training.fit_samba`
        turns it on (``Config.linear_path``, default True).
    nonlinear_path : bool
        Include the wavelet attention, RNN and graph modules (False: the linear path only,
        an ablation; ``linear_path`` must then be True).
    linear_feature_index : int
        The band-power feature of the linear path (:data:`~.wavelet.FEATURE_NAMES` index).
        With ``use_graph`` the linear path is restricted to the bipartite graph (each BOLD
        parcel takes the bands of its source parcels: the graph ridge); without, it is dense.

    Attributes
    ----------
    hparams : dict
        The constructor's scalar arguments (JSON-serialisable), for :meth:`to_checkpoint`.
    feature_mean, feature_std : Tensor, shape (N, n_bands, n_features)
        Buffers: standardisation fitted on training volumes (:meth:`set_standardization`).
    hrf : ParcelHRF
        The learned HRFs (``hrf.parameters_frame(names)``).
    """

    def __init__(self, n_src: int, n_bold: int, n_bands: int, n_features: int,
                 bipartite_edge_index, bold_edge_index, *, tr_s: float, history: int,
                 hidden_size: int = 32, rnn: str = "lstm", gat_heads: int = 2,
                 gat_head_channels: int | None = None, dropout: float = 0.1,
                 hrf_support_s: float = 32.0, gat_backend: str = "dense",
                 use_wavelet_attention: bool = True, use_graph: bool = True,
                 learn_hrf: bool = True, linear_path: bool = False,
                 nonlinear_path: bool = True, linear_feature_index: int = 0):
        super().__init__()
        if not (linear_path or nonlinear_path):
            raise ValueError("SAMBA needs the linear path, the nonlinear path or both.")
        if rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn must be 'lstm' or 'gru'; got {rnn!r}.")
        if tr_s <= 0 or history < 0:
            raise ValueError(f"tr_s must be > 0 and history >= 0; got {tr_s}, {history}.")
        if gat_head_channels is None:
            gat_head_channels = default_head_channels(hidden_size, gat_heads)
        self.hparams = dict(
            n_src=int(n_src), n_bold=int(n_bold), n_bands=int(n_bands),
            n_features=int(n_features), tr_s=float(tr_s), history=int(history),
            hidden_size=int(hidden_size), rnn=rnn, gat_heads=int(gat_heads),
            gat_head_channels=int(gat_head_channels), dropout=float(dropout),
            hrf_support_s=float(hrf_support_s), gat_backend=gat_backend,
            use_wavelet_attention=bool(use_wavelet_attention), use_graph=bool(use_graph),
            learn_hrf=bool(learn_hrf), linear_path=bool(linear_path),
            nonlinear_path=bool(nonlinear_path), linear_feature_index=int(linear_feature_index),
        )
        self.n_src, self.n_bold = int(n_src), int(n_bold)
        self.tr_s, self.history = float(tr_s), int(history)
        self.register_buffer("feature_mean", torch.zeros(n_src, n_bands, n_features))
        self.register_buffer("feature_std", torch.ones(n_src, n_bands, n_features))

        #: True skips the nonlinear path in :meth:`neural_drive` (exact while its readout is
        #: zero: the HRF stage of :func:`~samba_bids.training.fit_samba`).
        self.skip_nonlinear = False
        self.linear = (LinearPath(n_src, n_bands, n_bold, linear_feature_index,
                                  bipartite_edge_index if use_graph else None)
                       if linear_path else None)
        if nonlinear_path:
            self._build_nonlinear_path(n_src, n_bold, n_bands, n_features, bipartite_edge_index,
                                       bold_edge_index, hidden_size, rnn, gat_heads,
                                       gat_head_channels, dropout, gat_backend,
                                       use_wavelet_attention, use_graph)
            if linear_path:  # a residual on the linear path: zero at initialisation
                with torch.no_grad():
                    self.readout.zero_()
        self.hrf = ParcelHRF(n_bold, support_s=hrf_support_s, learnable=learn_hrf)
        self.gain = nn.Parameter(torch.ones(n_bold))
        self.offset = nn.Parameter(torch.zeros(n_bold))

    # ------------------------------------------------------------------------------------
    def _build_nonlinear_path(self, n_src, n_bold, n_bands, n_features, bipartite_edge_index,
                              bold_edge_index, hidden_size, rnn, gat_heads, gat_head_channels,
                              dropout, gat_backend, use_wavelet_attention, use_graph):
        """Wavelet attention, RNN, graph modules (or the dense map) and the readout."""
        self.wavelet_attention = WaveletAttention(n_src, n_bands, n_features, hidden_size,
                                                  input_dependent=use_wavelet_attention)
        self.dropout = nn.Dropout(dropout)
        rnn_class = nn.LSTM if rnn == "lstm" else nn.GRU
        self.temporal = rnn_class(hidden_size, hidden_size, batch_first=True)
        self.temporal_norm = nn.LayerNorm(hidden_size)
        if use_graph:
            if bipartite_edge_index is None or bold_edge_index is None:
                raise ValueError("use_graph=True needs bipartite_edge_index and "
                                 "bold_edge_index (build_graphs).")
            self.bipartite = BipartiteGAT(n_src, n_bold, bipartite_edge_index, hidden_size,
                                          gat_heads, gat_head_channels, dropout, gat_backend)
            self.parcel_gat = ParcelGAT(n_bold, bold_edge_index, hidden_size, gat_heads,
                                        gat_head_channels, dropout, gat_backend)
        else:
            self.parcel_map = DenseParcelMap(n_src, n_bold, hidden_size, dropout)
        self.readout = nn.Parameter(torch.randn(n_bold, hidden_size) / hidden_size**0.5)

    def set_standardization(self, mean, std) -> None:
        """Store the feature mean and SD (shape (N, n_bands, n_features)) fitted on training
        volumes; SDs below 1e-6 are set to 1."""
        store_standardization(self.feature_mean, self.feature_std, mean, std)

    def neural_drive(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Neural drive per BOLD parcel and TR segment, before the HRF.

        Parameters
        ----------
        x : Tensor, shape (B, N, L, n_bands, n_features)
            Raw (unstandardised) band features of L consecutive TR segments.
        mask : Tensor of bool, shape (B, L), optional
            False for segments before the recording start: their standardised features and
            their drive are set to zero (zero history).

        Returns
        -------
        Tensor, shape (B, M, L)
        """
        if x.dim() != 5 or x.shape[1] != self.n_src:
            raise ValueError(
                f"expected (B, {self.n_src}, L, n_bands, n_features); got {tuple(x.shape)}.")
        batch, n_src, length = x.shape[:3]
        x = (x - self.feature_mean[:, None]) / self.feature_std[:, None]
        if mask is not None:
            mask = mask.to(x.dtype)
            x = x * mask[:, None, :, None, None]
        drive = self.linear(x) if self.linear is not None else 0.0
        if self.hparams["nonlinear_path"] and not self.skip_nonlinear:
            h = self.dropout(self.wavelet_attention(x)).reshape(batch * n_src, length, -1)
            context, _ = self.temporal(h)  # (B * N, L, H), parcels folded into the batch
            h = self.temporal_norm(h + self.dropout(context))  # residual: present kept
            h = h.view(batch, n_src, length, -1).transpose(1, 2)  # (B, L, N, H)
            if self.hparams["use_graph"]:
                g = self.parcel_gat(self.bipartite(h))  # (B, L, M, H)
            else:
                g = self.parcel_map(h)  # (B, L, M, H)
            drive = drive + torch.einsum("blmh,mh->bml", g, self.readout)
        if mask is not None:
            drive = drive * mask[:, None, :]
        return drive

    @torch.no_grad()
    def init_linear_path(self, ridge) -> None:
        """Set the linear path to a fitted ridge baseline, so that the model predicts exactly
        what the ridge predicts (up to float32 rounding) while the HRFs are canonical and the
        nonlinear path's readout is zero.

        With ``C`` the ridge's coefficients on standardised regressors (shape (P, M)),
        ``mu`` and ``sigma`` the regressors' training mean and SD (shape (P,)) and ``c`` its
        intercept (the unit-sum canonical kernel commutes with the weighted sum)::

            weight[m, p] = C[p, m] / sigma[p]
            offset[m]    = c[m] - sum_p C[p, m] mu[p] / sigma[p]
            gain[m]      = 1,  regressor_scale[p] = sigma[p]

        Parameters
        ----------
        ridge : samba_bids.model.baselines.RidgeBaseline
            Fitted on the same training volumes and features as this model's
            standardisation (:func:`~.baselines.fit_ridge_baseline`).

        Raises
        ------
        ValueError
            If the model has no linear path, or the ridge's shapes, band-power feature,
            standardisation, TR or kernel length differ from the model's.
        """
        if self.linear is None:
            raise ValueError("this model has no linear path (linear_path=False).")
        n_regressors = self.linear.n_src * self.linear.n_bands
        if ridge.coefficients.shape != (n_regressors, self.n_bold):
            raise ValueError(f"ridge coefficients {ridge.coefficients.shape} do not match "
                             f"({n_regressors}, {self.n_bold}).")
        if int(ridge.feature_index) != self.linear.feature_index:
            raise ValueError("the ridge was fitted on another band-power feature.")
        if abs(float(ridge.tr_s) - self.tr_s) > 1e-9 or len(ridge.kernel) != self.history + 1:
            raise ValueError(f"the ridge's HRF ({len(ridge.kernel)} taps at TR "
                             f"{ridge.tr_s:g} s) differs from the model's ({self.history + 1} "
                             f"taps at {self.tr_s:g} s).")
        index = self.linear.feature_index
        for label, ours, theirs in (
                ("mean", self.feature_mean[..., index], ridge.feature_mean),
                ("SD", self.feature_std[..., index], ridge.feature_std)):
            if not np.allclose(ours.cpu().numpy(), theirs, rtol=1e-4, atol=1e-5):
                raise ValueError(f"the ridge's band-power {label} differs from the model's "
                                 "standardisation: fit both on the same training volumes.")
        coefficients = np.asarray(ridge.coefficients, dtype=np.float64)
        outside = coefficients.T * (1.0 - self.linear.mask.cpu().numpy())
        if np.abs(outside).max(initial=0.0) > 0:
            raise ValueError("the ridge has weights outside the linear path's graph: fit it "
                             "with edge_index set to the model's bipartite graph.")
        sigma = np.asarray(ridge.regressor_std, dtype=np.float64)
        mu = np.asarray(ridge.regressor_mean, dtype=np.float64)
        like = self.linear.weight
        self.linear.weight.copy_(torch.as_tensor((coefficients / sigma[:, None]).T,
                                                 dtype=like.dtype))
        self.linear.regressor_scale.copy_(torch.as_tensor(sigma, dtype=like.dtype))
        self.offset.copy_(torch.as_tensor(
            ridge.intercept - (coefficients * (mu / sigma)[:, None]).sum(axis=0),
            dtype=like.dtype))
        self.gain.fill_(1.0)

    @torch.no_grad()
    def linear_path_coefficients(self) -> np.ndarray:
        """The linear path as the ridge's coefficients on HRF-convolved log band power before
        standardisation (:attr:`~.baselines.RidgeBaseline.raw_coefficients`).

        ``B[p, m] = gain[m] * weight[m, p] * mask[m, p] / feature_std[n, b]`` (``p = n *
        n_bands + b``): the inverse of :meth:`init_linear_path` with the model's own
        standardisation undone, so a model trained on other participants gives the prior of
        a new participant's ridge (``fit_ridge_baseline(..., prior=B)``). The HRF is taken as
        the canonical one the ridge assumes (learned HRFs are not carried over).

        Returns
        -------
        ndarray, shape (N * n_bands, M)

        Raises
        ------
        ValueError
            If the model has no linear path.
        """
        if self.linear is None:
            raise ValueError("this model has no linear path (linear_path=False).")
        weight = (self.linear.weight * self.linear.mask * self.gain[:, None]).double()
        std = self.feature_std[..., self.linear.feature_index].reshape(-1).double()
        return (weight / std[None, :]).T.cpu().numpy()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted BOLD for every segment of the input windows.

        ``bold[b, m, t] = gain[m] * sum_{k=0..K} h_m(k TR) drive[b, m, t - k] + offset[m]``
        with the drive zero before ``t = 0``; only positions ``t >= K`` have their full
        history inside the window (those are the training targets).

        Parameters
        ----------
        x : Tensor, shape (B, N, L, n_bands, n_features)
        mask : Tensor of bool, shape (B, L), optional
            See :meth:`neural_drive`.

        Returns
        -------
        Tensor, shape (B, M, L)
            Predicted BOLD in the units of the training target (z).
        """
        drive = self.neural_drive(x, mask)
        kernel = self.hrf.kernel(self.tr_s, n_taps=self.history + 1)
        bold = causal_fft_convolve(drive, kernel)
        return bold * self.gain[:, None] + self.offset[:, None]

    # ------------------------------------------------------------------------------------
    def n_parameters(self) -> int:
        """Number of fitted parameters: the trainable ones and the linear path's weights inside
        its mask (fitted in closed form by :meth:`init_linear_path`)."""
        linear = () if self.linear is None else (self.linear.weight,)
        return (sum(p.numel() for p in self.parameters()
                    if p.requires_grad and all(p is not q for q in linear))
                + (self.linear.n_weights() if self.linear is not None else 0))

    def to_checkpoint(self) -> dict:
        """``{"hparams": ..., "state_dict": ...}`` for ``torch.save``; the graphs and the
        standardisation are in the state dict."""
        return {"hparams": dict(self.hparams),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "SAMBA":
        """Rebuild a model from :meth:`to_checkpoint` output (in eval mode, on CPU).

        Checkpoints written before the ablation flags existed load as the full model; those
        written before the linear path existed load without it (``linear_path=False``)."""
        state = checkpoint["state_dict"]
        hparams = dict(checkpoint["hparams"])
        hparams.setdefault("linear_path", "linear.weight" in state)
        model = cls(bipartite_edge_index=state.get("bipartite.attention.edge_index"),
                    bold_edge_index=state.get("parcel_gat.attention.edge_index"),
                    **hparams)
        model.load_state_dict(state)
        return model.eval()
