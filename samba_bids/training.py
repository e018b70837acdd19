"""Fit SAMBA on one run and predict the whole run.

Everything fitted (feature standardisation, graphs) comes from the training block only; model
selection (early stopping) uses the validation block only; the test block is untouched here
(DESIGN.md, "Splits"; SAMBA_NOTES.md lists what the public code leaked).

Windows: a window is ``L = history + W`` consecutive TR segments inside one block; its last
``W`` volumes are the targets, so each target has its full HRF history (``history`` = K
segments) inside the same block.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .model.graph import build_graphs
from .model.losses import pearson_loss
from .model.samba import SAMBA
from .model.wavelet import broadband_log_power

logger = logging.getLogger(__name__)

#: Gradient norm clipping threshold.
MAX_GRAD_NORM = 5.0


@dataclass
class FitResult:
    """Outcome of :func:`fit_samba`.

    Attributes
    ----------
    model : SAMBA
        On CPU, in eval mode, with the weights of the best validation epoch.
    history : pandas.DataFrame
        One row per epoch: ``epoch`` (1-based), ``train_loss`` (mean over batches, dropout on),
        ``val_loss`` (eval mode), ``seconds``.
    best_epoch : int
        Epoch whose weights ``model`` holds.
    device : str
        Device the model was trained on.
    n_parameters : int
        Trainable parameters.
    graphs : dict
        ``"bipartite"`` (2, E1) source->BOLD and ``"bold"`` (2, E2) edge indices.
    window_trs : int
        Targets per window used (the requested value, shortened to fit the smallest block).
    tr_s : float
        Repetition time the HRFs are sampled at, in s.
    """

    model: SAMBA
    history: pd.DataFrame
    best_epoch: int
    device: str
    n_parameters: int
    graphs: dict = field(default_factory=dict)
    window_trs: int = 0
    tr_s: float = 0.0


def resolve_device(name="auto") -> torch.device:
    """The torch device for a ``--device`` value.

    Parameters
    ----------
    name : str or torch.device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If CUDA is requested but not available, or the name is not a device.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = str(name).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch finds no CUDA GPU; use "
                         "--device auto or --device cpu.")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_windows(split_block, history: int, window_trs: int, *, tile: bool = False) -> np.ndarray:
    """Windows whose W targets lie inside one contiguous block, with K segments of history.

    The history reaches back before the block's first volume: into the gap before it (the gaps
    of :func:`samba_bids.alignment.blocked_split` are K volumes long, so a window never reads
    electrophysiology of another block's targets period) or, for the first block, before the
    recording start, where indices are negative and the segments count as absent (zero drive).

    Parameters
    ----------
    split_block : array_like of int
        The block's volume indices (sorted, contiguous).
    history : int
        K: segments before the first target of a window.
    window_trs : int
        W: targets per window (the window's last W volumes).
    tile : bool
        False (training): every target start, stride 1. True (validation, test, prediction):
        the targets tile the block with stride W, the last window moved back to end at the
        block's end (every volume of the block is a target of at least one window).

    Returns
    -------
    ndarray of int, shape (n_windows, K + W)
        Volume indices of each window (negative before the recording start); the targets are
        ``windows[:, K:]``.

    Raises
    ------
    ValueError
        If the block is not contiguous, or shorter than W volumes.
    """
    block = np.asarray(split_block, dtype=np.int64).ravel()
    history, window_trs = int(history), int(window_trs)
    if history < 0 or window_trs < 1:
        raise ValueError(f"history must be >= 0 and window_trs >= 1; got {history}, "
                         f"{window_trs}.")
    if block.size and np.any(np.diff(block) != 1):
        raise ValueError("make_windows needs a contiguous block of volume indices.")
    if block.size < window_trs:
        raise ValueError(
            f"a block of {block.size} volumes cannot hold a window of {window_trs} target "
            "volumes; lower window_trs or use a longer run.")
    if tile:
        starts = np.arange(0, block.size - window_trs + 1, window_trs)
        if starts[-1] != block.size - window_trs:
            starts = np.append(starts, block.size - window_trs)
    else:
        starts = np.arange(block.size - window_trs + 1)
    first_target = block[starts]
    return first_target[:, None] - history + np.arange(history + window_trs)[None, :]


def _resolve_tr(tr_s, split, config):
    for value in (tr_s, getattr(split, "tr_s", None), getattr(config, "repetition_time_s", None)):
        if value is not None:
            if float(value) <= 0:
                raise ValueError(f"the repetition time must be positive; got {value}.")
            return float(value)
    raise ValueError("fit_samba needs the repetition time: pass tr_s=..., give the split a "
                     "tr_s attribute, or set config.repetition_time_s.")


