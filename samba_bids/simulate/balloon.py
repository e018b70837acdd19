"""Nonlinear hemodynamics of the simulator: saturating coupling and the Balloon-Windkessel model.

The alternative to the linear path of :mod:`.hemodynamics` (``simulate_dataset(...,
hemodynamics="balloon")``, ``samba-bids-simulate --hemodynamics balloon``). The *drive* of BOLD
parcel m is the same as the linear path's: the planted mixing weights times the z-scored log
band power of the source parcels on the 0.1 s grid,
``x_m(t) = sum_{n,k} w_{mnk} z_{nk}(t)`` (unitless). Then:

1. **Neurovascular coupling** (:func:`neurovascular_coupling`): the neural input of the
   hemodynamics is a saturating function of the drive around the resting level ``x = 0``:

   ``u(x) = U+ tanh(g x / U+)`` for ``x >= 0``, ``u(x) = U- tanh(g x / U-)`` for ``x < 0``,

   in s^-1. Its slope at rest is ``g`` (:data:`COUPLING_SLOPE`) on both sides, and it
   saturates at ``U+ = 0.5 gamma_0`` and ``-U- = -0.2 gamma_0`` (``gamma_0`` = 0.32 s^-1, the
   mean of ``gamma``). In a steady state the flow is ``f = 1 + u / gamma``
   (``ds/dt = df/dt = 0``), so the sustained cerebral blood flow (CBF) can rise by at most
   50 % (:data:`MAX_FLOW_INCREASE`) and fall by at most 20 % (:data:`MAX_FLOW_DECREASE`)
   of rest. Both are plain modelling choices of the order of the measured extremes: focal
   CBF increases of about 50 % in stimulated human visual cortex (Fox et al. 1988, Science
   241:462) and smaller CBF decreases in deactivated cortex (Shmuel et al. 2002, Neuron
   36:1195). The slope ``g`` is set so that, for the prior-mean parameters, a small sustained
   drive gives the same steady-state BOLD as the linear path (:data:`BOLD_GAIN` percent per
   unit of drive): the two paths agree for small drives and differ by the saturation, the
   Balloon model's own nonlinearity and its response shape. Since alpha carries negative and
   the other bands positive mixing weights, alpha power lowers and gamma power raises the flow
   (Mukamel et al. 2005, Science 309:951; Scheeringa et al. 2011, Neuron 69:572).

2. **Hemodynamics** (Buxton, Wong & Frank 1998, MRM 39:855; Friston, Mechelli, Turner &
   Price 2000, NeuroImage 12:466), with vasodilatory signal ``s`` (s^-1), normalised inflow
   ``f``, venous volume ``v`` and deoxyhaemoglobin content ``q`` (each 1 at rest)::

       ds/dt     = u - kappa s - gamma (f - 1)
       df/dt     = s
       tau dv/dt = f - v^(1/alpha)
       tau dq/dt = f (1 - (1 - E0)^(1/f)) / E0 - v^(1/alpha) q / v

3. **BOLD signal** (Stephan et al. 2007, NeuroImage 38:387, their revised coefficients, with
   the 1.5 T constants of Obata et al. 2004, NeuroImage 21:144)::

       y = 100 V0 (k1 (1 - q) + k2 (1 - q / v) + k3 (1 - v))      (percent signal change)
       k1 = 4.3 theta0 E0 TE,  k2 = epsilon r0 E0 TE,  k3 = 1 - epsilon

   with ``V0 = 0.04`` (resting venous blood volume fraction), ``theta0 = 40.3 s^-1``
   (frequency offset at the outer surface of magnetised vessels for fully deoxygenated blood,
   1.5 T), ``r0 = 25 s^-1`` (slope of the intravascular relaxation rate against oxygen
   saturation, 1.5 T), ``epsilon = 1.43`` (ratio of intra- to extravascular signal, 1.5 T)
   and ``TE = 0.04 s``: a 1.5 T gradient-echo EPI, the field strength for which these papers
   give every constant.

4. **Parameters per BOLD parcel** (:func:`draw_balloon_parameters`): ``kappa``, ``gamma``,
   ``tau``, ``alpha`` and ``E0`` are drawn independently from Gaussians truncated to +-2
   standard deviations (a modelling choice: it keeps every draw physiological). The means are
   those SPM's DCM uses with Stephan et al. 2007's BOLD equation (0.64 s^-1, 0.32 s^-1,
   2.0 s, 0.32, 0.4: :data:`BALLOON_PRIOR_MEAN`); the standard deviations are the square
   roots of Friston et al. 2000's prior variances (0.015, 0.002, 0.0568, 0.0015, 0.0024).
   Friston et al. 2000's own means (0.65, 0.41, 0.98 s, 0.32, 0.34) are not used: with the
   revised BOLD equation their impulse response peaks 3.1 s after the impulse, before the
   4-6 s of measured HRFs. The draws come from their own random stream
   (:data:`_STREAM_BALLOON`), so the linear path's HRFs, mixing and noise are unchanged. With
   the mean parameters the effective HRF peaks 4.3 s after an impulse and undershoots the
   baseline; over draws its time to peak spans about 3.6-5.1 s. About 1 % of parcels, with
   both a fast signal decay (large ``kappa``) and a long transit time, have practically no
   post-stimulus undershoot (strongly damped flow: ``kappa / (2 sqrt(gamma))`` 0.7-0.85,
   against 0.57 at the means).

5. **Integration** (:func:`balloon_response`): classical fourth-order Runge-Kutta, vectorised
   over parcels, with a step of :data:`INTEGRATION_STEP_S` (0.05 s); the input is held
   constant over each 0.1 s bin (the steps fall on the bin edges) and the system starts at
   rest. Halving the step changes the BOLD by about 2e-8 of its range (tested: < 1e-3;
   ``tests/test_balloon.py``).

The *effective HRF* of a parcel is the Balloon model's response, at rest, to an impulse of
neural input (the small-input, linear regime); :func:`effective_time_to_peak` gives its time to
peak, to score learned HRFs against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .hemodynamics import BOLD_GAIN, HRF_SUPPORT_S, ParcelBold, add_bold_noise
from .sources import DRIVE_STEP_S

#: Random stream (see :func:`samba_bids.simulate.sources._subject_rng`, subject index 0: shared
#: by every subject) of the Balloon parameters; the linear path's shared HRFs and mixing come
#: from stream 0, the MR artefacts from stream 5.
_STREAM_BALLOON = 6

#: The hemodynamic models of the simulator.
HEMODYNAMICS = ("linear", "balloon")

#: Balloon parameters per BOLD parcel, in the order of :class:`BalloonParameters`, with the
#: column names of ``_desc-truth_hemodynamics.tsv``.
BALLOON_PARAMETER_NAMES = ("kappa_per_s", "gamma_per_s", "tau_s", "alpha", "E0")
#: Mean parameters: signal decay kappa (s^-1), autoregulation gamma (s^-1), transit time tau (s),
#: Grubb's exponent alpha, resting oxygen extraction E0; the prior means of the hemodynamic model
#: that SPM's DCM pairs with Stephan et al. 2007's BOLD equation (SPM12 ``spm_fx_hdm.m``,
#: ``spm_gx_hdm.m``). Friston et al. 2000's means (0.65, 0.41, 0.98, 0.32, 0.34) give, with
#: that BOLD equation, an impulse response that peaks 3.1 s after the impulse, earlier than the
#: 4-6 s of measured HRFs; the longer transit time (2 s) gives 4.3 s.
BALLOON_PRIOR_MEAN = {"kappa_per_s": 0.64, "gamma_per_s": 0.32, "tau_s": 2.0, "alpha": 0.32,
                      "E0": 0.4}
#: Standard deviations of the parameters across parcels: square roots of Friston et al. 2000's
#: prior variances (Table 1: 0.015, 0.002, 0.0568, 0.0015, 0.0024).
BALLOON_PRIOR_SD = {"kappa_per_s": np.sqrt(0.015), "gamma_per_s": np.sqrt(0.002),
                    "tau_s": np.sqrt(0.0568), "alpha": np.sqrt(0.0015), "E0": np.sqrt(0.0024)}
#: The priors are truncated to the mean +- this many standard deviations.
BALLOON_PRIOR_TRUNCATION_SD = 2.0

#: Resting venous blood volume fraction V0 (Stephan et al. 2007).
RESTING_VENOUS_VOLUME = 0.04
#: Field strength of the BOLD constants below, T.
FIELD_STRENGTH_T = 1.5
#: Frequency offset at the outer surface of magnetised vessels for fully deoxygenated blood,
#: theta0, s^-1 (1.5 T; Obata et al. 2004, Stephan et al. 2007).
FREQUENCY_OFFSET_PER_S = 40.3
#: Slope r0 of the intravascular relaxation rate against oxygen saturation, s^-1 (1.5 T).
INTRAVASCULAR_RELAXATION_SLOPE_PER_S = 25.0
#: Ratio epsilon of intra- to extravascular signal (1.5 T; Obata et al. 2004).
INTRA_EXTRAVASCULAR_RATIO = 1.43
#: Echo time TE of the gradient-echo EPI, s.
ECHO_TIME_S = 0.04

#: Largest sustained increase of the blood flow the coupling allows, fraction of rest (at the
#: prior-mean gamma).
MAX_FLOW_INCREASE = 0.5
#: Largest sustained decrease of the blood flow the coupling allows, fraction of rest.
MAX_FLOW_DECREASE = 0.2
#: Step of the Runge-Kutta integration, s (divides :data:`DRIVE_STEP_S`).
INTEGRATION_STEP_S = 0.05


@dataclass(frozen=True)
class BalloonParameters:
    """Balloon-Windkessel parameters of M BOLD parcels (Friston et al. 2000's notation).

    Each is given per parcel; scalars are broadcast to the length of the others.

    Attributes
    ----------
    kappa : ndarray, shape (M,)
        Rate of decay of the vasodilatory signal, s^-1.
    gamma : ndarray, shape (M,)
        Rate of flow-dependent elimination (autoregulation), s^-1.
    tau : ndarray, shape (M,)
        Hemodynamic (venous) transit time, s.
    alpha : ndarray, shape (M,)
        Grubb's exponent (stiffness: outflow ``v^(1/alpha)``), unitless.
    e0 : ndarray, shape (M,)
        Resting oxygen extraction fraction, unitless.
    """

    kappa: np.ndarray
    gamma: np.ndarray
    tau: np.ndarray
    alpha: np.ndarray
    e0: np.ndarray

    def __post_init__(self):
        arrays = [np.atleast_1d(np.asarray(getattr(self, n), dtype=float))
                  for n in ("kappa", "gamma", "tau", "alpha", "e0")]
        try:
            arrays = [a.copy() for a in np.broadcast_arrays(*arrays)]
        except ValueError:
            arrays = None
        if arrays is None or arrays[0].ndim != 1:
            raise ValueError("Balloon parameters must be scalars or vectors of one length; got "
                             f"{self!r}.")
        for name, a in zip(("kappa", "gamma", "tau", "alpha", "e0"), arrays):
            if not np.all(np.isfinite(a) & (a > 0)) or (name == "e0" and np.any(a >= 1)):
                raise ValueError(f"Balloon parameter {name} must be positive (and E0 below 1); "
                                 f"got {a}.")
            object.__setattr__(self, name, a)

    def __len__(self) -> int:
        return len(self.kappa)

    def as_array(self) -> np.ndarray:
        """The parameters as an array, shape (M, 5), in :data:`BALLOON_PARAMETER_NAMES` order."""
        return np.column_stack([self.kappa, self.gamma, self.tau, self.alpha, self.e0])

    def frame(self, names=None) -> pd.DataFrame:
        """Table of the parameters, shape (M, 5) (plus ``parcel`` first when ``names`` is given).

        Columns :data:`BALLOON_PARAMETER_NAMES`: ``kappa_per_s`` and ``gamma_per_s`` in s^-1,
        ``tau_s`` in s, ``alpha`` and ``E0`` unitless.
        """
        frame = pd.DataFrame(self.as_array(), columns=list(BALLOON_PARAMETER_NAMES))
        if names is not None:
            frame.insert(0, "parcel", list(names))
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> BalloonParameters:
        """Read :meth:`frame`'s columns (e.g. ``_desc-truth_hemodynamics.tsv``), in row order.

        Raises
        ------
        ValueError
            If a column of :data:`BALLOON_PARAMETER_NAMES` is missing.
        """
        missing = [c for c in BALLOON_PARAMETER_NAMES if c not in frame.columns]
        if missing:
            raise ValueError(f"the Balloon parameter table has no column(s) {', '.join(missing)}.")
        return cls(*(frame[c].to_numpy(dtype=float) for c in BALLOON_PARAMETER_NAMES))

    @classmethod
    def prior_mean(cls, n_parcels: int = 1) -> BalloonParameters:
        """``n_parcels`` copies of the mean parameters (:data:`BALLOON_PRIOR_MEAN`)."""
        return cls(*(np.full(n_parcels, BALLOON_PRIOR_MEAN[c]) for c in BALLOON_PARAMETER_NAMES))


def draw_balloon_parameters(n_parcels: int, rng: np.random.Generator) -> BalloonParameters:
    """Draw Balloon parameters per BOLD parcel from truncated Gaussians (module docstring).

    Each parameter, in :data:`BALLOON_PARAMETER_NAMES` order, is drawn for every parcel as
    ``mean + sd * Phi^-1(U)`` with ``U`` uniform on ``[Phi(-c), Phi(c)]``, ``c =``
    :data:`BALLOON_PRIOR_TRUNCATION_SD` (a Gaussian truncated to +-c standard deviations).

    Parameters
    ----------
    n_parcels : int
        Number of BOLD parcels M.
    rng : numpy.random.Generator
        Random generator (the simulator's is stream :data:`_STREAM_BALLOON` of subject 0).

    Returns
    -------
    BalloonParameters
        Vectors of length M.
    """
    from scipy import stats

    lo, hi = stats.norm.cdf([-BALLOON_PRIOR_TRUNCATION_SD, BALLOON_PRIOR_TRUNCATION_SD])
    values = [BALLOON_PRIOR_MEAN[c] + BALLOON_PRIOR_SD[c] * stats.norm.ppf(
        rng.uniform(lo, hi, n_parcels)) for c in BALLOON_PARAMETER_NAMES]
    return BalloonParameters(*values)


# --------------------------------------------------------------------------------------------
# BOLD signal equation and steady states


def _bold_coefficients(e0) -> tuple:
    """``k1, k2, k3`` of Stephan et al. 2007 for resting extraction ``e0``, shape of ``e0``."""
    k1 = 4.3 * FREQUENCY_OFFSET_PER_S * e0 * ECHO_TIME_S
    k2 = INTRA_EXTRAVASCULAR_RATIO * INTRAVASCULAR_RELAXATION_SLOPE_PER_S * e0 * ECHO_TIME_S
    k3 = 1.0 - INTRA_EXTRAVASCULAR_RATIO
    return k1, k2, k3


def bold_signal(v, q, e0) -> np.ndarray:
    """BOLD signal of the venous volume and deoxyhaemoglobin (Stephan et al. 2007).

    Parameters
    ----------
    v, q : array_like, shape (M, ...) or broadcastable
        Normalised venous volume and deoxyhaemoglobin content (1 at rest).
    e0 : array_like
        Resting oxygen extraction fraction, broadcastable to ``v``.

    Returns
    -------
    ndarray
        ``100 V0 (k1 (1 - q) + k2 (1 - q / v) + k3 (1 - v))``, percent signal change (0 at
        rest).
    """
    v, q = np.asarray(v, dtype=float), np.asarray(q, dtype=float)
    k1, k2, k3 = _bold_coefficients(np.asarray(e0, dtype=float))
    return 100.0 * RESTING_VENOUS_VOLUME * (k1 * (1.0 - q) + k2 * (1.0 - q / v) + k3 * (1.0 - v))


def steady_state_bold(flow, parameters: BalloonParameters) -> np.ndarray:
    """BOLD of the Balloon model held at a constant inflow ``f`` (all derivatives zero).

    At a steady state ``v = f^alpha`` and ``q = v E(f) / E0`` with the extraction
    ``E(f) = 1 - (1 - E0)^(1/f)``; a sustained input ``u`` gives ``f = 1 + u / gamma``.

    Parameters
    ----------
    flow : array_like, shape (M,) or (M, K)
        Normalised inflow, > 0.
    parameters : BalloonParameters
        Of the M parcels.

    Returns
    -------
    ndarray, shape of ``flow``
        Percent signal change.
    """
    f = np.asarray(flow, dtype=float)
    extra = (slice(None),) + (None,) * (f.ndim - 1)
    alpha, e0 = parameters.alpha[extra], parameters.e0[extra]
    v = f ** alpha
    q = v * (1.0 - (1.0 - e0) ** (1.0 / f)) / e0
    return bold_signal(v, q, e0)


def steady_state_gain(parameters: BalloonParameters) -> np.ndarray:
    """Steady-state BOLD per unit of sustained neural input at rest, d y / d u.

    Analytic derivative of :func:`steady_state_bold` at ``f = 1`` times ``df/du = 1 / gamma``:
    ``dv/df = alpha``, ``d(q/v)/df = (1 - E0) ln(1 - E0) / E0``, ``dq/df = alpha + d(q/v)/df``.

    Parameters
    ----------
    parameters : BalloonParameters
        Of the M parcels.

    Returns
    -------
    ndarray, shape (M,)
        Percent signal change per s^-1 of input.
    """
    e0, alpha = parameters.e0, parameters.alpha
    dqv = (1.0 - e0) * np.log(1.0 - e0) / e0
    dq = alpha + dqv
    k1, k2, k3 = _bold_coefficients(e0)
    dy_df = -100.0 * RESTING_VENOUS_VOLUME * (k1 * dq + k2 * dqv + k3 * alpha)
    return dy_df / parameters.gamma


#: Slope at rest of the neurovascular coupling, s^-1 per unit of drive: the prior-mean Balloon
#: model's small-signal steady-state BOLD then equals :data:`BOLD_GAIN` per unit of drive
#: (about 0.044 s^-1: a sustained unit of drive raises the flow by about 14 %).
COUPLING_SLOPE = float(BOLD_GAIN / steady_state_gain(BalloonParameters.prior_mean())[0])


def neurovascular_coupling(drive) -> np.ndarray:
    """Neural input of the hemodynamics from the planted drive: saturating around rest.

    ``u = U+ tanh(g x / U+)`` for ``x >= 0`` and ``u = U- tanh(g x / U-)`` for ``x < 0``, with
    ``g =`` :data:`COUPLING_SLOPE`, ``U+ = MAX_FLOW_INCREASE * gamma_0`` and
    ``U- = MAX_FLOW_DECREASE * gamma_0`` (``gamma_0``: the prior mean of ``gamma``); see the
    module docstring for the choices.

    Parameters
    ----------
    drive : array_like, shape (M, T) or any
        Planted weights times z-scored log band power, unitless (0 at rest).

    Returns
    -------
    ndarray, shape of ``drive``
        Neural input ``u``, s^-1, in ``(-U-, U+)``.
    """
    x = np.asarray(drive, dtype=float)
    gamma0 = BALLOON_PRIOR_MEAN["gamma_per_s"]
    limit = np.where(x >= 0, MAX_FLOW_INCREASE * gamma0, MAX_FLOW_DECREASE * gamma0)
    return limit * np.tanh(COUPLING_SLOPE * x / limit)


# --------------------------------------------------------------------------------------------
# Integration


def _derivatives(state, u, p) -> np.ndarray:
    """``d(s, f, v, q)/dt`` of the Balloon-Windkessel model, shape (4, M)."""
    s, f, v, q = state
    kappa, gamma, inv_tau, inv_alpha, e0, log1me0 = p
    outflow = np.exp(np.log(v) * inv_alpha)  # v^(1/alpha)
    extraction = 1.0 - np.exp(log1me0 / f)  # 1 - (1 - E0)^(1/f)
    return np.stack([
        u - kappa * s - gamma * (f - 1.0),
        s,
        (f - outflow) * inv_tau,
        (f * extraction / e0 - outflow * q / v) * inv_tau,
    ])


def balloon_response(neural_input, parameters: BalloonParameters, step_s: float = DRIVE_STEP_S,
                     *, integration_step_s: float = INTEGRATION_STEP_S, initial_state=None,
                     return_states: bool = False):
    """Integrate the Balloon-Windkessel model from rest for a piecewise-constant input.

    Classical fourth-order Runge-Kutta, vectorised over parcels, ``step_s /
    integration_step_s`` steps per input bin (the bin's input held constant).

    Parameters
    ----------
    neural_input : array_like, shape (M, T)
        Neural input ``u`` of each parcel on bins of ``step_s``, s^-1.
    parameters : BalloonParameters
        Of the M parcels.
    step_s : float
        Length of an input bin, s.
    integration_step_s : float
        Runge-Kutta step, s; ``step_s`` must be a whole multiple of it.
    initial_state : array_like, shape (4, M), optional
        ``(s, f, v, q)`` at the start; default rest ``(0, 1, 1, 1)``.
    return_states : bool
        Also return the states.

    Returns
    -------
    bold : ndarray, shape (M, T)
        Percent signal change at the *end* of each bin (``(i + 1) * step_s`` after the start):
        it depends on the input of bins ``0..i`` only.
    states : ndarray, shape (4, M, T)
        ``(s, f, v, q)`` at the same times; only with ``return_states``.

    Raises
    ------
    ValueError
        If the shapes do not match, ``step_s`` is not a multiple of ``integration_step_s``,
        or the integration leaves the physiological domain (an input strong enough to drive
        the flow or volume to zero).
    """
    u = np.atleast_2d(np.asarray(neural_input, dtype=float))
    n_parcels, n_bins = u.shape
    if n_parcels != len(parameters):
        raise ValueError(f"neural_input has {n_parcels} parcels, the parameters "
                         f"{len(parameters)}.")
    n_sub = int(round(step_s / integration_step_s))
    if n_sub < 1 or abs(n_sub * integration_step_s - step_s) > 1e-9 * step_s:
        raise ValueError(f"step_s ({step_s} s) must be a whole multiple of integration_step_s "
                         f"({integration_step_s} s).")
    h = step_s / n_sub
    p = (parameters.kappa, parameters.gamma, 1.0 / parameters.tau, 1.0 / parameters.alpha,
         parameters.e0, np.log(1.0 - parameters.e0))
    state = (np.array([[0.0], [1.0], [1.0], [1.0]]) * np.ones(n_parcels)
             if initial_state is None else np.array(initial_state, dtype=float))
    states = np.empty((4, n_parcels, n_bins))
    for i in range(n_bins):
        ui = u[:, i]
        for _ in range(n_sub):
            k1 = _derivatives(state, ui, p)
            k2 = _derivatives(state + 0.5 * h * k1, ui, p)
            k3 = _derivatives(state + 0.5 * h * k2, ui, p)
            k4 = _derivatives(state + h * k3, ui, p)
            state = state + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        states[:, :, i] = state
    if not np.all(np.isfinite(states)) or np.any(states[1:] <= 0):
        raise ValueError("the Balloon model left its domain (flow, volume or deoxyhaemoglobin "
                         "<= 0): the neural input is too strong; pass it through "
                         "neurovascular_coupling.")
    bold = bold_signal(states[2], states[3], parameters.e0[:, None])
    return (bold, states) if return_states else bold


def balloon_bold(band_power_z, weights, parameters: BalloonParameters,
                 step_s: float = DRIVE_STEP_S, *,
                 integration_step_s: float = INTEGRATION_STEP_S) -> np.ndarray:
    """Noiseless planted BOLD of the Balloon path from z-scored band power.

    Drive ``x = einsum("mnk,nkt->mt", weights, band_power_z)`` (as the linear path), neural
    input ``u =`` :func:`neurovascular_coupling` ``(x)``, BOLD by :func:`balloon_response`
    from rest.

    Parameters
    ----------
    band_power_z : ndarray, shape (N, n_bands, T)
        Log band power of the source parcels on bins of ``step_s``, z-scored per parcel and
        band (the simulator z-scores over the lead-in and the recording).
    weights : ndarray, shape (M, N, n_bands)
        Planted mixing weights (:func:`samba_bids.simulate.mixing_matrix`).
    parameters : BalloonParameters
        Of the M BOLD parcels.
    step_s : float
        Bin length, s.
    integration_step_s : float
        Runge-Kutta step, s.

    Returns
    -------
    ndarray, shape (M, T)
        Percent signal change at the end of each bin (``(i + 1) * step_s`` after the first
        bin's start).
    """
    drive = np.einsum("mnk,nkt->mt", weights, band_power_z)
    return balloon_response(neurovascular_coupling(drive), parameters, step_s,
                            integration_step_s=integration_step_s)


def balloon_impulse_response(parameters: BalloonParameters, *, support_s: float = HRF_SUPPORT_S,
                             step_s: float = 0.01, amplitude: float = 1e-3):
    """Effective HRF: the response at rest to an impulse of neural input, per unit of input.

    An impulse ``u = a delta(t)`` sets ``s(0+) = a`` with ``f, v, q`` still at rest; the system
    is then integrated without input. ``a`` is small, so the response is the linear regime's
    (it scales with ``a``; dividing by ``a`` gives percent signal change per s^-1 s of input).

    Parameters
    ----------
    parameters : BalloonParameters
        Of the M parcels.
    support_s : float
        Length of the response, s.
    step_s : float
        Sampling step of the response (and Runge-Kutta step), s.
    amplitude : float
        Impulse ``a``, s^-1 s (unitless).

    Returns
    -------
    t_s : ndarray, shape (K + 1,)
        Times after the impulse, ``k * step_s``, s.
    response : ndarray, shape (M, K + 1)
        Percent signal change per unit of impulse.
    """
    n = int(round(support_s / step_s))
    start = np.array([[amplitude], [1.0], [1.0], [1.0]]) * np.ones(len(parameters))
    bold = balloon_response(np.zeros((len(parameters), n)), parameters, step_s,
                            integration_step_s=step_s, initial_state=start)
    t = np.arange(n + 1) * step_s
    return t, np.concatenate([np.zeros((len(parameters), 1)), bold], axis=1) / amplitude


def effective_time_to_peak(parameters: BalloonParameters, *,
                           support_s: float = HRF_SUPPORT_S) -> np.ndarray:
    """Time to peak of each parcel's effective HRF (:func:`balloon_impulse_response`).

    The maximum of the impulse response on a 0.01 s grid, refined by the vertex of the parabola
    through it and its two neighbours.

    Parameters
    ----------
    parameters : BalloonParameters
        Of the M parcels.
    support_s : float
        Search interval after the impulse, s.

    Returns
    -------
    ndarray, shape (M,)
        Time of the maximum, s after the impulse.
    """
    step = 0.01
    t, response = balloon_impulse_response(parameters, support_s=support_s, step_s=step)
    k = np.clip(np.argmax(response, axis=1), 1, len(t) - 2)
    rows = np.arange(len(parameters))
    left, mid, right = response[rows, k - 1], response[rows, k], response[rows, k + 1]
    curvature = left - 2.0 * mid + right
    shift = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, 1),
                     0.0)
    return t[k] + shift * step


def simulate_balloon_bold(band_power, weights, parameters: BalloonParameters, t_bins_s,
                          t_acq_s, snr: float, rng: np.random.Generator,
                          step_s: float = DRIVE_STEP_S) -> ParcelBold:
    """Parcel BOLD from source-parcel band power through the coupling and the Balloon model.

    The Balloon twin of :func:`samba_bids.simulate.hemodynamics.simulate_parcel_bold`: the log
    band power is z-scored per parcel and band, turned into BOLD by :func:`balloon_bold`,
    interpolated at the volumes' sample times (each bin's value belongs to its end,
    ``t_bins_s + step_s / 2``) and given white noise of variance ``var(noiseless) / snr`` per
    parcel (:func:`samba_bids.simulate.hemodynamics.add_bold_noise`).

    Parameters
    ----------
    band_power : ndarray, shape (N, n_bands, n_bins)
        Log band power of the source parcels (:func:`samba_bids.simulate.band_log_power`).
    weights : ndarray, shape (M, N, n_bands)
        Planted mixing weights.
    parameters : BalloonParameters
        Of the M BOLD parcels.
    t_bins_s : ndarray, shape (n_bins,)
        Time of the middle of each bin on the recording clock, s.
    t_acq_s : ndarray, shape (V,)
        Sample time of each volume on the recording clock, s.
    snr : float
        ``var(noiseless) / var(noise)`` per parcel.
    rng : numpy.random.Generator
        Random generator of the BOLD noise.
    step_s : float
        Bin length, s.

    Returns
    -------
    ParcelBold
        Noiseless and noisy BOLD (percent signal change), noise SD and noise ceiling per parcel.
    """
    z = (band_power - band_power.mean(axis=-1, keepdims=True)) / band_power.std(
        axis=-1, keepdims=True)
    response = balloon_bold(z, weights, parameters, step_s)
    t_end = np.asarray(t_bins_s, dtype=float) + step_s / 2.0
    noiseless = np.stack([np.interp(t_acq_s, t_end, row) for row in response], axis=1)
    return add_bold_noise(noiseless, snr, rng)


def balloon_description() -> dict:
    """The Balloon path's equations and constants, for ``_desc-truth_parameters.json``."""
    gamma0 = BALLOON_PRIOR_MEAN["gamma_per_s"]
    return {
        "Coupling": "x = sum_nk w_mnk z_nk(t) (the linear path's drive); u = U+ tanh(g x / U+) "
                    "for x >= 0, U- tanh(g x / U-) for x < 0 (s^-1)",
        "CouplingSlope": COUPLING_SLOPE,
        "CouplingSlopeUnits": "s^-1 per unit of drive",
        "CouplingSlopeDefinition": "small-signal steady-state BOLD of the prior-mean Balloon "
                                   "model = BOLDGain per unit of drive",
        "CouplingLimits": [-MAX_FLOW_DECREASE * gamma0, MAX_FLOW_INCREASE * gamma0],
        "MaxSustainedFlowChange": [-MAX_FLOW_DECREASE, MAX_FLOW_INCREASE],
        "Equations": [
            "ds/dt = u - kappa s - gamma (f - 1)",
            "df/dt = s",
            "tau dv/dt = f - v^(1/alpha)",
            "tau dq/dt = f (1 - (1 - E0)^(1/f)) / E0 - v^(1/alpha) q / v",
            "y = 100 V0 (k1 (1 - q) + k2 (1 - q/v) + k3 (1 - v))",
            "k1 = 4.3 theta0 E0 TE, k2 = epsilon r0 E0 TE, k3 = 1 - epsilon",
        ],
        "References": [
            "Buxton, Wong & Frank 1998, Magn Reson Med 39:855",
            "Friston, Mechelli, Turner & Price 2000, NeuroImage 12:466",
            "Stephan, Weiskopf, Drysdale, Robinson & Friston 2007, NeuroImage 38:387",
            "Obata et al. 2004, NeuroImage 21:144",
        ],
        "ParameterPriors": {c: {"Mean": BALLOON_PRIOR_MEAN[c], "SD": float(BALLOON_PRIOR_SD[c])}
                            for c in BALLOON_PARAMETER_NAMES},
        "ParameterPriorSource": "means: SPM12 DCM hemodynamic model (spm_fx_hdm.m) used with "
                                "Stephan et al. 2007's BOLD equation; SDs: square roots of "
                                "Friston et al. 2000's prior variances; Gaussian, truncated",
        "ParameterTruncationSD": BALLOON_PRIOR_TRUNCATION_SD,
        "ParameterRandomStream": f"numpy default_rng([Seed, 0, {_STREAM_BALLOON}]) (shared by "
                                 "every subject and run)",
        "RestingVenousVolume": RESTING_VENOUS_VOLUME,
        "FieldStrength": FIELD_STRENGTH_T,
        "FrequencyOffset": FREQUENCY_OFFSET_PER_S,
        "IntravascularRelaxationSlope": INTRAVASCULAR_RELAXATION_SLOPE_PER_S,
        "IntraExtravascularRatio": INTRA_EXTRAVASCULAR_RATIO,
        "EchoTime": ECHO_TIME_S,
        "Integration": f"classical Runge-Kutta (RK4), step {INTEGRATION_STEP_S} s, input held "
                       f"over each {DRIVE_STEP_S} s bin, from rest at the start of the lead-in",
        "BOLDSampling": "value at the end of each bin, interpolated at onset + TR/2",
        "EffectiveHRF": "response at rest to an impulse of neural input (linear regime); its "
                        "time to peak is time_to_peak_s of _desc-truth_hrf.tsv and "
                        "_desc-truth_hemodynamics.tsv",
    }
