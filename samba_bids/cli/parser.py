"""Command-line parser (BIDS-App conventions, as fMRIPrep). It only parses."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from .. import __version__
from ..config import CHOICES, Config
from ..templates.spaces import CIFTI_SPACES, SURFACE_SPACES, VOLUME_SPACES

#: Every BOLD space samba-bids reads (surface, volume, CIFTI).
BOLD_SPACES = (*SURFACE_SPACES, *VOLUME_SPACES, *CIFTI_SPACES)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` from :class:`~samba_bids.config.Config`'s defaults.

    The parser's own defaults are None (so that only what was typed overrides a
    ``--config-file``); argparse's ``ArgumentDefaultsHelpFormatter`` would print those.
    """

    _defaults = {f.name: f.default for f in dataclasses.fields(Config)
                 if f.default is not dataclasses.MISSING}

    def _get_help_string(self, action):
        help_text = action.help or ""
        default = self._defaults.get(action.dest, action.default)
        if ("%(default)" in help_text or default in (None, False, argparse.SUPPRESS)
                or not action.option_strings or action.dest in ("verbose", "help")):
            return help_text
        return f"{help_text} (default: {default})"


def _derivative(value):
    """``NAME=PATH`` or ``PATH`` (name = folder name)."""
    if "=" in value:
        name, path = value.split("=", 1)
        return name, Path(path)
    path = Path(value)
    return path.name or "preproc", path