def _check_inputs(features, bold, split, src_centroids_mm, bold_centroids_mm):
    if features.ndim != 4:
        raise ValueError(f"features must be (N, V, n_bands, n_features); got {features.shape}.")
    if bold.ndim != 2 or bold.shape[1] != features.shape[1]:
        raise ValueError(f"bold must be (M, V) with the features' V = {features.shape[1]} "
                         f"volumes; got {bold.shape}.")
    if src_centroids_mm.shape != (features.shape[0], 3):
        raise ValueError(f"src_centroids_mm must be ({features.shape[0]}, 3); got "
                         f"{src_centroids_mm.shape}.")
    if bold_centroids_mm.shape != (bold.shape[0], 3):
        raise ValueError(f"bold_centroids_mm must be ({bold.shape[0]}, 3); got "
                         f"{bold_centroids_mm.shape}.")
    if not (np.isfinite(features).all() and np.isfinite(bold).all()):
        raise ValueError("features or bold hold NaN or infinite values.")
    n_volumes = features.shape[1]
    for name in ("train", "validation"):
        block = np.asarray(getattr(split, name))
        if block.size == 0:
            raise ValueError(f"the split's {name} block is empty.")
        if block.min() < 0 or block.max() >= n_volumes:
            raise ValueError(
                f"the split's {name} block indexes volumes outside 0..{n_volumes - 1}.")


def _effective_window(split, window_trs):
    runs = getattr(split, "runs", None) or [split]
    window = min([int(window_trs)] + [min(len(r.train), len(r.validation)) for r in runs])
    if window < int(window_trs):
        logger.warning("window_trs lowered from %d to %d to fit the shortest block.",
                       window_trs, window)
    return window


@dataclass
class _FitSetup:
    features: np.ndarray
    bold: np.ndarray
    tr_s: float
    history: int
    window: int
    device: torch.device
    rng: np.random.Generator
    train: np.ndarray
    bipartite: np.ndarray
    bold_edges: np.ndarray


@dataclass
class RunsSplit:
    """Several runs (participants) concatenated along the volume axis, for one model.

    Made by :func:`concatenate_runs`. ``train``, ``validation`` and ``test`` are the union of
    the runs' blocks in the concatenated volume order (for the graphs and the feature
    standardisation); windows are made per run (:func:`split_windows`), so no window crosses
    from one run into another: a window's history before its run's start is absent.

    Attributes
    ----------
    train, validation, test : ndarray of int
    history : int
        K, the same for every run.
    tr_s : float
        The runs' repetition time, s.
    offsets : list of int
        First concatenated volume of each run.
    runs : list
        Each run's own split (``train``, ``validation``, ``test``, local indices).
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    history: int
    tr_s: float
    offsets: list
    runs: list


def concatenate_runs(runs):
    """Put several runs on one volume axis for training one model across them.

    Parameters
    ----------
    runs : sequence of (features, bold, split)
        ``features`` (N, V_r, n_bands, n_features), ``bold`` (M, V_r), and a split with
        ``train``, ``validation``, ``test``, ``history`` and ``tr_s``
        (:class:`samba_bids.alignment.Split`); same N, M, bands, K and TR in every run.

    Returns
    -------
    features : ndarray, shape (N, sum V_r, n_bands, n_features)
    bold : ndarray, shape (M, sum V_r)
    split : RunsSplit

    Raises
    ------
    ValueError
        If no run is given or the runs differ in parcels, bands, K or TR.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("concatenate_runs needs at least one run.")
    shapes = {(f.shape[0], f.shape[2:], b.shape[0]) for f, b, _ in runs}
    histories = {int(s.history) for _, _, s in runs}
    trs = {round(float(s.tr_s), 6) for _, _, s in runs}
    if len(shapes) != 1 or len(histories) != 1 or len(trs) != 1:
        raise ValueError(
            "the runs differ in parcels, bands, HRF history or TR "
            f"({sorted(map(str, shapes))}, K {sorted(histories)}, TR {sorted(trs)} s); one "
            "model needs the same atlases, settings and TR in every run.")
    offsets = np.cumsum([0] + [f.shape[1] for f, _, _ in runs[:-1]]).tolist()

    def union(name):
        return np.concatenate([np.asarray(getattr(s, name)) + o
                               for (_, _, s), o in zip(runs, offsets)])

    split = RunsSplit(train=union("train"), validation=union("validation"), test=union("test"),
                      history=histories.pop(), tr_s=float(runs[0][2].tr_s), offsets=offsets,
                      runs=[s for _, _, s in runs])
    features = np.concatenate([np.asarray(f) for f, _, _ in runs], axis=1)
    bold = np.concatenate([np.asarray(b) for _, b, _ in runs], axis=1)
    return features, bold, split


