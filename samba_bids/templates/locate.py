"""Find the templates folder and the template files that are not atlases.

:func:`find_templates_dir` returns ``--templates-dir``, else ``$SAMBA_TEMPLATES``, else the
user cache; nothing is downloaded here (``samba-bids-fetch-templates``,
:mod:`samba_bids.templates.fetch`, does that). Where no templates folder exists, the simulator
and the demo (never the main ``samba-bids`` command) ask for the offline *fallback*
(:func:`samba_bids.templates.fallback.build_fallback_templates`): fsaverage5 surfaces from
nilearn and a k-means parcellation of the sphere written under the Schaefer file names. It is
not the Schaefer atlas, and it has no MNI152NLin6Asym folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import CantCreateError, NoInputError
from .spaces import FALLBACK_DESCRIPTION

# The package's logger, as before the split into modules: log lines keep their name.
logger = logging.getLogger(__package__)


def _default_candidates() -> list[Path]:
    candidates = []
    if os.environ.get("SAMBA_TEMPLATES"):
        candidates.append(Path(os.environ["SAMBA_TEMPLATES"]).expanduser())
    candidates.append(_cache_dir() / "templates")
    return candidates


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "samba-bids"


def fallback_templates_path() -> Path:
    """Folder where :func:`find_templates_dir` keeps the offline fallback.

    ``$SAMBA_TEMPLATES_FALLBACK`` when set, else ``<user cache>/samba-bids/templates-fallback``
    (user cache: ``$XDG_CACHE_HOME``, else ``~/.cache``). It may not exist yet.
    """
    if os.environ.get("SAMBA_TEMPLATES_FALLBACK"):
        return Path(os.environ["SAMBA_TEMPLATES_FALLBACK"]).expanduser()
    return _cache_dir() / "templates-fallback"


def is_fallback_templates(templates_dir) -> bool:
    """Whether ``templates_dir`` was written by :func:`build_fallback_templates`."""
    return (Path(templates_dir) / FALLBACK_DESCRIPTION).is_file()


def find_templates_dir(templates_dir=None, *, fallback: bool = False) -> Path:
    """Return the templates folder: the argument, else ``$SAMBA_TEMPLATES``, else the cache.

    Parameters
    ----------
    templates_dir : path-like | None
        Folder given on the command line (``--templates-dir``). A folder given here must
        exist: it is never replaced by the fallback.
    fallback : bool
        When ``templates_dir`` is None and neither ``$SAMBA_TEMPLATES`` nor the cache holds a
        folder, return the offline fallback (:func:`build_fallback_templates`, built once into
        :func:`fallback_templates_path`, under a file lock) and log a WARNING that its parcels
        are not Schaefer's. For the simulator and the demo only: a real analysis must not run
        on sphere parcels.

    Returns
    -------
    Path
        An existing folder.

    Raises
    ------
    NoInputError
        If no candidate folder exists (and ``fallback`` is False or ``templates_dir`` was
        given).
    CantCreateError
        If the fallback cannot be written.
    """
    if templates_dir is not None:
        candidates = [Path(templates_dir).expanduser()]
    else:
        candidates = _default_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    if fallback and templates_dir is None:
        path = _ensure_fallback(fallback_templates_path())
        logger.warning(
            "No templates folder found (looked in %s); using the offline fallback %s built from "
            "nilearn's fsaverage5 and MNE's fsaverage head model. Its parcels are a k-means "
            "parcellation of the sphere written under the Schaefer 2018 file names, NOT the "
            "Schaefer atlas, and it has no MNI152NLin6Asym atlas: fine for simulations and "
            "tests only. Pass --templates-dir PATH for the real atlases.",
            ", ".join(map(str, candidates)), path,
        )
        return path
    raise NoInputError(
        f"No templates folder found (looked in {', '.join(map(str, candidates))}); "
        "pass --templates-dir PATH or set SAMBA_TEMPLATES."
    )


def _ensure_fallback(dest: Path) -> Path:
    """Build the fallback into ``dest`` unless it is there; one process at a time."""
    from filelock import FileLock

    from .fallback import build_fallback_templates

    if is_fallback_templates(dest):
        return dest.resolve()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CantCreateError(
            f"Cannot create {dest.parent} for the fallback templates ({err.strerror}); set "
            "SAMBA_TEMPLATES_FALLBACK to a writable folder or pass --templates-dir."
        ) from err
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if not is_fallback_templates(dest):  # another process may have built it meanwhile
            build_fallback_templates(dest, scales=(100, 200, 400))
    return dest.resolve()


def surface_subject_dir(templates_dir, subject="fsaverage5") -> Path:
    """Folder of a FreeSurfer template subject, e.g. ``templates/fsaverage5``.

    Raises
    ------
    NoInputError
        If the folder or its ``surf/`` is missing.
    """
    path = Path(templates_dir) / subject
    if not (path / "surf").is_dir():
        raise NoInputError(
            f"{path}/surf is missing from the templates folder; fetch the {subject} "
            "template into --templates-dir."
        )
    return path



def find_three_layer_bem(templates_dir, subject: str) -> Path | None:
    """First ``*-bem-sol.fif`` with three layers in ``<subject>/bem`` or ``fsaverage/bem``.

    The EEG forward on a template uses it when present (else a sphere model fitted to the
    head); :func:`samba_bids.templates.fetch.fetch_templates` checks that a fetched
    ``fsaverage/bem`` has one.

    Parameters
    ----------
    templates_dir : path-like
        Templates folder.
    subject : str
        Template subject, e.g. ``fsaverage5``.

    Returns
    -------
    Path | None
        The BEM solution file, or None if there is none. Unreadable files are logged and
        skipped.
    """
    import mne

    templates_dir = Path(templates_dir)
    for folder in (templates_dir / subject / "bem", templates_dir / "fsaverage" / "bem"):
        for fname in sorted(folder.glob("*-bem-sol.fif")):
            try:
                surfs = mne.read_bem_surfaces(fname, verbose=False)
            except Exception as err:  # unreadable: say so and keep looking
                logger.warning("%s: not a readable BEM (%s); ignored.", fname, err)
                continue
            if len(surfs) == 3:
                return fname
    return None
