"""The ``samba-bids`` entry point: parse, resolve the configuration, run, map errors to exit codes."""

from __future__ import annotations

import logging
import sys

from ..config import Config
from ..errors import SambaBidsError, UsageError
from .parser import CONFIG_FIELDS, parse_args

logger = logging.getLogger("samba_bids")


def build_config(args) -> Config:
    """Resolve a :class:`Config` from parsed arguments (command line over ``--config-file``)."""
    overrides = {}
    for name in CONFIG_FIELDS:
        value = getattr(args, name, None)
        if value is None or (name == "verbose" and value == 0):
            continue
        overrides[name] = value
    if args.derivatives is not None:
        overrides["derivatives"] = dict(args.derivatives)
    if args.config_file is not None:
        return Config.from_toml(args.config_file, **overrides)
    return Config(**overrides)


def _setup_logging(verbose):
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S")
    logger.setLevel(level)
    for noisy in ("mne", "bids", "nilearn", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _one_line(err: BaseException) -> str:
    """The error's message on one line (newlines and runs of spaces collapsed)."""
    return " ".join(str(err).split()) or type(err).__name__


def entry() -> int:
    """The ``samba-bids`` console command: the process settings of
    :func:`~samba_bids.resources.apply_process_environment` (OpenMP wait policy) and
    :func:`~samba_bids.resources.tune_malloc`, before torch loads, then :func:`main`."""
    from ..resources import apply_process_environment, tune_malloc

    apply_process_environment()
    tune_malloc()
    return main()


def main(argv=None) -> int:
    """Run samba-bids; return the exit code (0 success, BEP027 codes on errors)."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for usage errors -> 64 (EX_USAGE)
        return 0 if exc.code in (0, None) else UsageError.exit_code
    _setup_logging(args.verbose)
    try:
        config = build_config(args)
        from ..workflows import run

        results = run(config)
    except SambaBidsError as err:
        # the one line on stderr is the message; the log gets the traceback at DEBUG (-vv)
        logger.debug("%s: %s", type(err).__name__, err, exc_info=True)
        print(f"samba-bids: error: {_one_line(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("samba-bids: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line, the traceback in the -vv log
        logger.debug("Unexpected error", exc_info=True)
        print(f"samba-bids: error: unexpected {type(err).__name__}: {_one_line(err)} "
              "(rerun with -vv for the traceback)", file=sys.stderr)
        return 1
    for line in results.summary_lines():
        print(line)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