def split_windows(split, name, history, window_trs, *, tile=False):
    """Windows of a split's block: :func:`make_windows`, per run for a :class:`RunsSplit`.

    A run's windows are shifted to the concatenated volume axis; history before the run's
    first volume stays absent (-1), never the end of the run before it.
    """
    if not isinstance(split, RunsSplit):
        return make_windows(getattr(split, name), history, window_trs, tile=tile)
    parts = []
    for offset, run in zip(split.offsets, split.runs):
        local = make_windows(getattr(run, name), history, window_trs, tile=tile)
        parts.append(np.where(local >= 0, local + offset, -1))
    return np.concatenate(parts)


def init_distributed():
    """Join the torch.distributed process group that ``torchrun`` describes, if any.

    ``torchrun --nproc-per-node G samba-bids ... group --group-model`` (or several nodes with
    ``--nnodes``) sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous; each
    process then uses GPU ``LOCAL_RANK`` with the NCCL backend, or the CPU with gloo.

    Returns
    -------
    world : int
        Processes in the group (1 without torchrun).
    rank : int
    """
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return _distributed()


def _distributed():
    """(world size, rank) of the torch.distributed process group; (1, 0) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _data_parallel(model, device):
    """``model`` wrapped in DistributedDataParallel inside a process group, else itself.

    Under ``torchrun`` (or any initialised process group: NCCL on GPUs, gloo on CPUs) each
    process trains on its share of every batch and DDP averages the gradients, so the
    replicas stay identical; one process per GPU, on one node or several.
    """
    world, _ = _distributed()
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def _setup_fit(features, bold, split, src_centroids_mm, bold_centroids_mm, config, tr_s):
    """Checks, seeds, device, and the graphs from training volumes (shared by both
    directions)."""
    features = np.asarray(features, dtype=float)
    bold = np.asarray(bold, dtype=float)
    src_centroids_mm = np.asarray(src_centroids_mm, dtype=float)
    bold_centroids_mm = np.asarray(bold_centroids_mm, dtype=float)
    _check_inputs(features, bold, split, src_centroids_mm, bold_centroids_mm)
    tr_s = _resolve_tr(tr_s, split, config)
    device = resolve_device(config.device)
    seed_everything(int(config.seed))
    train = np.asarray(split.train)
    bipartite, bold_edges = build_graphs(
        src_centroids_mm, bold_centroids_mm, broadband_log_power(features[:, train]),
        bold[:, train], config.k_spatial, config.k_functional, tr_s=tr_s,
        hrf_support_s=config.hrf_support_s)
    return _FitSetup(features=features, bold=bold, tr_s=tr_s, history=int(split.history),
                     window=_effective_window(split, config.window_trs), device=device,
                     rng=np.random.default_rng(int(config.seed)), train=train,
                     bipartite=bipartite, bold_edges=bold_edges)


def fit_samba(features, bold, split, src_centroids_mm, bold_centroids_mm, config, *,
              tr_s: float | None = None, progress: bool = False) -> FitResult:
    """Train SAMBA with early stopping on the validation block.

    Parameters
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features per source parcel and volume
        (:func:`~samba_bids.model.wavelet.wavelet_band_features`).
    bold : ndarray, shape (M, V)
        Parcel BOLD, z-scored with training-block statistics.
    split : object
        ``train``, ``validation`` (contiguous sorted volume indices) and ``history`` (K)
        attributes (``samba_bids.alignment.Split``); ``tr_s`` is read from it when present.
        A :class:`RunsSplit` (:func:`concatenate_runs`) trains one model across runs.
    src_centroids_mm : ndarray, shape (N, 3)
        Source parcel centroids, in mm.
    bold_centroids_mm : ndarray, shape (M, 3)
        BOLD parcel centroids, in mm, same space.
    config : samba_bids.config.Config
        Model and training settings: hidden_size, rnn, gat_heads,
        k_spatial, k_functional, dropout, the ablation flags use_wavelet_attention, use_graph
        and learn_hrf, device, seed, max_epochs, patience, batch_size,
        learning_rate, weight_decay, mse_weight, hrf_support_s, window_trs (and
        repetition_time_s when ``tr_s`` is not given).
    tr_s : float, optional
        Repetition time, in s; default ``split.tr_s``, then ``config.repetition_time_s``.
    progress : bool
        Show a tqdm bar over epochs with the losses.

    Returns
    -------
    FitResult
        ``graphs`` holds the training-data graphs also when ``config.use_graph`` is False
        (the model does not use them then).

    Raises
    ------
    ValueError
        If shapes disagree, values are not finite, the blocks are too short for one window, the
        repetition time is unknown, or the device is unavailable.
    FloatingPointError
        If a loss becomes non-finite (training diverged).

    Notes
    -----
    Feature standardisation (mean and SD per parcel, band and feature) and the graphs use the
    training volumes only and are stored in the model (buffers). AdamW with
    ``config.learning_rate`` and ``config.weight_decay`` (no decay on the HRF, gain, offset,
    embeddings, biases and norms); gradient norm clipped at :data:`MAX_GRAD_NORM`. Loss:
    :func:`pearson_loss` with ``config.mse_weight`` on the target volumes of each window.
    Early stopping after ``config.patience`` epochs without a lower validation loss; the best
    epoch's weights are restored. Python, NumPy and torch are seeded with ``config.seed``; on
    CPU a rerun gives the same model.
    """

    setup = _setup_fit(features, bold, split, src_centroids_mm, bold_centroids_mm, config, tr_s)
    features, bold, tr_s = setup.features, setup.bold, setup.tr_s
    history, window, device, rng = setup.history, setup.window, setup.device, setup.rng
    bipartite, bold_edges, train = setup.bipartite, setup.bold_edges, setup.train
    n_src, _, n_bands, n_features = features.shape
    n_bold = bold.shape[0]
    mean, std = features[:, train].mean(axis=1), features[:, train].std(axis=1)

    model = SAMBA(n_src, n_bold, n_bands, n_features, bipartite, bold_edges, tr_s=tr_s,
                  history=history, hidden_size=config.hidden_size, rnn=config.rnn,
                  gat_heads=config.gat_heads, dropout=config.dropout,
                  hrf_support_s=config.hrf_support_s,
                  use_wavelet_attention=getattr(config, "use_wavelet_attention", True),
                  use_graph=getattr(config, "use_graph", True),
                  learn_hrf=getattr(config, "learn_hrf", True))
    model.set_standardization(mean, std)
    model.to(device)
    n_parameters = model.n_parameters()

    train_windows = split_windows(split, "train", history, window)
    val_windows = split_windows(split, "validation", history, window, tile=True)
    x_all = torch.as_tensor(features, dtype=torch.float32, device=device)
    y_all = torch.as_tensor(bold, dtype=torch.float32, device=device)
    net = _data_parallel(model, device)
    logger.info(
        "SAMBA: %d source -> %d BOLD parcels, %d parameters, %d training / %d validation "
        "windows of %d + %d TRs, device %s", n_src, n_bold, n_parameters, len(train_windows),
        len(val_windows), history, window, device)

    def batch_loss(idx):
        x, mask, y = _batch(x_all, y_all, idx, history)
        forward = net if model.training else model  # DDP synchronises gradients in training
        return pearson_loss(forward(x, mask=mask)[..., history:], y,
                            mse_weight=config.mse_weight)

    val_score = None
    if getattr(config, "early_stopping", "loss") == "validation-r":
        val_score = _block_r_score(model, features, bold, split, history, window, device)
    history_frame, best_epoch, best_loss = _train_epochs(
        model, batch_loss, train_windows, val_windows, config, rng, progress=progress,
        desc="SAMBA", val_score=val_score)
    model.to("cpu").eval()
    logger.info("SAMBA: best validation loss %.4f at epoch %d of %d", best_loss, best_epoch,
                len(history_frame))
    return FitResult(model=model, history=history_frame, best_epoch=best_epoch,
                     device=str(device), n_parameters=n_parameters,
                     graphs={"bipartite": bipartite, "bold": bold_edges}, window_trs=window,
                     tr_s=tr_s)


#: Names of :func:`ablation_configs` entries and the Config fields each one switches off.
ABLATIONS = {
    "samba": {},
    "no-wavelet-attention": {"use_wavelet_attention": False},
    "no-graph": {"use_graph": False},
    "fixed-hrf": {"learn_hrf": False},
}


def ablation_configs(config) -> dict:
    """The full model and its ablations, as configurations that differ in one flag each.

    Parameters
    ----------
    config : samba_bids.config.Config
        Settings shared by all variants (its own ablation flags are overridden).

    Returns
    -------
    dict of str to Config
        ``"samba"`` (every flag True), ``"no-wavelet-attention"`` (``use_wavelet_attention``
        False: uniform average over bands), ``"no-graph"`` (``use_graph`` False: dense N -> M
        map per TR segment), ``"fixed-hrf"`` (``learn_hrf`` False: SPM canonical HRF), in this
        order. Same seed, split settings and training settings as ``config``.
    """
    full = {"use_wavelet_attention": True, "use_graph": True, "learn_hrf": True}
    return {name: dataclasses.replace(config, **{**full, **off})
            for name, off in ABLATIONS.items()}


def reverse_windows(split_block, lookahead: int, window_trs: int, n_volumes: int, *,
                    tile: bool = False) -> np.ndarray:
    """Windows for the reverse direction: W target volumes inside one block, then K ahead.

    The mirror image of :func:`make_windows`: the K volumes after the last target reach into
    the gap after the block (K volumes long, so never into another block's targets) or past
    the end of the run, where indices are -1 (absent: zero BOLD).

    Parameters
    ----------
    split_block : array_like of int
        The block's volume indices (sorted, contiguous).
    lookahead : int
        K: volumes after the last target of a window.
    window_trs : int
        W: targets per window (the window's first W volumes).
    n_volumes : int
        Volumes in the run.
    tile : bool
        As :func:`make_windows`.

    Returns
    -------
    ndarray of int, shape (n_windows, W + K)
        Volume indices (-1 past the end of the run); the targets are ``windows[:, :W]``.

    Raises
    ------
    ValueError
        As :func:`make_windows`.
    """
    block = np.asarray(split_block, dtype=np.int64).ravel()
    last = int(n_volumes) - 1
    mirrored = make_windows(last - block[::-1], lookahead, window_trs, tile=tile)
    windows = (last - mirrored)[::-1, ::-1]
    windows[windows > last] = -1
    return np.ascontiguousarray(windows)


def _reverse_batch(bold_all, power_all, windows, window_trs):
    """BOLD (B, M, L), presence mask (B, L) and band-power targets (B, N, W, bands)."""
    idx = torch.as_tensor(windows, device=bold_all.device)
    mask = idx >= 0
    bold = bold_all[:, idx.clamp(min=0)].permute(1, 0, 2)
    power = None
    if power_all is not None:
        power = power_all[:, idx[:, :window_trs]].permute(1, 0, 2, 3)
    return bold, mask, power


def fit_reverse(features, bold, split, src_centroids_mm, bold_centroids_mm, config, *,
                tr_s: float | None = None, progress: bool = False) -> FitResult:
    """Train the reverse translator (BOLD -> source-parcel band power), early stopping on the
    validation block.

    Parameters
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features (:func:`~samba_bids.model.wavelet.wavelet_band_features`); the
        targets are ``features[..., 0]``, the log mean power of each band per volume.
    bold : ndarray, shape (M, V)
        Parcel BOLD, z-scored with training-block statistics (the input).
    split, src_centroids_mm, bold_centroids_mm, config, tr_s, progress
        As :func:`fit_samba` (same graphs, seeds, optimiser and early stopping).

    Returns
    -------
    FitResult
        ``model`` is a :class:`~samba_bids.model.reverse.SAMBAReverse`.

    Raises
    ------
    ValueError, FloatingPointError
        As :func:`fit_samba`.

    Notes
    -----
    Loss: mean over windows, source parcels and bands of ``1 - r`` over the target volumes
    (plus ``config.mse_weight`` times the MSE of the training-standardised band power).
    """
    from .model.reverse import SAMBAReverse

    setup = _setup_fit(features, bold, split, src_centroids_mm, bold_centroids_mm, config, tr_s)
    power = setup.features[..., 0]  # (N, V, bands)
    n_src, n_volumes, n_bands = power.shape
    lookahead, window = setup.history, setup.window
    model = SAMBAReverse(setup.bold.shape[0], n_src, n_bands, setup.bipartite,
                         setup.bold_edges, lookahead=lookahead, hidden_size=config.hidden_size,
                         gat_heads=config.gat_heads, dropout=config.dropout)
    model.set_standardization(power[:, setup.train].mean(axis=1),
                              power[:, setup.train].std(axis=1))
    model.to(setup.device)
    bold_all = torch.as_tensor(setup.bold, dtype=torch.float32, device=setup.device)
    power_all = model.standardize(torch.as_tensor(power, dtype=torch.float32,
                                                  device=setup.device))
    train_windows = reverse_windows(setup.train, lookahead, window, n_volumes)
    val_windows = reverse_windows(split.validation, lookahead, window, n_volumes, tile=True)
    logger.info("SAMBA reverse: %d BOLD -> %d source parcels x %d bands, %d parameters, "
                "%d training / %d validation windows of %d + %d volumes, device %s",
                setup.bold.shape[0], n_src, n_bands, model.n_parameters(), len(train_windows),
                len(val_windows), window, lookahead, setup.device)

    def batch_loss(idx):
        x, mask, y = _reverse_batch(bold_all, power_all, idx, window)
        pred = model(x, mask=mask)[:, :, :window]  # (B, N, W, bands)
        return pearson_loss(pred.permute(0, 1, 3, 2).flatten(1, 2),
                            y.permute(0, 1, 3, 2).flatten(1, 2), mse_weight=config.mse_weight)

    history_frame, best_epoch, best_loss = _train_epochs(
        model, batch_loss, train_windows, val_windows, config, setup.rng, progress=progress,
        desc="SAMBA reverse")
    model.to("cpu").eval()
    logger.info("SAMBA reverse: best validation loss %.4f at epoch %d of %d", best_loss,
                best_epoch, len(history_frame))
    return FitResult(model=model, history=history_frame, best_epoch=best_epoch,
                     device=str(setup.device), n_parameters=model.n_parameters(),
                     graphs={"bipartite": setup.bipartite, "bold": setup.bold_edges},
                     window_trs=window, tr_s=setup.tr_s)


@torch.no_grad()
def predict_reverse(model, bold, *, window_trs: int, device="cpu",
                    batch_size: int = 16) -> np.ndarray:
    """Predicted log band power of every source parcel, band and volume of a run.

    Parameters
    ----------
    model : samba_bids.model.reverse.SAMBAReverse
        A fitted reverse model.
    bold : ndarray, shape (M, V)
        Parcel BOLD, standardised as in training.
    window_trs : int
        W targets per window (shortened to V for short runs).
    device : str or torch.device
    batch_size : int

    Returns
    -------
    ndarray, shape (N, V, n_bands), float64
        In the units of ``features[..., 0]`` (natural log of the mean band power).

    Raises
    ------
    ValueError
        If ``bold`` does not have the model's M parcels.
    """
    bold = np.asarray(bold, dtype=np.float32)
    if bold.ndim != 2 or bold.shape[0] != model.n_bold:
        raise ValueError(f"bold must be ({model.n_bold}, V); got {bold.shape}.")
    n_volumes = bold.shape[1]
    window = max(1, min(int(window_trs), n_volumes))
    device = resolve_device(device)
    original, was_training = next(model.parameters()).device, model.training
    model.to(device).eval()
    bold_all = torch.as_tensor(bold, device=device)
    windows = reverse_windows(np.arange(n_volumes), model.lookahead, window, n_volumes,
                              tile=True)
    out = np.zeros((model.n_src, n_volumes, model.hparams["n_bands"]))
    try:
        for first in range(0, len(windows), batch_size):
            chunk = windows[first:first + batch_size]
            x, mask, _ = _reverse_batch(bold_all, None, chunk, window)
            pred = model.unstandardize(model(x, mask=mask)[:, :, :window])  # (B, N, W, bands)
            out[:, chunk[:, :window].ravel()] = (pred.permute(1, 0, 2, 3)
                                                 .reshape(model.n_src, -1, pred.shape[-1])
                                                 .double().cpu().numpy())
    finally:
        model.to(original)
        model.train(was_training)
    return out


def _train_epochs(model, batch_loss, train_windows, val_windows, config, rng, *,
                  progress=False, desc="SAMBA", val_score=None):
    """Epochs of AdamW over shuffled training windows, early stopping on the validation loss.

    Inside a torch.distributed process group each batch of ``batch_size`` windows per process
    is split over the processes (the shuffling is seeded alike everywhere), DDP averages the
    gradients, and every process evaluates the whole validation block, so all replicas make
    the same early-stopping decision. One batch of ``batch_size * world`` windows then equals
    one single-process batch of that size.

    ``batch_loss(windows) -> scalar Tensor`` computes the loss of a batch of windows with the
    model in its current mode. The model ends holding the best validation epoch's weights.
    ``val_score() -> float`` (optional; higher is better, the model in eval mode) replaces the
    validation loss as the early-stopping criterion.

    Returns
    -------
    history : pandas.DataFrame
        ``epoch``, ``train_loss``, ``val_loss``, ``seconds`` per epoch (and ``val_score``
        with ``val_score``).
    best_epoch : int
    best_loss : float

    Raises
    ------
    FloatingPointError
        If a loss becomes non-finite.
    """
    from tqdm.auto import tqdm

    optimizer = _make_optimizer(model, config)
    batch_size = int(config.batch_size)
    world, rank = _distributed()
    rows = []
    best_loss, best_epoch, best_state, stale = np.inf, 0, None, 0
    best_criterion = np.inf
    bar = tqdm(range(1, int(config.max_epochs) + 1), desc=desc, unit="epoch",
               disable=not progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_windows))  # the same on every process (same seed)
        losses = []
        for first in range(0, len(order), batch_size * world):
            chunk = order[first:first + batch_size * world]
            if world > 1:  # this process's share; every process must take a step
                if len(chunk) < world:
                    break
                chunk = np.array_split(chunk, world)[rank]
            optimizer.zero_grad(set_to_none=True)
            loss = batch_loss(train_windows[chunk])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            losses.append(float(loss.detach()))
        train_loss = _mean_over_processes(float(np.mean(losses)), world)
        model.eval()
        with torch.no_grad():
            val_loss = sum(float(batch_loss(val_windows[first:first + batch_size]))
                           * len(val_windows[first:first + batch_size])
                           for first in range(0, len(val_windows), batch_size))
        val_loss /= len(val_windows)
        score = float(val_score()) if val_score is not None else np.nan
        if not (np.isfinite(train_loss) and np.isfinite(val_loss)):
            raise FloatingPointError(
                f"{desc} training diverged at epoch {epoch} (train loss {train_loss}, "
                f"validation loss {val_loss}); lower learning_rate (now "
                f"{config.learning_rate}).")
        seconds = time.perf_counter() - start
        rows.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                     "val_score": score, "seconds": seconds})
        criterion = -score if val_score is not None else val_loss
        if criterion < best_criterion:
            best_criterion, best_loss, best_epoch, stale = criterion, val_loss, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                        model.state_dict().items()})
        else:
            stale += 1
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}", best=best_epoch)
        logger.debug("epoch %d: train %.4f, validation %.4f (%.2f s)", epoch, train_loss,
                     val_loss, seconds)
        if stale >= int(config.patience):
            logger.info("early stop at epoch %d: no better validation %s for %d epochs",
                        epoch, "loss" if val_score is None else "score", stale)
            break
    bar.close()
    model.load_state_dict(best_state)
    columns = ["epoch", "train_loss", "val_loss", "seconds"]
    if val_score is not None:
        columns.insert(3, "val_score")
    history = pd.DataFrame(rows, columns=columns)
    return history, best_epoch, float(best_loss)


def _block_r_score(model, features, bold, split, history, window, device):
    """``score() -> float``: median over BOLD parcels of the Pearson r of the predicted and
    observed BOLD over the whole validation block (the test metric, on validation volumes).

    The run is predicted as :func:`predict_run` predicts it (windows tiling the run, zero
    history before the recording); only validation volumes are scored. For runs concatenated
    by :func:`concatenate_runs`, each run is predicted on its own."""
    from .metrics import _rowwise_pearson

    volumes = np.asarray(split.validation, dtype=int)
    starts = list(getattr(split, "offsets", [0])) + [features.shape[1]]

    def score() -> float:
        predicted = np.concatenate([
            predict_run(model, features[:, a:b], history=history, window_trs=window,
                        device=device) for a, b in zip(starts[:-1], starts[1:])], axis=1)
        r = _rowwise_pearson(predicted[:, volumes], np.asarray(bold)[:, volumes])
        return float(np.nanmedian(r))

    return score


def _mean_over_processes(value: float, world: int) -> float:
    """Mean of a float over the processes of the group (itself without one)."""
    if world == 1:
        return value
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor[0]) / world


def _make_optimizer(model, config):
    hrf, no_decay, decay = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:  # frozen (the fixed-HRF ablation)
            continue
        if name.startswith("hrf."):
            hrf.append(parameter)
        elif (parameter.ndim < 2 or "embedding" in name or name in ("gain", "offset")
              or "norm" in name):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    lr = float(config.learning_rate)
    return torch.optim.AdamW([
        {"params": decay, "weight_decay": float(config.weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": hrf, "weight_decay": 0.0},
    ], lr=lr)


def _batch(x_all, y_all, windows, history):
    """Features, presence mask and targets of a batch of windows.

    Parameters
    ----------
    x_all : Tensor, shape (N, V, n_bands, n_features)
    y_all : Tensor, shape (M, V) or None
    windows : ndarray of int, shape (B, L)
        From :func:`make_windows`; negative indices are before the recording start.
    history : int

    Returns
    -------
    x : Tensor, shape (B, N, L, n_bands, n_features)
    mask : Tensor of bool, shape (B, L)
        False before the recording start (the model zeroes those segments).
    y : Tensor, shape (B, M, W) or None
    """
    idx = torch.as_tensor(windows, device=x_all.device)
    mask = idx >= 0
    x = x_all[:, idx.clamp(min=0)].permute(1, 0, 2, 3, 4)
    y = None if y_all is None else y_all[:, idx[:, history:]].permute(1, 0, 2)
    return x, mask, y


@torch.no_grad()
def evaluate_loss(model, x_all, y_all, windows, history, *, mse_weight=0.0,
                  batch_size=8) -> float:
    """Mean :func:`pearson_loss` over windows (eval mode), weighted by windows per batch."""
    model.eval()
    total = 0.0
    for first in range(0, len(windows), batch_size):
        idx = windows[first:first + batch_size]
        x, mask, y = _batch(x_all, y_all, idx, history)
        total += float(pearson_loss(model(x, mask=mask)[..., history:], y,
                                    mse_weight=mse_weight)) * len(idx)
    return total / len(windows)


@torch.no_grad()
def predict_run(model: SAMBA, features, *, history: int, window_trs: int, device="cpu",
                batch_size: int = 16, return_attention: bool = False):
    """Predicted BOLD for every volume of a run.

    Windows of ``history + W`` segments tile the run (:func:`make_windows` with ``tile=True``);
    segments before the recording start are absent (zero drive: zero history), so each volume
    is predicted from the electrophysiology at and before it, as in training.

    Parameters
    ----------
    model : SAMBA
        A fitted model (its stored standardisation is applied).
    features : ndarray, shape (N, V, n_bands, n_features)
        Raw band features of the whole run.
    history : int
        K, as in training.
    window_trs : int
        W targets per window (shortened to V for short runs).
    device : str or torch.device
        Where to compute (``"auto"`` allowed); the model is returned to its original device.
    batch_size : int
        Windows per forward pass.

    return_attention : bool
        Also return the wavelet attention (:class:`~.model.wavelet.WaveletAttention`) averaged
        over every predicted volume's segment, per source parcel and band.

    Returns
    -------
    predicted : ndarray, shape (M, V), float64
    attention : ndarray, shape (N, n_bands), float64
        Only with ``return_attention``; rows sum to 1.

    Raises
    ------
    ValueError
        If the features' shape does not match the model.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 4 or features.shape[0] != model.n_src:
        raise ValueError(f"features must be ({model.n_src}, V, n_bands, n_features); got "
                         f"{features.shape}.")
    history = int(history)
    n_volumes = features.shape[1]
    if n_volumes < 1:
        raise ValueError("features hold no volumes.")
    window = max(1, min(int(window_trs), n_volumes))
    device = resolve_device(device)
    original = next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()

    x_all = torch.as_tensor(features, device=device)
    windows = make_windows(np.arange(n_volumes), history, window, tile=True)
    out = np.zeros((model.n_bold, n_volumes))
    attention_sum, n_attended = 0.0, 0
    try:
        for first in range(0, len(windows), batch_size):
            chunk = windows[first:first + batch_size]
            x, mask, _ = _batch(x_all, None, chunk, history)
            pred = model(x, mask=mask)[..., history:]
            out[:, chunk[:, history:].ravel()] = (pred.permute(1, 0, 2)
                                                  .reshape(model.n_bold, -1)
                                                  .double().cpu().numpy())
            if return_attention:  # (B, N, L, n_bands): the target segments only
                weights = model.wavelet_attention.last_attention[:, :, history:]
                attention_sum = attention_sum + weights.double().sum(dim=(0, 2)).cpu().numpy()
                n_attended += weights.shape[0] * weights.shape[2]
    finally:
        model.to(original)
        model.train(was_training)
    if return_attention:
        return out, attention_sum / max(n_attended, 1)
    return out
