"""Parcel graphs and graph attention for SAMBA's spatial translation.

Two graphs, both fitted on training volumes only (DESIGN.md, "Splits"):

* a bipartite graph from the N source (electrophysiology) parcels to the M BOLD parcels: each
  BOLD parcel receives edges from its ``k_spatial`` nearest source parcels (centroid distance)
  and from the ``k_functional`` source parcels whose HRF-convolved broadband power correlates
  most (in absolute value) with its BOLD;
* a graph on the M BOLD parcels: ``k_spatial`` nearest parcels plus the ``k_functional`` most
  correlated (absolute Pearson r of the training BOLD).

Attention uses torch_geometric's ``GATv2Conv`` (Brody et al., ICLR 2022), as SAMBA does. The
same graph is applied to every batch item and TR segment, so the G = B x L copies are evaluated
together, without a Python loop, either

* ``backend="pyg"``: ``GATv2Conv.forward`` on one block-diagonal graph whose ``edge_index`` is
  the parcel graph offset by ``g * N`` / ``g * M`` (built once per G and device, then cached);
* ``backend="dense"`` (default): the same equations with ``GATv2Conv``'s own parameters on a
  padded neighbour table, with dense tensor operations instead of scatter. It gives the same
  result as the PyG path (tested) and is several times faster on CPUs.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import fftconvolve
from torch import nn
from torch_geometric.nn import GATv2Conv

from ..metrics import pearson_matrix
from .hrf import canonical_kernel

logger = logging.getLogger(__name__)

BACKENDS = ("dense", "pyg")


# ---------------------------------------------------------------------------------------
# edges
# ---------------------------------------------------------------------------------------
def _check_k(k, available, what):
    k = int(k)
    if k < 0:
        raise ValueError(f"{what}: k must be >= 0; got {k}.")
    if k > available:
        logger.info("%s: k=%d exceeds the %d candidates; using %d.", what, k, available,
                    available)
        k = available
    return k


def _edges_from_neighbours(neighbours):
    """(M, k) source indices per destination -> (2, M * k) edge_index, source row first."""
    n_dst, k = neighbours.shape
    dst = np.repeat(np.arange(n_dst), k)
    return np.stack([neighbours.reshape(-1), dst]).astype(np.int64)


def knn_bipartite_edges(src_xyz, dst_xyz, k: int, *, exclude_self: bool = False) -> np.ndarray:
    """Edges from each destination's ``k`` nearest sources (Euclidean centroid distance).

    Parameters
    ----------
    src_xyz : ndarray, shape (N, 3)
        Source parcel centroids, in mm.
    dst_xyz : ndarray, shape (M, 3)
        Destination parcel centroids, in mm.
    k : int
        Neighbours per destination (clipped to the number of candidates).
    exclude_self : bool
        Source and destination are the same parcel set; a parcel is not its own neighbour.

    Returns
    -------
    ndarray of int64, shape (2, M * k)
        ``edge_index``: row 0 source index, row 1 destination index (PyG's
        ``source_to_target`` flow). Ties are broken by the lower index.

    Raises
    ------
    ValueError
        If the centroids are not (n, 3) or ``k`` is negative; if ``exclude_self`` and the sets
        differ in size.
    """
    src_xyz = np.asarray(src_xyz, dtype=float)
    dst_xyz = np.asarray(dst_xyz, dtype=float)
    if src_xyz.ndim != 2 or dst_xyz.ndim != 2 or src_xyz.shape[1] != dst_xyz.shape[1]:
        raise ValueError(
            f"centroids must be (n, 3) arrays; got {src_xyz.shape} and {dst_xyz.shape}.")
    if exclude_self and len(src_xyz) != len(dst_xyz):
        raise ValueError("exclude_self needs the same parcels as sources and destinations.")
    distance = np.linalg.norm(dst_xyz[:, None, :] - src_xyz[None, :, :], axis=-1)  # (M, N)
    if exclude_self:
        np.fill_diagonal(distance, np.inf)
    k = _check_k(k, src_xyz.shape[0] - int(exclude_self), "spatial neighbours")
    neighbours = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return _edges_from_neighbours(neighbours)


def functional_edges(src_signal, dst_signal, k: int, *, exclude_self: bool = False) -> np.ndarray:
    """Edges from each destination's ``k`` sources of largest absolute Pearson correlation.

    Pass training volumes only: the edges are a fitted statistic.

    Parameters
    ----------
    src_signal : ndarray, shape (N, T)
        Source time series (training volumes).
    dst_signal : ndarray, shape (M, T)
        Destination time series on the same volumes.
    k : int
        Neighbours per destination (clipped to the number of candidates).
    exclude_self : bool
        Sources and destinations are the same parcels; a parcel is not its own neighbour.

    Returns
    -------
    ndarray of int64, shape (2, M * k)
        Row 0 source, row 1 destination. Ties are broken by the lower index.

    Raises
    ------
    ValueError
        If the time axes differ, a series holds non-finite values, or ``k`` is negative.
    """
    src_signal = np.asarray(src_signal, dtype=float)
    dst_signal = np.asarray(dst_signal, dtype=float)
    if src_signal.ndim != 2 or dst_signal.ndim != 2 or src_signal.shape[1] != dst_signal.shape[1]:
        raise ValueError(
            f"signals must be (parcels, volumes) on the same volumes; got {src_signal.shape} "
            f"and {dst_signal.shape}.")
    if not (np.isfinite(src_signal).all() and np.isfinite(dst_signal).all()):
        raise ValueError("functional_edges: the signals hold NaN or infinite values.")
    if exclude_self and len(src_signal) != len(dst_signal):
        raise ValueError("exclude_self needs the same parcels as sources and destinations.")
    strength = np.abs(pearson_matrix(src_signal, dst_signal))
    if exclude_self:
        np.fill_diagonal(strength, -np.inf)
    k = _check_k(k, src_signal.shape[0] - int(exclude_self), "functional neighbours")
    neighbours = np.argsort(-strength, axis=1, kind="stable")[:, :k]
    return _edges_from_neighbours(neighbours)


def union_edges(*edge_indices) -> np.ndarray:
    """Union of edge sets, duplicates removed, sorted by (destination, source)."""
    edges = np.concatenate([np.asarray(e, dtype=np.int64).reshape(2, -1) for e in edge_indices],
                           axis=1)
    edges = np.unique(edges, axis=1)
    order = np.lexsort((edges[0], edges[1]))
    return edges[:, order]


def canonical_hrf_regressor(signal, tr_s: float, support_s: float = 32.0) -> np.ndarray:
    """Convolve TR-rate series with SPM's canonical HRF, causally, after removing their mean.

    Parameters
    ----------
    signal : ndarray, shape (N, T)
        One contiguous block of volumes; the series is taken as zero (after demeaning) before
        its first volume.
    tr_s : float
        Repetition time, in s.
    support_s : float
        HRF support, in s.

    Returns
    -------
    ndarray, shape (N, T)
    """
    signal = np.asarray(signal, dtype=float)
    kernel = canonical_kernel(tr_s, support_s)
    centred = signal - signal.mean(axis=-1, keepdims=True)
    return fftconvolve(centred, kernel[None, :], axes=-1)[:, : signal.shape[-1]]


def build_graphs(src_centroids, bold_centroids, src_signal_train, bold_train, k_spatial: int,
                 k_functional: int, *, tr_s: float, hrf_support_s: float = 32.0):
    """The bipartite source-to-BOLD graph and the BOLD parcel graph, from training data.

    Parameters
    ----------
    src_centroids : ndarray, shape (N, 3)
        Source parcel centroids, in mm.
    bold_centroids : ndarray, shape (M, 3)
        BOLD parcel centroids, in mm (same space as ``src_centroids``).
    src_signal_train : ndarray, shape (N, T)
        Source-parcel broadband band power (e.g. :func:`~.wavelet.broadband_log_power`) on the
        training volumes (one contiguous block). It is convolved with SPM's canonical HRF at
        ``tr_s`` before it is correlated with the BOLD.
    bold_train : ndarray, shape (M, T)
        BOLD on the same training volumes.
    k_spatial, k_functional : int
        Nearest parcels and most correlated parcels per destination.
    tr_s : float
        Repetition time, in s.
    hrf_support_s : float
        Support of the canonical HRF, in s.

    Returns
    -------
    bipartite_edge_index : ndarray of int64, shape (2, E1)
        Source parcel (row 0) -> BOLD parcel (row 1); union of the spatial and functional
        edges, deduplicated.
    bold_edge_index : ndarray of int64, shape (2, E2)
        BOLD parcel -> BOLD parcel, no self-loops (the attention layer adds them).

    Raises
    ------
    ValueError
        If both ``k`` are 0 or the shapes disagree.
    """
    if int(k_spatial) + int(k_functional) < 1:
        raise ValueError("k_spatial + k_functional must be at least 1: every BOLD parcel needs "
                         "incoming edges.")
    src_signal_train = np.asarray(src_signal_train, dtype=float)
    bold_train = np.asarray(bold_train, dtype=float)
    if len(src_signal_train) != len(src_centroids) or len(bold_train) != len(bold_centroids):
        raise ValueError(
            f"{len(src_signal_train)} source series for {len(src_centroids)} centroids, "
            f"{len(bold_train)} BOLD series for {len(bold_centroids)} centroids.")
    regressor = canonical_hrf_regressor(src_signal_train, tr_s, hrf_support_s)
    bipartite = union_edges(
        knn_bipartite_edges(src_centroids, bold_centroids, k_spatial),
        functional_edges(regressor, bold_train, k_functional),
    )
    bold = union_edges(
        knn_bipartite_edges(bold_centroids, bold_centroids, k_spatial, exclude_self=True),
        functional_edges(bold_train, bold_train, k_functional, exclude_self=True),
    )
    logger.info("graphs: %d source->BOLD edges (%.1f per BOLD parcel), %d BOLD edges",
                bipartite.shape[1], bipartite.shape[1] / len(bold_centroids), bold.shape[1])
    return bipartite, bold


# ---------------------------------------------------------------------------------------
# batched graph attention
# ---------------------------------------------------------------------------------------
def neighbour_table(edge_index, n_dst: int, *, self_loops: bool = False):
    """Padded incoming-neighbour table of a graph.

    Parameters
    ----------
    edge_index : array_like of int, shape (2, E)
        Row 0 source, row 1 destination.
    n_dst : int
        Number of destination nodes.
    self_loops : bool
        Remove existing self-loops and add one per node (as ``GATv2Conv`` does).

    Returns
    -------
    neighbours : LongTensor, shape (n_dst, max_degree)
        Source indices (padding entries point at node 0).
    mask : BoolTensor, shape (n_dst, max_degree)
        True for real neighbours.
    """
    edges = torch.as_tensor(np.asarray(edge_index), dtype=torch.long).reshape(2, -1)
    if self_loops:
        edges = edges[:, edges[0] != edges[1]]
        loops = torch.arange(n_dst, dtype=torch.long)
        edges = torch.cat([edges, torch.stack([loops, loops])], dim=1)
    order = torch.argsort(edges[1] * (edges[0].max().item() + 1 if edges.numel() else 1)
                          + edges[0])
    src, dst = edges[0, order], edges[1, order]
    degree = torch.bincount(dst, minlength=n_dst)
    width = max(int(degree.max().item()) if degree.numel() else 0, 1)
    start = torch.cumsum(degree, 0) - degree
    slot = torch.arange(dst.numel()) - start[dst]
    neighbours = torch.zeros(n_dst, width, dtype=torch.long)
    mask = torch.zeros(n_dst, width, dtype=torch.bool)
    neighbours[dst, slot] = src
    mask[dst, slot] = True
    return neighbours, mask


class GraphAttention(nn.Module):
    """``GATv2Conv`` applied to G copies of one fixed graph at once.

    Parameters
    ----------
    in_channels : int or (int, int)
        Input size (source, destination).
    head_channels : int
        Channels per head; heads are concatenated to ``heads * head_channels``.
    heads : int
        Attention heads.
    edge_index : array_like of int, shape (2, E)
        The graph (row 0 source, row 1 destination).
    n_src, n_dst : int
        Nodes per copy on each side (equal for a non-bipartite graph).
    self_loops : bool
        Add self-loops (non-bipartite graphs), as ``GATv2Conv(add_self_loops=True)``.
    attention_dropout : float
        Dropout on the attention coefficients (training only).
    backend : {"dense", "pyg"}
        See the module docstring.
    """

    def __init__(self, in_channels, head_channels: int, heads: int, edge_index, n_src: int,
                 n_dst: int, *, self_loops: bool, attention_dropout: float = 0.0,
                 backend: str = "dense"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
        edge_index = torch.as_tensor(np.asarray(edge_index), dtype=torch.long).reshape(2, -1)
        if edge_index.numel() and (int(edge_index[0].max()) >= n_src
                                   or int(edge_index[1].max()) >= n_dst
                                   or int(edge_index.min()) < 0):
            raise ValueError(f"edge_index refers to nodes outside {n_src} sources and {n_dst} "
                             "destinations.")
        self.backend = backend
        self.n_src, self.n_dst = int(n_src), int(n_dst)
        self.self_loops = bool(self_loops)
        self.conv = GATv2Conv(in_channels, head_channels, heads=heads, concat=True,
                              dropout=attention_dropout, add_self_loops=self_loops)
        self.register_buffer("edge_index", edge_index)
        neighbours, mask = neighbour_table(edge_index, n_dst, self_loops=self_loops)
        self.register_buffer("neighbours", neighbours)
        self.register_buffer("neighbour_mask", mask)
        self._batched_edges: dict = {}

    @property
    def out_channels(self) -> int:
        return self.conv.heads * self.conv.out_channels

    def batched_edge_index(self, n_graphs: int) -> torch.Tensor:
        """``edge_index`` of ``n_graphs`` disjoint copies (offsets ``g * n_src``, ``g * n_dst``),
        built once per (G, device) with one broadcast addition and cached."""
        key = (int(n_graphs), self.edge_index.device)
        if key not in self._batched_edges:
            graphs = torch.arange(n_graphs, device=self.edge_index.device)
            offsets = torch.stack([graphs * self.n_src, graphs * self.n_dst])  # (2, G)
            self._batched_edges[key] = (self.edge_index[:, None, :]
                                        + offsets[:, :, None]).reshape(2, -1)
        return self._batched_edges[key]

    def forward(self, x_src: torch.Tensor, x_dst: torch.Tensor) -> torch.Tensor:
        """Attend from sources to destinations in every copy.

        Parameters
        ----------
        x_src : Tensor, shape (G, N, F_src)
        x_dst : Tensor, shape (G, M, F_dst) or (1, M, F_dst)
            Destination features (a leading 1 broadcasts over copies).

        Returns
        -------
        Tensor, shape (G, M, heads * head_channels)
        """
        n_graphs = x_src.shape[0]
        if self.backend == "pyg":
            x_dst = x_dst.expand(n_graphs, -1, -1)
            xs = x_src.reshape(n_graphs * self.n_src, -1)
            xd = x_dst.reshape(n_graphs * self.n_dst, -1)
            edges = self.batched_edge_index(n_graphs)
            x = xs if self.self_loops else (xs, xd)
            return self.conv(x, edges).view(n_graphs, self.n_dst, -1)
        return self._dense_forward(x_src, x_dst)

    def _dense_forward(self, x_src, x_dst):
        conv = self.conv
        heads, channels = conv.heads, conv.out_channels
        n_graphs = x_src.shape[0]
        width = self.neighbours.shape[1]
        x_l = conv.lin_l(x_src).view(n_graphs, self.n_src, heads * channels)
        x_r = conv.lin_r(x_dst).view(x_dst.shape[0], self.n_dst, 1, heads, channels)
        x_j = x_l.index_select(1, self.neighbours.reshape(-1))
        x_j = x_j.view(n_graphs, self.n_dst, width, heads, channels)
        z = F.leaky_relu(x_j + x_r, conv.negative_slope)
        scores = (z * conv.att).sum(dim=-1)  # (G, M, width, heads)
        mask = self.neighbour_mask[None, :, :, None]
        scores = scores.masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=2).masked_fill(~mask, 0.0)
        alpha = F.dropout(alpha, p=conv.dropout, training=self.training)
        out = (alpha.unsqueeze(-1) * x_j).sum(dim=2).reshape(n_graphs, self.n_dst, -1)
        if conv.bias is not None:
            out = out + conv.bias
        return out

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .double(): drop cached copies
        self._batched_edges = {}
        return super()._apply(fn, *args, **kwargs)


class BipartiteGAT(nn.Module):
    """Graph attention from N source parcels to M BOLD parcels, per TR segment.

    The BOLD parcels carry a learned embedding that is the attention's query side
    (``x_dst`` of ``GATv2Conv``); the source side is the temporal encoder's output. Heads are
    concatenated and projected back to ``hidden_size``; the result is added to the BOLD
    embedding and layer-normalised (per parcel and segment: no mixing over time).

    Parameters
    ----------
    n_src, n_bold : int
        Source parcels N, BOLD parcels M.
    edge_index : array_like of int, shape (2, E)
        Source (row 0) -> BOLD (row 1) edges.
    hidden_size : int
    heads : int
    head_channels : int
        Channels per head. Per-edge work scales with ``heads * head_channels * E * B * L``,
        so this is kept small (see ``SAMBA``).
    dropout : float
    backend : {"dense", "pyg"}
    """

    def __init__(self, n_src: int, n_bold: int, edge_index, hidden_size: int, heads: int,
                 head_channels: int, dropout: float = 0.0, backend: str = "dense"):
        super().__init__()
        self.n_src, self.n_bold = int(n_src), int(n_bold)
        self.bold_embedding = nn.Parameter(0.1 * torch.randn(n_bold, hidden_size))
        self.attention = GraphAttention((hidden_size, hidden_size), head_channels, heads,
                                        edge_index, n_src, n_bold, self_loops=False,
                                        attention_dropout=0.0, backend=backend)
        self.project = nn.Linear(self.attention.out_channels, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map source-parcel features to BOLD parcels, for every batch item and segment.

        Parameters
        ----------
        x : Tensor, shape (B, L, N, hidden)
            Source-parcel features per TR segment.

        Returns
        -------
        Tensor, shape (B, L, M, hidden)
        """
        batch, length, n_src, hidden = x.shape
        if n_src != self.n_src:
            raise ValueError(f"expected {self.n_src} source parcels; got {n_src}.")
        out = self.attention(x.reshape(batch * length, n_src, hidden),
                             self.bold_embedding.unsqueeze(0))
        out = self.dropout(F.elu(self.project(out))) + self.bold_embedding
        return self.norm(out).view(batch, length, self.n_bold, hidden)


