"""``samba-bids-fetch-templates``: fetch the templates folder from the official sources.

Run it once on a machine with internet (the Docker image runs it at build time); compute
nodes then read the folder offline through ``--templates-dir`` or ``$SAMBA_TEMPLATES``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .. import __version__
from ..errors import SambaBidsError, UsageError

logger = logging.getLogger("samba_bids")


def build_parser() -> argparse.ArgumentParser:
    """The ``samba-bids-fetch-templates`` argument parser."""
    from ..templates.fetch import DEFAULT_FETCH_SPACES, FETCH_SPACES

    parser = argparse.ArgumentParser(
        prog="samba-bids-fetch-templates",
        description="Download the Schaefer 2018 atlases and template surfaces samba-bids "
                    "needs (CBIG, TemplateFlow, HCP Pipelines, MNE-Python; fsaverage5 "
                    "surfaces from nilearn) into a templates folder for --templates-dir.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dest", type=Path, help="templates folder to create")
    parser.add_argument("--scales", nargs="+", type=int, default=[100, 200, 400],
                        choices=[100, 200, 400], metavar="N",
                        help="Schaefer 2018 scales (total parcels): 100, 200, 400")
    parser.add_argument("--spaces", nargs="+", default=list(DEFAULT_FETCH_SPACES),
                        choices=list(FETCH_SPACES), metavar="SPACE",
                        help=f"parts to fetch: {', '.join(FETCH_SPACES)} (fsaverage: MNE's "
                             "fsaverage three-layer BEM for EEG head models)")
    parser.add_argument("--sources-file", type=Path, default=None, metavar="FILE.json",
                        help="JSON object of replacement URLs (a local mirror), keyed by "
                             "source name; see --list-sources")
    parser.add_argument("--list-sources", action="store_true",
                        help="print the source names and URLs of this fetch and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output")
    parser.add_argument("--version", action="version",
                        version=f"samba-bids-fetch-templates {__version__}")
    return parser


def _read_sources(path):
    if path is None:
        return None
    try:
        sources = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: cannot read the sources file ({err}).") from err
    if not isinstance(sources, dict):
        raise UsageError(f"{path}: expected a JSON object of source name -> URL.")
    return sources


def main(argv=None) -> int:
    """Run the fetch; return the exit code (0, or the BEP027 code of the error)."""
    from ..templates.fetch import fetch_sources, fetch_templates

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else UsageError.exit_code
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S")
    logger.setLevel(level)
    if args.list_sources:
        for name, source in fetch_sources(args.scales, args.spaces).items():
            print(f"{name}\t{source['url']}")
        return 0
    try:
        dest = fetch_templates(args.dest, scales=args.scales, spaces=args.spaces,
                               sources=_read_sources(args.sources_file))
    except SambaBidsError as err:
        print(f"samba-bids-fetch-templates: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("samba-bids-fetch-templates: interrupted", file=sys.stderr)
        return 130
    print(f"templates in {dest} (see {dest / 'README.md'}); pass --templates-dir {dest} "
          f"or set SAMBA_TEMPLATES={dest}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
