"""Windows of TR segments and the splits they are cut from.

A window is ``L = history + W`` consecutive TR segments inside one block; its last ``W``
volumes are the targets, so each target has its full HRF history (``history`` = K segments)
inside the same block. The reverse direction mirrors it (:func:`reverse_windows`). Several
runs share one volume axis through :func:`concatenate_runs`; their windows never cross from one
run into another (:func:`split_windows`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

logger = logging.getLogger(__name__)


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



def _effective_window(split, window_trs):
    runs = getattr(split, "runs", None) or [split]
    window = min([int(window_trs)] + [min(len(r.train), len(r.validation)) for r in runs])
    if window < int(window_trs):
        logger.warning("window_trs lowered from %d to %d to fit the shortest block.",
                       window_trs, window)
    return window



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

def split_reverse_windows(split, name, lookahead, window_trs, n_volumes, *, tile=False):
    """Reverse-direction windows of a split's block: :func:`reverse_windows`, per run for a
    :class:`RunsSplit`.

    A run's windows are shifted to the concatenated volume axis; the K volumes after a
    window that reach past its run's last volume are absent (-1), never the start of the run
    after it. ``n_volumes``: volumes on the (concatenated) axis.
    """
    if not isinstance(split, RunsSplit):
        return reverse_windows(getattr(split, name), lookahead, window_trs, n_volumes,
                               tile=tile)
    ends = list(split.offsets[1:]) + [int(n_volumes)]
    parts = []
    for offset, end, run in zip(split.offsets, ends, split.runs):
        local = reverse_windows(getattr(run, name), lookahead, window_trs, end - offset,
                                tile=tile)
        parts.append(np.where(local >= 0, local + offset, -1))
    return np.concatenate(parts)


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