class ParcelGAT(nn.Module):
    """Residual graph attention on the BOLD parcel graph, per TR segment.

    ``x + dropout(elu(W [GATv2Conv(x) heads concatenated]))``, layer-normalised.

    Parameters
    ----------
    n_parcels : int
    edge_index : array_like of int, shape (2, E)
        BOLD -> BOLD edges (self-loops are added).
    hidden_size, heads, head_channels, dropout, backend
        As :class:`BipartiteGAT`.
    """

    def __init__(self, n_parcels: int, edge_index, hidden_size: int, heads: int,
                 head_channels: int, dropout: float = 0.0, backend: str = "dense"):
        super().__init__()
        self.n_parcels = int(n_parcels)
        self.attention = GraphAttention(hidden_size, head_channels, heads, edge_index,
                                        n_parcels, n_parcels, self_loops=True,
                                        attention_dropout=0.0, backend=backend)
        self.project = nn.Linear(self.attention.out_channels, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the BOLD parcel graph, for every batch item and segment.

        Parameters
        ----------
        x : Tensor, shape (B, L, M, hidden)

        Returns
        -------
        Tensor, shape (B, L, M, hidden)
        """
        batch, length, n_parcels, hidden = x.shape
        flat = x.reshape(batch * length, n_parcels, hidden)
        out = self.dropout(F.elu(self.project(self.attention(flat, flat))))
        return self.norm(flat + out).view(batch, length, n_parcels, hidden)


class DenseParcelMap(nn.Module):
    """A dense learned linear map from N source parcels to M BOLD parcels, per TR segment.

    The "no graph" ablation of SAMBA: it replaces :class:`BipartiteGAT` followed by
    :class:`ParcelGAT`. Every BOLD parcel is a learned weighted sum of all source parcels'
    features (no graph, no attention, no input-dependent weights), plus a learned BOLD parcel
    embedding, layer-normalised per parcel and segment::

        out[b, l, m] = LayerNorm(sum_n W[m, n] x[b, l, n] + e_m)

    Parameters
    ----------
    n_src, n_bold : int
        Source parcels N, BOLD parcels M.
    hidden_size : int
    dropout : float
        Dropout on the mapped features (training only).
    """

    def __init__(self, n_src: int, n_bold: int, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.n_src, self.n_bold = int(n_src), int(n_bold)
        self.weight = nn.Parameter(torch.randn(n_bold, n_src) / n_src**0.5)
        self.bold_embedding = nn.Parameter(0.1 * torch.randn(n_bold, hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map source-parcel features to BOLD parcels, for every batch item and segment.

        Parameters
        ----------
        x : Tensor, shape (B, L, N, hidden)

        Returns
        -------
        Tensor, shape (B, L, M, hidden)
        """
        if x.shape[2] != self.n_src:
            raise ValueError(f"expected {self.n_src} source parcels; got {x.shape[2]}.")
        out = torch.einsum("mn,blnh->blmh", self.weight, x)
        return self.norm(self.dropout(out) + self.bold_embedding)

    def extra_repr(self) -> str:
        return f"n_src={self.n_src}, n_bold={self.n_bold}"
