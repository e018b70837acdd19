"""SAMBA model pieces: wavelet features and attention, parcel graphs, HRFs, the model, losses.

Afrasiyabi et al., "Latent Representation Learning for Multimodal Brain Activity Translation"
(SAMBA), arXiv 2409.18462; see DESIGN.md, "The SAMBA model".
"""

from .baselines import RidgeBaseline, fit_ridge_baseline
from .graph import (
    BipartiteGAT,
    DenseParcelMap,
    ParcelGAT,
    build_graphs,
    functional_edges,
    knn_bipartite_edges,
)
from .hrf import ParcelHRF, causal_fft_convolve, double_gamma, spm_canonical_hrf
from .losses import pearson_loss
from .reverse import SAMBAReverse
from .samba import SAMBA
from .wavelet import WaveletAttention, broadband_log_power, wavelet_band_features

__all__ = [
    "SAMBA",
    "SAMBAReverse",
    "BipartiteGAT",
    "DenseParcelMap",
    "ParcelGAT",
    "ParcelHRF",
    "RidgeBaseline",
    "WaveletAttention",
    "broadband_log_power",
    "build_graphs",
    "causal_fft_convolve",
    "double_gamma",
    "fit_ridge_baseline",
    "functional_edges",
    "knn_bipartite_edges",
    "pearson_loss",
    "spm_canonical_hrf",
    "wavelet_band_features",
]
