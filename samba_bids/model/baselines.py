"""Baselines for SAMBA on the same split: canonical-HRF band-power ridge regression.

The standard EEG-informed fMRI model (Goldman et al. 2002, NeuroReport 13:2487; Laufs et al.
2003, PNAS 100:11053) predicts BOLD from electrophysiological band-power envelopes convolved
with a canonical HRF. Here every source parcel's log band power in every wavelet band is one
regressor, all BOLD parcels are fitted jointly by ridge regression (Hoerl & Kennard 1970,
Technometrics 12:55) and the penalty is chosen on the validation block. The same fit
restricted to a source -> BOLD graph (each BOLD parcel on the bands of its source parcels in
SAMBA's bipartite graph: ``edge_index``) is the "graph ridge", the initialisation of SAMBA's
linear path (:meth:`~.samba.SAMBA.init_linear_path`). SAMBA's ablations (no wavelet
attention, no graph, fixed HRF, linear path only) are flags of :class:`~.samba.SAMBA`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .hrf import canonical_kernel  # noqa: F401 (also a public name of this module)
from .wavelet import FEATURE_NAMES

logger = logging.getLogger(__name__)

#: Default ridge penalties: a log grid from 1e-2 to 1e5 (15 values).
DEFAULT_ALPHAS = np.logspace(-2, 5, 15)
#: Penalty grid with a prior (:func:`fit_ridge_baseline`): the same half-decade steps, up to
#: 1e8, where the fit is the prior itself (the departure from it vanishes).
PRIOR_ALPHAS = np.logspace(-2, 8, 21)


def _band_power(features, feature_index):
    features = np.asarray(features, dtype=float)
    if features.ndim != 4:
        raise ValueError(f"features must be (N, V, n_bands, n_features); got {features.shape}.")
    if not np.isfinite(features).all():
        raise ValueError("features hold NaN or infinite values.")
    return features[..., feature_index]  # (N, V, n_bands)


@dataclass
class RidgeBaseline:
    """A fitted canonical-HRF band-power ridge regression (:func:`fit_ridge_baseline`).

    Prediction for volume ``v`` and BOLD parcel ``m``::

        z[n, b, t]  = (log_power[n, t, b] - feature_mean[n, b]) / feature_std[n, b]
        r[p, v]     = sum_{k=0..K} kernel[k] * z[p, v - k]      (p = (n, b); z = 0 for t < 0)
        x[p, v]     = (r[p, v] - regressor_mean[p]) / regressor_std[p]
        bold[m, v]  = intercept[m] + sum_p coefficients[p, m] * x[p, v]

    Attributes
    ----------
    coefficients : ndarray, shape (N * n_bands, M)
        Ridge weights on the standardised regressors, source parcel major (``p = n *
        n_bands + b``).
    intercept : ndarray, shape (M,)
        Training mean of each BOLD parcel.
    alpha : float
        Penalty chosen on the validation block.
    alphas : ndarray, shape (n_alphas,)
        The grid searched.
    validation_mse : ndarray, shape (n_alphas,)
        Mean over BOLD parcels of the validation mean squared error per penalty.
    feature_mean, feature_std : ndarray, shape (N, n_bands)
        Training statistics of the log band power (before the convolution).
    regressor_mean, regressor_std : ndarray, shape (N * n_bands,)
        Training statistics of the HRF-convolved regressors (the feature scaler).
    kernel : ndarray, shape (K + 1,)
        The canonical HRF samples (unit sum).
    tr_s : float
        Repetition time, in s.
    feature_index : int
        Which feature of :data:`~.wavelet.FEATURE_NAMES` is the band power (0: log mean
        power).
    prior : ndarray, shape (N * n_bands, M), or None
        The coefficients (on the standardised regressors) the fit was shrunk toward, when
        it had a prior.
    """

    coefficients: np.ndarray
    intercept: np.ndarray
    alpha: float
    alphas: np.ndarray
    validation_mse: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    regressor_mean: np.ndarray
    regressor_std: np.ndarray
    kernel: np.ndarray
    tr_s: float
    feature_index: int = 0
    prior: np.ndarray | None = None

    @property
    def raw_coefficients(self) -> np.ndarray:
        """The coefficients on the HRF-convolved log band power before either
        standardisation, shape (N * n_bands, M): ``coefficients[p] / (feature_std[p] *
        regressor_std[p])``. Fits on other data (another participant, other training
        volumes) share these units, so they can serve as another fit's ``prior``."""
        scale = self.feature_std.reshape(-1) * self.regressor_std
        return self.coefficients / scale[:, None]

    @property
    def n_parameters(self) -> int:
        """Fitted weights (the nonzero ones: a graph ridge has none off its graph) and
        intercepts."""
        return int(np.count_nonzero(self.coefficients) + self.intercept.size)

    def regressors(self, features) -> np.ndarray:
        """Standardised HRF-convolved band-power regressors of a whole run.

        Parameters
        ----------
        features : ndarray, shape (N, V, n_bands, n_features)
            :func:`~.wavelet.wavelet_band_features` of every volume of the run, in order
            (the convolution runs over the volumes; zero history before the first).

        Returns
        -------
        ndarray, shape (V, N * n_bands)
        """
        power = _band_power(features, self.feature_index)
        if power.shape[0::2] != self.feature_mean.shape:
            raise ValueError(f"features have {power.shape[0]} parcels x {power.shape[2]} bands; "
                             f"the baseline was fitted on {self.feature_mean.shape}.")
        return _regressors(power, self.feature_mean, self.feature_std, self.kernel,
                           self.regressor_mean, self.regressor_std)

    def predict(self, features) -> np.ndarray:
        """Predicted BOLD for every volume of a run.

        Parameters
        ----------
        features : ndarray, shape (N, V, n_bands, n_features)

        Returns
        -------
        ndarray, shape (M, V)
            In the units of the training target.
        """
        return (self.regressors(features) @ self.coefficients + self.intercept).T


