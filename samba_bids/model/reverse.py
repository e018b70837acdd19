"""SAMBA in reverse: BOLD -> source-parcel band-power envelopes (DESIGN.md, item 7).

The reverse direction predicts, for every source parcel, wavelet band and volume, the log
band power of the electrophysiology segment of that volume (the first feature of
:func:`~.wavelet.wavelet_band_features`), from the BOLD of that volume and the ``K`` volumes
after it: the hemodynamic response delays the BOLD by 4-7 s, so the evidence for the neural
activity of volume ``v`` lies in volumes ``v .. v + K``. It predicts envelopes, not waveforms.

Composition (batched; no Python loop over samples, parcels or batch items)::

    BOLD window (B, M, L)                  z-scored with training statistics
      -> deconvolution (B, L, M, hidden)   per BOLD parcel: a learned FIR filter over the
                                           volumes ahead (anti-causal, K + 1 taps, shared by
                                           parcels) + a parcel embedding, then GELU and norm
      -> ParcelGAT       (B, L, M, hidden) the BOLD parcel graph, residual
      -> BipartiteGAT    (B, L, N, hidden) M BOLD -> N source parcels (the forward graph's
                                           edges reversed)
      -> readout         (B, N, L, bands)  per source parcel and band, + bias

The graph modules are the forward model's classes (:class:`~.graph.ParcelGAT`,
:class:`~.graph.BipartiteGAT`) on the same training-data graphs (:func:`~.graph.build_graphs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .graph import BipartiteGAT, ParcelGAT
from .samba import default_head_channels, store_standardization


class SAMBAReverse(nn.Module):
    """BOLD-to-band-power translator.

    Parameters
    ----------
    n_bold : int
        BOLD parcels M (input).
    n_src : int
        Source parcels N (output).
    n_bands : int
        Wavelet bands predicted per source parcel.
    bipartite_edge_index : array_like of int, shape (2, E1)
        The forward graph's source (row 0) -> BOLD (row 1) edges; used reversed.
    bold_edge_index : array_like of int, shape (2, E2)
        BOLD -> BOLD edges.
    lookahead : int
        K: volumes after each target volume that the deconvolution reads
        (``ceil(hrf_support_s / tr_s)``).
    hidden_size, gat_heads, gat_head_channels, dropout, gat_backend
        As :class:`~.samba.SAMBA`.

    Attributes
    ----------
    hparams : dict
        The constructor's scalar arguments, for :meth:`to_checkpoint`.
    target_mean, target_std : Tensor, shape (N, n_bands)
        Buffers: standardisation of the band power on training volumes; :meth:`forward`
        predicts standardised values (:meth:`unstandardize` maps them back).
    """

    def __init__(self, n_bold: int, n_src: int, n_bands: int, bipartite_edge_index,
                 bold_edge_index, *, lookahead: int, hidden_size: int = 32,
                 gat_heads: int = 2, gat_head_channels: int | None = None,
                 dropout: float = 0.1, gat_backend: str = "dense"):
        super().__init__()
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0; got {lookahead}.")
        if gat_head_channels is None:
            gat_head_channels = default_head_channels(hidden_size, gat_heads)
        self.hparams = {
            "n_bold": int(n_bold), "n_src": int(n_src), "n_bands": int(n_bands),
            "lookahead": int(lookahead), "hidden_size": int(hidden_size),
            "gat_heads": int(gat_heads), "gat_head_channels": int(gat_head_channels),
            "dropout": float(dropout), "gat_backend": gat_backend,
        }
        self.n_bold, self.n_src, self.lookahead = int(n_bold), int(n_src), int(lookahead)
        self.register_buffer("target_mean", torch.zeros(n_src, n_bands))
        self.register_buffer("target_std", torch.ones(n_src, n_bands))
        self.deconvolution = nn.Conv1d(1, hidden_size, kernel_size=lookahead + 1)
        self.bold_embedding = nn.Parameter(0.1 * torch.randn(n_bold, hidden_size))
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        reverse_edges = torch.as_tensor(bipartite_edge_index, dtype=torch.long).flip(0)
        self.parcel_gat = ParcelGAT(n_bold, bold_edge_index, hidden_size, gat_heads,
                                    gat_head_channels, dropout, gat_backend)
        self.bipartite = BipartiteGAT(n_bold, n_src, reverse_edges, hidden_size, gat_heads,
                                      gat_head_channels, dropout, gat_backend)
        self.readout = nn.Parameter(torch.randn(n_src, n_bands, hidden_size) / hidden_size**0.5)
        self.bias = nn.Parameter(torch.zeros(n_src, n_bands))

    def set_standardization(self, mean, std) -> None:
        """Store the band-power mean and SD (shape (N, n_bands)) of the training volumes;
        SDs below 1e-6 are set to 1."""
        store_standardization(self.target_mean, self.target_std, mean, std)

    def standardize(self, power: torch.Tensor) -> torch.Tensor:
        """(..., N, L, n_bands) log band power -> training z-scores."""
        return (power - self.target_mean[:, None]) / self.target_std[:, None]

    def unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`standardize`."""
        return z * self.target_std[:, None] + self.target_mean[:, None]

    def forward(self, bold: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted standardised band power for every volume of the input windows.

        ``out[b, n, t]`` depends on ``bold[b, :, t .. t + K]``; positions ``t < L - K`` have
        all of it inside the window (those are the training targets).

        Parameters
        ----------
        bold : Tensor, shape (B, M, L)
            z-scored parcel BOLD of L consecutive volumes.
        mask : Tensor of bool, shape (B, L), optional
            False for volumes after the end of the run (their BOLD counts as 0).

        Returns
        -------
        Tensor, shape (B, N, L, n_bands)
        """
        if bold.dim() != 3 or bold.shape[1] != self.n_bold:
            raise ValueError(f"expected (B, {self.n_bold}, L); got {tuple(bold.shape)}.")
        batch, n_bold, length = bold.shape
        if mask is not None:
            bold = bold * mask[:, None, :].to(bold.dtype)
        # anti-causal FIR: output at t reads t .. t + K (zero beyond the window's end)
        padded = F.pad(bold.reshape(batch * n_bold, 1, length), (0, self.lookahead))
        h = self.deconvolution(padded).view(batch, n_bold, -1, length).permute(0, 3, 1, 2)
        h = self.norm(F.gelu(h + self.bold_embedding))  # (B, L, M, H)
        h = self.bipartite(self.parcel_gat(self.dropout(h)))  # (B, L, N, H)
        out = torch.einsum("blnh,nkh->bnlk", h, self.readout)
        return out + self.bias[None, :, None, :]

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def to_checkpoint(self) -> dict:
        """``{"hparams": ..., "state_dict": ...}`` for ``torch.save``."""
        return {"hparams": dict(self.hparams), "kind": "reverse",
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> SAMBAReverse:
        """Rebuild a model from :meth:`to_checkpoint` output (eval mode, CPU)."""
        state = checkpoint["state_dict"]
        model = cls(bipartite_edge_index=state["bipartite.attention.edge_index"].flip(0),
                    bold_edge_index=state["parcel_gat.attention.edge_index"],
                    **checkpoint["hparams"])
        model.load_state_dict(state)
        return model.eval()