def build_parser() -> argparse.ArgumentParser:
    """The ``samba-bids`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="samba-bids",
        description="Translate EEG/MEG into fMRI BOLD with SAMBA and write BIDS derivatives.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("bids_dir", type=Path, help="the root folder of a BIDS dataset")
    parser.add_argument("output_dir", type=Path,
                        help="where outputs go (usually BIDS_DIR/derivatives/samba-bids)")
    parser.add_argument("analysis_level", choices=CHOICES["analysis_level"],
                        help="processing stage")
    g = parser.add_argument_group("selecting data")
    g.add_argument("--participant-label", "--participant_label", nargs="+", default=None,
                   metavar="LABEL", help="participants to process ('sub-' optional)")
    g.add_argument("--session-label", "--session_label", nargs="+", default=None,
                   metavar="LABEL", help="sessions to process")
    g.add_argument("-t", "--task-label", "--task_label", "--task-id", nargs="+", default=None,
                   metavar="LABEL", help="tasks to process")
    g.add_argument("-d", "--derivatives", nargs="+", default=None, type=_derivative,
                   metavar="PATH",
                   help="folders with preprocessed BOLD (fMRIPrep-style) or cleaned EEG/MEG "
                        "recordings (read instead of the raw ones); NAME=PATH accepted. "
                        "Default: the folders under BIDS_DIR/derivatives (their BOLD only)")
    g.add_argument("--bold-space", "--bold_space", default=None,
                   help=f"BOLD space to use ({', '.join(BOLD_SPACES)}); chosen "
                        "automatically when one is present")
    g.add_argument("--modality", choices=CHOICES["modality"], default=None,
                   help="electrophysiology to use")
    g.add_argument("--repetition-time", "--repetition_time", type=float, default=None,
                   dest="repetition_time_s", metavar="SECONDS",
                   help="TR in s, when the BOLD sidecar lacks RepetitionTime")
    g = parser.add_argument_group("templates and atlases")
    g.add_argument("--templates-dir", "--templates_dir", type=Path, default=None,
                   help="offline templates folder (default $SAMBA_TEMPLATES, then the cache)")
    g.add_argument("--ephys-atlas-scale", "--ephys_atlas_scale", type=int, default=None,
                   choices=CHOICES["ephys_atlas_scale"],
                   help="Schaefer 2018 parcels for the electrophysiology")
    g.add_argument("--bold-atlas-scale", "--bold_atlas_scale", type=int, default=None,
                   choices=CHOICES["bold_atlas_scale"], help="Schaefer 2018 parcels for BOLD")
    g = parser.add_argument_group("alignment and model")
    g.add_argument("--volume-trigger", "--volume_trigger", default=None, metavar="DESCRIPTION",
                   help="annotation marking each BOLD volume onset in the recording")
    g.add_argument("--mr-artifacts", "--mr_artifacts", default=None,
                   choices=CHOICES["mr_artifacts"],
                   help="EEG recorded in the MR scanner: remove the gradient artefact (AAS) "
                        "and the pulse artefact (PCA-OBS, needs an ECG channel); auto: "
                        "when the recording carries the gradient artefact (none for a "
                        "recording read from a -d derivatives folder)")
    g.add_argument("--inverse-method", "--inverse_method", default=None,
                   choices=CHOICES["inverse_method"], help="inverse method")
    g.add_argument("--direction", default=None,
                   choices=CHOICES["direction"],
                   help="translate electrophysiology to BOLD (SAMBA), BOLD to "
                        "source-parcel band power (desc-sambareverse outputs), or both")
    g.add_argument("--confounds", default=None, choices=CHOICES["confounds"],
                   help="confound regressors to remove from BOLD")
    g.add_argument("--device", choices=CHOICES["device"], default=None,
                   help="torch device (auto: CUDA when present)")
    g.add_argument("--seed", type=int, default=None, help="random seed")
    g.add_argument("--max-epochs", "--max_epochs", type=int, default=None,
                   help="training epochs at most")
    g.add_argument("--cv", choices=CHOICES["cv"], default=None,
                   help="cross-validation of the participant's model: by run (each paired run "
                        "held out once), by blocks inside each run, or auto (runs with 3 or "
                        "more paired runs)")
    g.add_argument("--models", type=Path, default=None, metavar="TRAINED_OUTPUT_DIR",
                   help="apply the models of an earlier OUTPUT_DIR instead of training: the "
                        "participant's own model there, else its group model; translates "
                        "EEG/MEG-only participants too")
    g.add_argument("--pairing", choices=CHOICES["pairing"], default=None,
                   help="how EEG/MEG and BOLD runs pair: 'participant' (default: the same "
                        "person's runs) or 'stimulus' (group level: different people who saw "
                        "the same stimulus, aligned by the stimulus onset in events.tsv)")
    g.add_argument("--stimulus-event", "--stimulus_event", default=None, metavar="TRIAL_TYPE",
                   help="with --pairing stimulus: the trial_type of the stimulus row in "
                        "events.tsv (default: the row with a stim_file)")
    g.add_argument("--init-from", "--init_from", default=None, metavar="{group,MODEL_FILE}",
                   help="participant level: fine-tune a pretrained model instead of training "
                        "from scratch: 'group' (OUTPUT_DIR/group/desc-groupsamba_model.pt, "
                        "written by the group level with --group-model) or a SAMBA model "
                        "file; its linear path is the prior of the participant's ridge")
    g = parser.add_argument_group("resources and run")
    g.add_argument("-w", "--work-dir", "--work_dir", type=Path, default=None,
                   help="work directory (pybids database, caches)")
    g.add_argument("--nprocs", "--n_cpus", "--n-cpus", type=int, default=None,
                   help="CPU threads to use (torch intra-op threads, parallel filtering)")
    g.add_argument("--omp-nthreads", "--omp_nthreads", type=int, default=None, metavar="N",
                   help="threads per BLAS/OpenMP call (numpy, scipy, MKL, OpenBLAS); at most "
                        "--nprocs (default: --nprocs)")
    g.add_argument("--mem-mb", "--mem_mb", "--mem", type=int, default=None, dest="mem_mb",
                   metavar="MB", help="memory budget in MB; the electrophysiology is "
                                      "streamed in chunks that fit it")
    g.add_argument("--group-model", "--group_model", action="store_true", default=None,
                   help="group level: also train one model across participants, evaluated "
                        "leave-one-participant-out (data-parallel under torchrun)")
    g.add_argument("--overwrite", action="store_true", default=None,
                   help="replace outputs written with a different configuration")
    g.add_argument("--config-file", "--config_file", type=Path, default=None,
                   help="TOML file with settings; the command line overrides it")
    g.add_argument("--skip-bids-validation", "--skip_bids_validation", action="store_true",
                   default=None, help="do not validate the input dataset")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output (repeat for more)")
    parser.add_argument("--version", action="version", version=f"samba-bids {__version__}")
    return parser


#: Parser destinations that map one-to-one onto Config fields.
CONFIG_FIELDS = (
    "bids_dir", "output_dir", "analysis_level", "participant_label", "session_label",
    "task_label", "bold_space", "modality", "repetition_time_s", "templates_dir",
    "ephys_atlas_scale", "bold_atlas_scale", "volume_trigger", "mr_artifacts", "inverse_method",
    "confounds", "direction",
    "device", "seed", "max_epochs", "cv", "pairing", "stimulus_event", "models", "init_from",
    "work_dir", "nprocs",
    "omp_nthreads", "mem_mb", "overwrite",
    "group_model",
    "skip_bids_validation", "verbose",
)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse ``argv`` (``sys.argv[1:]`` when None)."""
    return build_parser().parse_args(argv)