def _regressors(power, mean, std, kernel, regressor_mean=None, regressor_std=None,
                offsets=None):
    z = (power - mean[:, None, :]) / std[:, None, :]  # (N, V, n_bands)
    z = z.transpose(1, 0, 2).reshape(z.shape[1], -1)  # (V, P), source parcel major
    # causal FIR, zero initial state at the start of every run (no history across runs)
    bounds = [*sorted(offsets or [0]), z.shape[0]]
    convolved = np.concatenate([lfilter(kernel, [1.0], z[a:b], axis=0)
                                for a, b in zip(bounds[:-1], bounds[1:])])
    if regressor_mean is None:
        return convolved
    return (convolved - regressor_mean) / regressor_std


def _scale(values, axis):
    mean = values.mean(axis=axis)
    std = values.std(axis=axis)
    return mean, np.where(std > 1e-12, std, 1.0)


def _ridge_path(x, y, train, validation, alphas):
    """The validation MSE (mean over parcels) of every penalty and the coefficients (P, M)
    of the best, all parcels at once through one thin SVD of the training design."""
    u, s, vt = np.linalg.svd(x[train], full_matrices=False)
    uty = u.T @ y[train]  # (r, M)
    x_val_v = x[validation] @ vt.T  # (Tv, r)
    validation_mse = np.empty(alphas.size)
    for i, alpha in enumerate(alphas):
        shrunk = (s / (s**2 + alpha))[:, None] * uty
        validation_mse[i] = float(np.mean((x_val_v @ shrunk - y[validation]) ** 2))
    best = int(np.argmin(validation_mse))
    return validation_mse, vt.T @ ((s / (s**2 + alphas[best]))[:, None] * uty)


def _graph_ridge_path(x, y, train, validation, alphas, edge_index, n_bands):
    """:func:`_ridge_path` with each BOLD parcel fitted on its source parcels' regressors
    (one SVD per parcel)."""
    edge_index = np.asarray(edge_index, dtype=np.int64)
    n_src, n_bold = x.shape[1] // n_bands, y.shape[1]
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be (2, E); got {edge_index.shape}.")
    if (edge_index.min(initial=0) < 0 or edge_index[0].max(initial=0) >= n_src
            or edge_index[1].max(initial=0) >= n_bold):
        raise ValueError(f"edge_index must index {n_src} source and {n_bold} BOLD parcels.")
    coefficients = np.zeros((alphas.size, x.shape[1], n_bold))
    squared_error = np.zeros(alphas.size)
    for m in range(n_bold):
        sources = np.unique(edge_index[0, edge_index[1] == m])
        if sources.size == 0:
            raise ValueError(f"BOLD parcel {m} has no incoming edge.")
        columns = (sources[:, None] * n_bands + np.arange(n_bands)).ravel()
        u, s, vt = np.linalg.svd(x[np.ix_(train, columns)], full_matrices=False)
        uty = u.T @ y[train, m]
        x_val_v = x[np.ix_(validation, columns)] @ vt.T
        shrunk = (s / (s[None] ** 2 + alphas[:, None])) * uty  # (n_alphas, r)
        squared_error += ((shrunk @ x_val_v.T - y[validation, m]) ** 2).sum(axis=1)
        coefficients[:, columns, m] = shrunk @ vt
    validation_mse = squared_error / (len(validation) * n_bold)
    return validation_mse, coefficients[int(np.argmin(validation_mse))]


