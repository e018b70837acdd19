"""Errors with BIDS-App exit codes (BEP027, following sysexits.h).

Every error raised for bad input names the offending file and the fix; the command-line
entry point turns it into a one-line message and its exit code.
"""


class SambaBidsError(Exception):
    """Base class; ``exit_code`` is the process exit status for the CLI."""

    exit_code = 1


class ValidationError(SambaBidsError):
    """The input folder is not a valid BIDS dataset (exit 16)."""

    exit_code = 16


class EmptySelectionError(SambaBidsError):
    """Entity filters (participant, session, task) select nothing (exit 18)."""

    exit_code = 18


class UsageError(SambaBidsError):
    """Command-line or configuration misuse (exit 64, EX_USAGE)."""

    exit_code = 64


class DataError(SambaBidsError):
    """Input data are present but unusable (exit 65, EX_DATAERR)."""

    exit_code = 65


class NoInputError(SambaBidsError):
    """A required input file or folder is missing (exit 66, EX_NOINPUT)."""

    exit_code = 66


class CantCreateError(SambaBidsError):
    """An output file or folder cannot be created (exit 73, EX_CANTCREAT)."""

    exit_code = 73


class TerminatedError(SambaBidsError):
    """SIGTERM received (a scheduler's time limit, ``docker stop``): 128 + 15."""

    exit_code = 143
