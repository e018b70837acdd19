"""What a run did, for its methods boilerplate: :class:`MethodsContext`.

:func:`methods_context` fills one from the workflow's objects; values that other stages fix
(the fMRIPrep confounds of the ``auto`` strategy, the ridge penalties, the gradient-clipping
norm) come in as attributes too, defaulting to those stages' public constants
(:func:`stage_defaults`), so that :mod:`samba_bids.reports.boilerplate` imports no stage.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

#: Distributions whose versions the text names: placeholder suffix -> distribution name.
PACKAGES = {
    "samba_bids": "samba-bids",
    "mne": "mne",
    "mne_bids": "mne-bids",
    "nilearn": "nilearn",
    "nibabel": "nibabel",
    "pybids": "pybids",
    "torch": "torch",
    "torch_geometric": "torch-geometric",
    "pywavelets": "PyWavelets",
    "numpy": "numpy",
    "scipy": "scipy",
}

#: Attributes of :class:`MethodsContext` whose defaults other stages fix.
STAGE_VALUES = ("auto_confounds", "ridge_alphas", "max_grad_norm")


def package_versions() -> dict:
    """Installed versions of the packages the text names (:data:`PACKAGES`) and of Python.

    Read with :mod:`importlib.metadata`; ``'(not installed)'`` for a missing distribution.
    """
    from importlib import metadata

    versions = {}
    for name, distribution in PACKAGES.items():
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            if name == "samba_bids":
                from .. import __version__

                versions[name] = __version__
            else:
                versions[name] = "(not installed)"
    versions["python"] = platform.python_version()
    return versions


def stage_defaults() -> dict:
    """Today's values of :data:`STAGE_VALUES` from their stages' public constants.

    Returns
    -------
    dict
        ``auto_confounds``: :data:`samba_bids.bold.FMRIPREP_AUTO_CONFOUNDS`;
        ``ridge_alphas``: :data:`samba_bids.model.baselines.DEFAULT_ALPHAS`;
        ``max_grad_norm``: :data:`samba_bids.training.MAX_GRAD_NORM`.
    """
    from ..bold import FMRIPREP_AUTO_CONFOUNDS
    from ..model.baselines import DEFAULT_ALPHAS
    from ..training import MAX_GRAD_NORM

    return {"auto_confounds": tuple(FMRIPREP_AUTO_CONFOUNDS),
            "ridge_alphas": tuple(DEFAULT_ALPHAS), "max_grad_norm": MAX_GRAD_NORM}


@dataclass
class MethodsContext:
    """Everything the methods text says about one run.

    Settings come from ``config``; the other attributes are what the run found or produced.
    Optional attributes left at None are omitted from the text or replaced by the
    configured value, as stated below.

    Attributes
    ----------
    config : samba_bids.config.Config
        Resolved settings: band-pass edges, resampling rate, inverse method and SNR, atlas
        scales, confound strategy, HRF support, split fractions, wavelet, model sizes,
        ablation flags, ``direction``, optimiser, early stopping, seed, device request.
    modality : {'eeg', 'meg'}
        The analysed modality (``RunInputs.modality``).
    tr_s : float
        Repetition time, s.
    bold_space : str
        Space of the BOLD input (``fsaverage5``, ``MNI152NLin6Asym``, ``fsLR``, ...).
    provenance : dict
        Forward and inverse provenance of :func:`samba_bids.ephys.compute_source_parcels`
        (``SourceSpace``, ``NSources``, ``HeadModel``, ``BEM``, ``Transform``,
        ``InverseMethod``, ``SNR``, ``Lambda2``, ``Loose``, ``Depth``, ``NoiseCovariance``,
        ``NoiseCovarianceRank``, ``ParcelKernelShape``); missing keys fall back to the config
        or are left out.
    n_train_volumes, n_validation_volumes, n_test_volumes : int
        Sizes of the blocks of :func:`samba_bids.alignment.blocked_split`.
    gap_volumes : int
        Gap between blocks (``Split.history``; also the HRF history K).
    window_trs : int | None
        Target volumes per window actually used (``FitResult.window_trs``); None:
        ``config.window_trs``.
    n_channels : int | None
        Data channels used (after dropping bad channels).
    sfreq_hz : float | None
        Sampling rate of the recording as stored, Hz.
    highpass_hz, lowpass_hz : float | None
        Band edges applied (``raw.info['highpass']``, ``['lowpass']`` after preprocessing; the
        low-pass may have been lowered below Nyquist); None: ``config.l_freq_hz``,
        ``config.h_freq_hz``.
    ephys_sfreq_hz : float | None
        Rate of the source-parcel time courses, Hz; None: ``config.resample_sfreq_hz``.
    alignment : str | None
        How the clocks were aligned (``RunInputs.clock``); None: from
        ``config.volume_trigger``.
    mr_artifacts : dict | None
        The run's ``MRArtifacts`` sidecar entry (EEG: what MR artefacts were removed and
        how); None: not recorded (the text says none were removed).
    confound_columns : list of str | None
        Nuisance regressors regressed out of the BOLD; None or empty: none were.
    n_source_parcels, n_bold_parcels : int | None
        Parcel counts; None: ``config.ephys_atlas_scale``, ``config.bold_atlas_scale``.
    ephys_subject : str
        Template subject of the source space.
    templates_kind : {'official', 'fallback'}
        ``'fallback'``: the offline templates of
        :func:`samba_bids.templates.build_fallback_templates` (k-means sphere parcels, not
        Schaefer 2018); the text says so and does not cite Schaefer.
    n_parameters, epochs_run, best_epoch : int | None
        Forward model: trainable parameters, epochs trained, epoch whose weights were kept.
    reverse_n_parameters, reverse_epochs_run, reverse_best_epoch : int | None
        The same for the reverse (BOLD -> band power) model.
    device : str | None
        Torch device the models were trained on (``FitResult.device``); None:
        ``config.device``.
    device_name : str | None
        GPU model, e.g. ``'NVIDIA H100'``.
    ridge_alpha : float | None
        Penalty chosen for the ridge baseline.
    n_null : int
        Phase-randomised surrogates per parcel for the p-values.
    ablations : tuple of str
        Ablations also trained and scored (names of
        :data:`samba_bids.training.ABLATIONS`), if any.
    run_label : str | None
        Label of the run whose values the text reports, e.g. ``'sub-01_task-rest'``.
    auto_confounds : tuple of str | None
        fMRIPrep confound columns of the ``auto`` strategy (named by group in the text when
        the run's confounds are among them); None: :func:`stage_defaults`.
    ridge_alphas : tuple of float | None
        Penalties searched by the ridge baseline; None: :func:`stage_defaults`.
    max_grad_norm : float | None
        Gradient-clipping norm of the training; None: :func:`stage_defaults`.
    versions : dict | None
        ``{placeholder suffix: version}`` overriding the versions read at render time
        (keys of :data:`PACKAGES`, plus ``'python'``).
    cv : {'runs', 'blocks'} | None
        Cross-validation of a participant model across runs; None: one run, one model.
    n_runs : int
        Paired runs the participant's model was trained on.
    n_ephys_only : int
        Runs without BOLD translated with the participant's model.
    reused_model : str | None
        Where a reused model came from (``--models``); None: trained here.
    pretrained_model : str | None
        The model the forward model was fine-tuned from (``--init-from``); None: trained
        from scratch.
    n_bold_only : int
        BOLD runs without a recording translated with the participant's reverse model.
    """

    config: object
    modality: str
    tr_s: float
    bold_space: str
    provenance: dict
    n_train_volumes: int
    n_validation_volumes: int
    n_test_volumes: int
    gap_volumes: int
    window_trs: int | None = None
    n_channels: int | None = None
    sfreq_hz: float | None = None
    highpass_hz: float | None = None
    lowpass_hz: float | None = None
    ephys_sfreq_hz: float | None = None
    alignment: str | None = None
    mr_artifacts: dict | None = None
    confound_columns: list | None = None
    n_source_parcels: int | None = None
    n_bold_parcels: int | None = None
    ephys_subject: str = "fsaverage5"
    templates_kind: str = "official"
    n_parameters: int | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    reverse_n_parameters: int | None = None
    reverse_epochs_run: int | None = None
    reverse_best_epoch: int | None = None
    device: str | None = None
    device_name: str | None = None
    ridge_alpha: float | None = None
    n_null: int = 1000
    ablations: tuple = ()
    run_label: str | None = None
    auto_confounds: tuple | None = None
    ridge_alphas: tuple | None = None
    max_grad_norm: float | None = None
    versions: dict | None = field(default=None, repr=False)
    cv: str | None = None
    n_runs: int = 1
    n_ephys_only: int = 0
    reused_model: str | None = None
    pretrained_model: str | None = None
    n_bold_only: int = 0

    def __post_init__(self):
        if self.modality not in ("eeg", "meg"):
            raise ValueError(f"modality must be 'eeg' or 'meg'; got {self.modality!r}.")
        if self.templates_kind not in ("official", "fallback"):
            raise ValueError("templates_kind must be 'official' or 'fallback'; got "
                             f"{self.templates_kind!r}.")
        if not self.tr_s or float(self.tr_s) <= 0:
            raise ValueError(f"tr_s must be a positive repetition time in s; got {self.tr_s!r}.")
        for name in ("n_train_volumes", "n_validation_volumes", "n_test_volumes",
                     "gap_volumes"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}.")
        if self.direction not in ("ephys-to-bold", "bold-to-ephys", "both"):
            raise ValueError(f"config.direction {self.direction!r} is not a direction.")
        self.provenance = dict(self.provenance or {})
        self.ablations = tuple(self.ablations or ())
        missing = [name for name in STAGE_VALUES if getattr(self, name) is None]
        if missing:
            defaults = stage_defaults()
            for name in missing:
                setattr(self, name, defaults[name])
        self.auto_confounds = tuple(self.auto_confounds)
        self.ridge_alphas = tuple(self.ridge_alphas)

    @property
    def direction(self) -> str:
        """``config.direction``: ``'ephys-to-bold'``, ``'bold-to-ephys'`` or ``'both'``."""
        return self.config.direction

    @property
    def forward(self) -> bool:
        """Whether the electrophysiology-to-BOLD model was run."""
        return self.direction in ("ephys-to-bold", "both")

    @property
    def reverse(self) -> bool:
        """Whether the BOLD-to-electrophysiology model was run."""
        return self.direction in ("bold-to-ephys", "both")

    @property
    def n_volumes(self) -> int:
        """Volumes of the run: the three blocks and the two gaps."""
        return (self.n_train_volumes + self.n_validation_volumes + self.n_test_volumes
                + 2 * self.gap_volumes)


def methods_context(config, *, provenance, split, tr_s, modality, bold_space,
                    forward_fit=None, reverse_fit=None, templates_dir=None,
                    auto_confounds=None, ridge_alphas=None, max_grad_norm=None,
                    **details) -> MethodsContext:
    """Fill a :class:`MethodsContext` from the workflow's objects.

    Parameters
    ----------
    config : samba_bids.config.Config
        Resolved configuration.
    provenance : dict
        ``SourceParcels.provenance``.
    split : samba_bids.alignment.Split
        The blocked split (``train``, ``validation``, ``test``, ``history``, ``window_trs``).
    tr_s : float
        Repetition time, s.
    modality : {'eeg', 'meg'}
        Analysed modality.
    bold_space : str
        Space of the BOLD input.
    forward_fit, reverse_fit : samba_bids.training.FitResult | None
        Results of :func:`~samba_bids.training.fit_samba` and
        :func:`~samba_bids.training.fit_reverse` (``n_parameters``, ``history``,
        ``best_epoch``, ``device``, ``window_trs``), when run.
    templates_dir : path-like | None
        Templates folder used; its kind (official or offline fallback) is recorded.
    auto_confounds, ridge_alphas, max_grad_norm : optional
        Values other stages fix (see :class:`MethodsContext`); None: :func:`stage_defaults`.
    **details
        Any other :class:`MethodsContext` attribute (``n_channels``, ``sfreq_hz``,
        ``highpass_hz``, ``lowpass_hz``, ``alignment``, ``confound_columns``,
        ``n_bold_parcels``, ``ridge_alpha``, ``run_label``, ...); these win.

    Returns
    -------
    MethodsContext
    """
    values = dict(
        config=config, provenance=dict(provenance or {}), tr_s=float(tr_s), modality=modality,
        bold_space=bold_space, n_train_volumes=len(split.train),
        n_validation_volumes=len(split.validation), n_test_volumes=len(split.test),
        gap_volumes=int(split.history),
        window_trs=int(getattr(split, "window_trs", config.window_trs)),
        auto_confounds=auto_confounds, ridge_alphas=ridge_alphas, max_grad_norm=max_grad_norm,
    )
    for fit, prefix in ((forward_fit, ""), (reverse_fit, "reverse_")):
        if fit is None:
            continue
        values[f"{prefix}n_parameters"] = int(fit.n_parameters)
        values[f"{prefix}epochs_run"] = int(len(fit.history))
        values[f"{prefix}best_epoch"] = int(fit.best_epoch)
        values.setdefault("device", str(fit.device))
        if getattr(fit, "window_trs", 0):
            values["window_trs"] = int(fit.window_trs)
    if forward_fit is not None and getattr(forward_fit, "init_from", None):
        values["pretrained_model"] = str(forward_fit.init_from)
    if templates_dir is not None:
        from ..templates.locate import is_fallback_templates

        fallback = is_fallback_templates(templates_dir)
        values["templates_kind"] = "fallback" if fallback else "official"
    values.update(details)
    return MethodsContext(**values)

