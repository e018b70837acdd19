"""One typed configuration object for a samba-bids run.

Settings come from defaults, then an optional TOML file (``--config-file``), then the command
line, which wins. The resolved object is saved with the outputs (the model's JSON sidecar) and
its :meth:`Config.digest` keys the work-directory cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

from .errors import UsageError

#: Fields that describe where things are, not how they are computed (excluded from the digest).
#: Resources (threads, memory, the chunk length that ``mem_mb`` lowers: chunked and whole
#: results are equal to float precision) and ``overwrite`` do not change results either.
_LOCATION_FIELDS = ("bids_dir", "output_dir", "work_dir", "templates_dir", "nprocs",
                    "omp_nthreads", "mem_mb", "chunk_s", "overwrite", "group_model",
                    "verbose")


@dataclass
class Config:
    """Resolved settings of one run.

    Locations are :class:`pathlib.Path`; times in s, frequencies in Hz.
    """

    # --- locations and selection -------------------------------------------------------
    bids_dir: Path | None = None
    output_dir: Path | None = None
    analysis_level: str = "participant"
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    task_label: list[str] = field(default_factory=list)
    #: Derivative folders with preprocessed BOLD, as {name: path}.
    derivatives: dict[str, Path] = field(default_factory=dict)
    bold_space: str | None = None
    templates_dir: Path | None = None
    work_dir: Path | None = None
    skip_bids_validation: bool = False
    nprocs: int | None = None
    #: Threads per BLAS/OpenMP call (None: ``nprocs``).
    omp_nthreads: int | None = None
    #: Memory budget in MB (None: no budget); lowers ``chunk_s`` when needed.
    mem_mb: int | None = None
    #: Replace outputs written with a different configuration.
    overwrite: bool = False
    #: Group level: one model across participants, leave-one-participant-out.
    group_model: bool = False
    verbose: int = 0

    # --- atlases -----------------------------------------------------------------------
    ephys_atlas_scale: int = 100
    bold_atlas_scale: int = 200

    # --- electrophysiology -------------------------------------------------------------
    modality: str = "auto"  # auto | eeg | meg
    volume_trigger: str | None = None
    l_freq_hz: float = 0.5
    h_freq_hz: float = 45.0
    resample_sfreq_hz: float = 100.0
    inverse_method: str = "dSPM"  # dSPM | eLORETA | MNE | sLORETA
    snr: float = 3.0
    chunk_s: float = 60.0

    # --- BOLD ----------------------------------------------------------------------------
    confounds: str = "auto"  # auto | all | none
    repetition_time_s: float | None = None

    # --- split and windows -------------------------------------------------------------
    hrf_support_s: float = 32.0
    window_trs: int = 15
    train_fraction: float = 0.7
    validation_fraction: float = 0.15

    # --- model ---------------------------------------------------------------------------
    wavelet: str = "db5"
    wavelet_level: int = 3
    hidden_size: int = 32
    rnn: str = "lstm"  # lstm | gru
    gat_heads: int = 2
    k_spatial: int = 6
    k_functional: int = 6
    dropout: float = 0.1
    #: Ablations (defaults: the full model; see ``samba_bids.training.ablation_configs``).
    direction: str = "ephys-to-bold"  # ephys-to-bold | bold-to-ephys | both
    use_wavelet_attention: bool = True  # False: uniform average over wavelet bands
    use_graph: bool = True  # False: dense learned N -> M map instead of the two GAT layers
    learn_hrf: bool = True  # False: HRFs fixed at SPM's canonical

    # --- training ----------------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    max_epochs: int = 100
    patience: int = 15
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    mse_weight: float = 0.1
    #: Early stopping on the validation block's windowed loss ("loss") or on the median over
    #: BOLD parcels of the Pearson r over the whole validation block ("validation-r").
    early_stopping: str = "loss"  # loss | validation-r

    def __post_init__(self):
        for name in ("bids_dir", "output_dir", "templates_dir", "work_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value).expanduser())
        self.derivatives = {k: Path(v).expanduser() for k, v in dict(self.derivatives).items()}
        self.participant_label = [_strip(p, "sub-") for p in self.participant_label]
        self.session_label = [_strip(s, "ses-") for s in self.session_label]
        self.task_label = [_strip(t, "task-") for t in self.task_label]
        _check_choice("analysis_level", self.analysis_level, ("participant", "group"))
        _check_choice("modality", self.modality, ("auto", "eeg", "meg"))
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        _check_choice("rnn", self.rnn, ("lstm", "gru"))
        _check_choice("early_stopping", self.early_stopping, ("loss", "validation-r"))
        _check_choice("direction", self.direction, ("ephys-to-bold", "bold-to-ephys", "both"))
        _check_choice("confounds", self.confounds, ("auto", "all", "none"))
        _check_choice("inverse_method", self.inverse_method, ("dSPM", "eLORETA", "MNE", "sLORETA"))
        for scale_name in ("ephys_atlas_scale", "bold_atlas_scale"):
            _check_choice(scale_name, getattr(self, scale_name), (100, 200, 400))
        if not 0 < self.train_fraction < 1 or not 0 < self.validation_fraction < 1:
            raise UsageError("train_fraction and validation_fraction must lie between 0 and 1.")
        if self.train_fraction + self.validation_fraction >= 1:
            raise UsageError(
                "train_fraction + validation_fraction must be below 1 to leave a test block."
            )
        for name in ("nprocs", "omp_nthreads", "mem_mb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value
                                      or value < 1):
                raise UsageError(f"{name} must be a positive integer; got {value!r}.")
        if self.max_epochs < 1 or self.window_trs < 1 or self.batch_size < 1:
            raise UsageError("max_epochs, window_trs and batch_size must be positive integers.")

    # ------------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path, **overrides) -> "Config":
        """Read a TOML file (flat keys, or keys inside any tables) and apply overrides.

        Raises
        ------
        UsageError
            If the file cannot be parsed or names an unknown setting.
        """
        path = Path(path)
        try:
            with open(path, "rb") as fid:
                data = tomllib.load(fid)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise UsageError(f"{path}: cannot read the configuration file ({err}).") from err
        flat = {}
        for key, value in data.items():
            if isinstance(value, dict) and key not in ("derivatives",):
                flat.update(value)
            else:
                flat[key] = value
        flat = {k.replace("-", "_"): v for k, v in flat.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise UsageError(
                f"{path}: unknown setting(s) {', '.join(unknown)}; "
                f"see 'samba-bids --help' for the names."
            )
        flat.update(overrides)
        return cls(**flat)

    def to_dict(self) -> dict:
        """JSON-serialisable dict of every setting (paths as strings)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, dict):
                value = {k: str(v) for k, v in value.items()}
            out[f.name] = value
        return out

    def digest(self) -> str:
        """SHA-1 of the settings that change results (locations excluded)."""
        payload = {k: v for k, v in self.to_dict().items() if k not in _LOCATION_FIELDS}
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def resolved_work_dir(self) -> Path:
        """The work directory: ``work_dir``, else ``$TMPDIR/samba_bids_work``."""
        if self.work_dir is not None:
            return self.work_dir
        return Path(os.environ.get("TMPDIR", "/tmp")) / "samba_bids_work"


def _strip(value, prefix):
    value = str(value)
    return value[len(prefix) :] if value.startswith(prefix) else value


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise UsageError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}.")