def fit_ridge_baseline(features, bold, split, *, tr_s: float, alphas=None,
                       hrf_support_s: float = 32.0, feature: str = "log_mean_power",
                       edge_index=None, prior=None) -> RidgeBaseline:
    """Fit the canonical-HRF band-power ridge regression with the penalty chosen on validation.

    Parameters
    ----------
    features : ndarray, shape (N, V, n_bands, n_features)
        Wavelet band features of every volume of the run
        (:func:`~samba_bids.model.wavelet.wavelet_band_features`); the ``feature`` column
        (default the log mean coefficient power per band and TR segment) is the band-power
        envelope.
    bold : ndarray, shape (M, V)
        Parcel BOLD (z-scored with training statistics, as for SAMBA).
    split : samba_bids.alignment.Split or similar
        ``train`` and ``validation`` volume indices; ``test`` is never read. A
        :class:`~samba_bids.training.RunsSplit` (several runs on one volume axis): the
        convolution restarts at each run's first volume (``offsets``).
    tr_s : float
        Repetition time, in s: the canonical HRF is sampled at ``k * tr_s``, ``k = 0..K``,
        ``K = ceil(hrf_support_s / tr_s)``.
    alphas : array_like of float, optional
        Ridge penalties to try (on standardised regressors; the penalty is on the sum of
        squared weights, the loss the sum of squared errors over training volumes).
        Default :data:`DEFAULT_ALPHAS`, with ``prior`` :data:`PRIOR_ALPHAS`.
    hrf_support_s : float
        Support of the canonical HRF, in s.
    feature : str
        Name in :data:`~samba_bids.model.wavelet.FEATURE_NAMES`.
    edge_index : array_like of int, shape (2, E), optional
        Source parcel (row 0) -> BOLD parcel (row 1) edges, such as SAMBA's bipartite graph
        (:func:`~.graph.build_graphs`): each BOLD parcel is then fitted on the bands of its
        source parcels only (a ridge per parcel; the other coefficients are zero). Every
        BOLD parcel needs an edge. Default: every source parcel for every BOLD parcel.
    prior : ndarray, shape (N * n_bands, M), optional
        Coefficients to shrink toward instead of zero, on the HRF-convolved log band power
        before standardisation (:attr:`RidgeBaseline.raw_coefficients` of another fit, or
        :meth:`~.samba.SAMBA.linear_path_coefficients` of a model trained on other
        participants): the penalty is ``alpha * sum (C - C0)^2`` (step 7). Entries off the
        graph of ``edge_index`` are dropped.

    Returns
    -------
    RidgeBaseline

    Raises
    ------
    ValueError
        If shapes disagree, values are not finite, a block is empty or out of range, or a
        penalty is not positive.

    Notes
    -----
    1. The log band power is standardised per source parcel and band with training-volume
       statistics, so "zero history before the recording start" means the training mean.
    2. Each series is convolved causally (``scipy.signal.lfilter``) over the whole run with
       SPM's canonical HRF at the TR: the regressor of volume ``v`` uses the segments
       ``v - K .. v`` only (the gap before a block, never a later volume).
    3. The regressors are standardised again with training statistics; the BOLD is centred
       with its training mean (the intercept).
    4. Ridge, closed form, all BOLD parcels at once through one thin SVD of the training
       design ``X = U S V^T``: ``W(alpha) = V diag(s / (s^2 + alpha)) U^T Y``.
    5. One penalty for all parcels: the grid value with the lowest validation mean squared
       error averaged over parcels (ties: the smallest). The weights stay those fitted on
       the training block (not refitted on train + validation, as SAMBA's).
    6. With ``edge_index``, step 4 runs per BOLD parcel on its own columns of ``X`` (the
       regressors of its source parcels): a ridge restricted to the graph, whose penalty is
       chosen as in step 5.
    7. With ``prior``: ``C0`` is the prior on this fit's standardised regressors
       (``prior[p] * feature_std[p] * regressor_std[p]``); steps 4-6 fit ``D`` to the
       residual ``Y - X C0`` and ``C = C0 + D``: ridge regression toward a prior mean, the
       posterior mean of a Gaussian prior centred on ``C0`` (Hoerl & Kennard 1970,
       Technometrics 12:55). The largest penalty of :data:`PRIOR_ALPHAS` keeps ``C0``.
    """
    if feature not in FEATURE_NAMES:
        raise ValueError(f"feature must be one of {FEATURE_NAMES}; got {feature!r}.")
    feature_index = FEATURE_NAMES.index(feature)
    power = _band_power(features, feature_index)  # (N, V, n_bands)
    bold = np.asarray(bold, dtype=float)
    n_volumes = power.shape[1]
    if bold.ndim != 2 or bold.shape[1] != n_volumes:
        raise ValueError(f"bold must be (M, V) with the features' V = {n_volumes} volumes; "
                         f"got {bold.shape}.")
    if not np.isfinite(bold).all():
        raise ValueError("bold holds NaN or infinite values.")
    if tr_s is None or float(tr_s) <= 0:
        raise ValueError(f"tr_s must be a positive repetition time in s; got {tr_s}.")
    if alphas is None:
        alphas = DEFAULT_ALPHAS if prior is None else PRIOR_ALPHAS
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise ValueError(f"alphas must be positive finite penalties; got {alphas}.")
    blocks = {}
    for name in ("train", "validation"):
        block = np.asarray(getattr(split, name), dtype=np.int64).ravel()
        if block.size == 0:
            raise ValueError(f"the split's {name} block is empty.")
        if block.min() < 0 or block.max() >= n_volumes:
            raise ValueError(f"the split's {name} block indexes volumes outside "
                             f"0..{n_volumes - 1}.")
        blocks[name] = block
    train, validation = blocks["train"], blocks["validation"]

    feature_mean, feature_std = _scale(power[:, train], axis=1)  # (N, n_bands)
    kernel = canonical_kernel(float(tr_s), hrf_support_s)
    # several runs on one volume axis (training.concatenate_runs): restart at each run
    offsets = getattr(split, "offsets", None)
    convolved = _regressors(power, feature_mean, feature_std, kernel,
                            offsets=offsets)  # (V, P)
    regressor_mean, regressor_std = _scale(convolved[train], axis=0)
    x = (convolved - regressor_mean) / regressor_std
    intercept = bold[:, train].mean(axis=1)
    y = (bold - intercept[:, None]).T  # (V, M)
    start = None
    if prior is not None:
        start = _standardised_prior(prior, feature_std.reshape(-1) * regressor_std, edge_index,
                                    power.shape[2], y.shape[1])
        y = y - x @ start

    if edge_index is None:
        validation_mse, coefficients = _ridge_path(x, y, train, validation, alphas)
    else:
        validation_mse, coefficients = _graph_ridge_path(x, y, train, validation, alphas,
                                                         edge_index, power.shape[2])
    if start is not None:
        coefficients = coefficients + start
    best = int(np.argmin(validation_mse))  # the grid's first minimum: ties to the smallest
    alpha = float(alphas[best])
    edges = (0,) if prior is not None else (0, alphas.size - 1)  # a prior's top: C0 itself
    if best in edges and alphas.size > 1:
        logger.warning("ridge baseline: the chosen penalty %g is at the edge of the grid "
                       "[%g, %g]; consider widening it.", alpha, alphas[0], alphas[-1])
    logger.info("ridge baseline: %d regressors, %d BOLD parcels, alpha %g (validation MSE "
                "%.4f)", x.shape[1], bold.shape[0], alpha, validation_mse[best])
    return RidgeBaseline(coefficients=coefficients, intercept=intercept, alpha=alpha,
                         alphas=alphas, validation_mse=validation_mse,
                         feature_mean=feature_mean, feature_std=feature_std,
                         regressor_mean=regressor_mean, regressor_std=regressor_std,
                         kernel=kernel, tr_s=float(tr_s), feature_index=feature_index,
                         prior=start)


def _standardised_prior(prior, scale, edge_index, n_bands, n_bold):
    """``prior`` (P, M) on raw convolved band power -> on the standardised regressors, off
    the graph set to zero."""
    prior = np.asarray(prior, dtype=float)
    if prior.shape != (scale.size, n_bold):
        raise ValueError(f"prior must be ({scale.size}, {n_bold}) coefficients; got "
                         f"{prior.shape}.")
    if not np.isfinite(prior).all():
        raise ValueError("prior holds NaN or infinite values.")
    start = prior * scale[:, None]
    if edge_index is not None:
        edge_index = np.asarray(edge_index, dtype=np.int64)
        on_graph = np.zeros((scale.size // n_bands, n_bold), dtype=bool)
        on_graph[edge_index[0], edge_index[1]] = True
        start = start * np.repeat(on_graph, n_bands, axis=0)
    return start
