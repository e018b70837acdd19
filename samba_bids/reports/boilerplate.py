"""Methods boilerplate: ``logs/CITATION.md``, ``.bib`` and ``.html`` of a run (as fMRIPrep's).

The text says what this run actually did: its settings (:class:`~samba_bids.config.Config`),
the source-reconstruction provenance, the split, the BOLD space and atlases, the fitted model
sizes and epochs, the device and the package versions (read when rendering). Everything a
workflow knows about a run goes into one :class:`MethodsContext`
(:func:`methods_context` fills it from the workflow's objects); :func:`render_boilerplate`
writes the three files.

Templates are plain Markdown files in the top-level ``boilerplate/`` folder, one per section,
with ``$placeholders`` filled by :class:`string.Template` and citations in Pandoc's syntax
(``[@key]`` or ``[@key1; @key2]``) whose keys are entries of ``boilerplate/references.bib``.
Sentences that depend on the run (the inverse method, the head model, the confounds, the
ablations) are filled in here; their citations travel with them, so a reference is cited, and
copied into ``CITATION.bib``, only when the run used it. The folder is found by
:func:`find_boilerplate_dir`.

``CITATION.md`` keeps the Pandoc citations (``pandoc --citeproc --bibliography CITATION.bib
CITATION.md``) and ends with a formatted reference list; ``CITATION.html`` is the same text
converted with the ``markdown`` package, the citations as author-year links to its reference
list.
"""

from __future__ import annotations

import html
import logging
import os
import platform
import re
import site
import string
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..errors import NoInputError

logger = logging.getLogger(__name__)

#: Environment variable naming a boilerplate folder (checked first).
BOILERPLATE_ENV = "SAMBA_BOILERPLATE"
#: Where ``setup.cfg`` installs the templates, relative to an installation prefix.
SHARE_SUBDIR = Path("share") / "samba-bids" / "boilerplate"
#: The bibliography every template cites from.
REFERENCES_FILE = "references.bib"

#: Sections in order: (template file, when it is rendered).
SECTIONS = (
    ("data.md", "always"),
    ("ephys_preprocessing.md", "always"),
    ("source_reconstruction.md", "always"),
    ("bold.md", "always"),
    ("alignment.md", "always"),
    ("features.md", "always"),
    ("model.md", "forward"),
    ("training.md", "always"),
    ("evaluation.md", "forward"),
    ("reverse.md", "reverse"),
    ("copyright.md", "always"),
)

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
#: Software entries of references.bib cited by concept DOI: the installed version is noted.
VERSIONED_REFERENCES = {"nilearn": "nilearn", "nibabel": "nibabel"}

#: Inverse methods: (description, citation).
INVERSE_METHODS = {
    "dSPM": ("dynamic statistical parametric mapping (dSPM)", "dale2000dspm"),
    "sLORETA": ("standardized low-resolution electromagnetic tomography (sLORETA)",
                "pascualmarqui2002sloreta"),
    "eLORETA": ("exact low-resolution electromagnetic tomography (eLORETA)",
                "pascualmarqui2007eloreta"),
    "MNE": ("the L2 minimum-norm estimate (MNE)", "hamalainen1994mne"),
}

_CITATION = re.compile(r"\[(@[^\[\]\s;]+(?:\s*;\s*@[^\[\]\s;]+)*)\]")
_MAX_LISTED_CONFOUNDS = 24
_MAX_LISTED_AUTHORS = 10


# --------------------------------------------------------------------------------------------
# What a run did


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
    versions : dict | None
        ``{placeholder suffix: version}`` overriding the versions read at render time
        (keys of :data:`PACKAGES`, plus ``'python'``).
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
    versions: dict | None = field(default=None, repr=False)

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
    if templates_dir is not None:
        from ..templates import is_fallback_templates

        fallback = is_fallback_templates(templates_dir)
        values["templates_kind"] = "fallback" if fallback else "official"
    values.update(details)
    return MethodsContext(**values)


# --------------------------------------------------------------------------------------------
# Templates folder


def boilerplate_candidates() -> list[Path]:
    """Folders searched for the templates, in order.

    ``$SAMBA_BOILERPLATE``; the repository's ``boilerplate/`` beside the package (source
    checkout or editable install); ``<sys.prefix>/share/samba-bids/boilerplate`` (where
    ``setup.cfg``'s ``data_files`` put them in a regular install, e.g. the Docker image);
    ``<user base>/share/samba-bids/boilerplate`` (``pip install --user``).
    """
    candidates = []
    if os.environ.get(BOILERPLATE_ENV):
        candidates.append(Path(os.environ[BOILERPLATE_ENV]).expanduser())
    candidates.append(Path(__file__).resolve().parents[2] / "boilerplate")
    candidates.append(Path(sys.prefix) / SHARE_SUBDIR)
    try:
        user_base = site.getuserbase()
    except Exception:  # pragma: no cover - site without a user base
        user_base = None
    if user_base:
        candidates.append(Path(user_base) / SHARE_SUBDIR)
    return candidates


def find_boilerplate_dir(boilerplate_dir=None) -> Path:
    """The folder holding the boilerplate templates and ``references.bib``.

    Parameters
    ----------
    boilerplate_dir : path-like | None
        A folder to use instead of searching (:func:`boilerplate_candidates`).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    NoInputError
        If no candidate holds ``references.bib``; the message names every place looked in.
    """
    candidates = ([Path(boilerplate_dir).expanduser()] if boilerplate_dir is not None
                  else boilerplate_candidates())
    for candidate in candidates:
        if (candidate / REFERENCES_FILE).is_file():
            return candidate
        if boilerplate_dir is None and os.environ.get(BOILERPLATE_ENV) and \
                candidate == candidates[0]:
            logger.warning("$%s=%s holds no %s; looking elsewhere.", BOILERPLATE_ENV,
                           candidate, REFERENCES_FILE)
    raise NoInputError(
        "The methods boilerplate templates were not found (looked for "
        f"{REFERENCES_FILE} in: {', '.join(map(str, candidates))}). Reinstall samba-bids "
        f"(they are installed into <prefix>/{SHARE_SUBDIR.as_posix()}) or set "
        f"{BOILERPLATE_ENV} to the 'boilerplate' folder of the samba-bids sources."
    )


# --------------------------------------------------------------------------------------------
# BibTeX


@dataclass
class BibEntry:
    """One BibTeX entry.

    Attributes
    ----------
    key : str
    entry_type : str
        Lower case (``article``, ``inproceedings``, ``misc``).
    fields : dict of str to str
        Field names in lower case; values as written, without their outer braces.
    raw : str
        The entry's text as in the file.
    """

    key: str
    entry_type: str
    fields: dict
    raw: str


def _matching_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start`` (backslash-escaped braces skipped)."""
    depth = 0
    for i in range(start, len(text)):
        char = text[i]
        if char in "{}" and i > 0 and text[i - 1] == "\\":
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced braces from character {start}")


def _parse_fields(body: str, where: str) -> dict:
    fields = {}
    pos = 0
    name_re = re.compile(r"\s*([A-Za-z][\w-]*)\s*=\s*")
    while pos < len(body):
        if not body[pos:].strip(" \t\r\n,"):
            break
        match = name_re.match(body, pos)
        if not match:
            raise ValueError(f"{where}: cannot parse a field at {body[pos:pos + 30]!r}")
        name, pos = match.group(1).lower(), match.end()
        if body[pos] == "{":
            end = _matching_brace(body, pos)
            value, pos = body[pos + 1:end], end + 1
        elif body[pos] == '"':
            end = body.index('"', pos + 1)
            value, pos = body[pos + 1:end], end + 1
        else:
            match = re.match(r"[^,\s]+", body[pos:])
            value, pos = match.group(0), pos + match.end()
        if name in fields:
            raise ValueError(f"{where}: field {name!r} given twice")
        fields[name] = value.strip()
        rest = re.match(r"\s*,?", body[pos:])
        pos += rest.end()
    return fields


def parse_bibtex(text: str, *, source: str = "the bibliography") -> dict:
    """Entries of a BibTeX text, by key, in file order.

    Handles what ``references.bib`` uses: ``@type{key, field = {value}, ...}`` with nested
    braces, ``"quoted"`` or bare values; ``%`` comment lines outside entries.

    Raises
    ------
    ValueError
        If an entry's braces do not balance, a field cannot be parsed or a key repeats.
    """
    entries = {}
    pos = 0
    start_re = re.compile(r"@([A-Za-z]+)\s*\{\s*([^,\s{}]+)\s*,")
    while True:
        match = start_re.search(text, pos)
        if match is None:
            break
        brace = text.index("{", match.start())
        try:
            end = _matching_brace(text, brace)
        except ValueError as err:
            raise ValueError(f"{source}: entry {match.group(2)!r}: {err}") from err
        key = match.group(2)
        if key in entries:
            raise ValueError(f"{source}: key {key!r} appears twice")
        fields = _parse_fields(text[match.end():end], f"{source}: entry {key!r}")
        entries[key] = BibEntry(key=key, entry_type=match.group(1).lower(), fields=fields,
                                raw=text[match.start():end + 1])
        pos = end + 1
    return entries


def read_references(boilerplate_dir=None) -> dict:
    """Entries of ``references.bib`` in the boilerplate folder (:func:`parse_bibtex`)."""
    path = find_boilerplate_dir(boilerplate_dir) / REFERENCES_FILE
    return parse_bibtex(path.read_text(encoding="utf-8"), source=str(path))


_ACCENTS = {'"': "\u0308", "'": "\u0301", "^": "\u0302", "`": "\u0300", "~": "\u0303",
            ".": "\u0307", "=": "\u0304"}


def latex_to_text(value: str) -> str:
    """BibTeX field text for display: accent commands to Unicode, braces dropped.

    ``{\\"a}`` -> ``ä``, ``\\&`` -> ``&``, ``--`` -> en dash.
    """
    def accent(match):
        return unicodedata.normalize("NFC", match.group(2) + _ACCENTS[match.group(1)])

    value = re.sub(r"\{?\\([\"'^`~.=])\s*\{?([A-Za-z])\}?\}?", accent, value)
    value = value.replace("\\&", "&").replace("--", "\u2013").replace("\\", "")
    value = value.replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", value).strip()


def _split_authors(value: str) -> list[str]:
    """Names of an ``author`` field, split on top-level `` and ``."""
    names, depth, current = [], 0, []
    tokens = re.split(r"(\s+and\s+|[{}])", value)
    for token in tokens:
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        if depth == 0 and re.fullmatch(r"\s+and\s+", token or ""):
            names.append("".join(current).strip())
            current = []
        else:
            current.append(token or "")
    names.append("".join(current).strip())
    return [name for name in names if name]


def _name_parts(name: str) -> tuple[str, str]:
    """(family, given) of a BibTeX name; corporate ``{Name}`` is all family."""
    if name.startswith("{") and name.endswith("}"):
        return latex_to_text(name), ""
    if "," in name:
        family, given = name.split(",", 1)
        return latex_to_text(family), latex_to_text(given)
    parts = latex_to_text(name).split()
    return parts[-1], " ".join(parts[:-1])


def _initials(given: str) -> str:
    words = [w for w in re.split(r"[\s.]+", given) if w]
    return "".join("-".join(p[0] for p in w.split("-") if p) for w in words)


def _authors(entry: BibEntry) -> tuple[list[tuple[str, str]], bool]:
    names = _split_authors(entry.fields.get("author", ""))
    others = bool(names) and names[-1].strip().lower() == "others"
    if others:
        names = names[:-1]
    return [_name_parts(n) for n in names], others


def citation_labels(entries) -> dict:
    """Author-year labels (``'Gramfort et al., 2013'``) of entries, unique (a/b suffixes)."""
    labels = {}
    for entry in entries:
        authors, others = _authors(entry)
        families = [family for family, _ in authors] or [entry.key]
        if len(families) == 1 and not others:
            who = families[0]
        elif len(families) == 2 and not others:
            who = f"{families[0]} & {families[1]}"
        else:
            who = f"{families[0]} et al."
        labels[entry.key] = (who, entry.fields.get("year", "n.d."))
    counts = {}
    for who_year in labels.values():
        counts[who_year] = counts.get(who_year, 0) + 1
    seen = {}
    out = {}
    for key, (who, year) in labels.items():
        suffix = ""
        if counts[(who, year)] > 1:
            seen[(who, year)] = seen.get((who, year), 0) + 1
            suffix = "abcdefghijklmnopqrstuvwxyz"[seen[(who, year)] - 1]
        out[key] = f"{who}, {year}{suffix}"
    return out


def _reference_parts(entry: BibEntry, label_year: str) -> dict:
    """Pieces of a formatted reference: authors, year, title, venue, link, note."""
    fields = entry.fields
    authors, others = _authors(entry)
    shown = [f"{family} {_initials(given)}".strip() for family, given in authors]
    if len(shown) > _MAX_LISTED_AUTHORS:
        shown, others = shown[:_MAX_LISTED_AUTHORS], True
    who = ", ".join(shown) + (", et al." if others else "")
    venue, details = "", ""
    if entry.entry_type == "article":
        venue = latex_to_text(fields.get("journal", ""))
        volume = latex_to_text(fields.get("volume", ""))
        number = latex_to_text(fields.get("number", ""))
        pages = latex_to_text(fields.get("pages", ""))
        details = volume + (f"({number})" if number else "") + (f":{pages}" if pages else "")
    elif entry.entry_type == "inproceedings":
        venue = latex_to_text(fields.get("booktitle", ""))
        pages = latex_to_text(fields.get("pages", ""))
        details = f"pp. {pages}" if pages else ""
    else:
        venue = latex_to_text(fields.get("publisher", "") or fields.get("howpublished", ""))
    if fields.get("eprint"):
        details = (details + "; " if details else "") + f"arXiv:{fields['eprint']}"
    if fields.get("doi"):
        link = "https://doi.org/" + quote(fields["doi"], safe="/()-._;:")
    elif fields.get("eprint"):
        link = f"https://arxiv.org/abs/{fields['eprint']}"
    else:
        link = fields.get("url", "")
    return {"authors": who, "year": label_year, "title": latex_to_text(fields.get("title", "")),
            "venue": venue, "details": details, "link": link,
            "note": latex_to_text(fields.get("note", "")),
            "sep": " " if entry.entry_type == "article" else ", "}


def _sentence(text: str) -> str:
    """``text`` ending in one full stop (none added after ``?``, ``!`` or ``.``)."""
    text = text.strip()
    return text if not text or text[-1] in ".?!" else text + "."


def _reference_markdown(parts: dict) -> str:
    text = f"{parts['authors']} ({parts['year']}). {_sentence(parts['title'])}"
    venue = f"*{parts['venue']}*" if parts["venue"] else ""
    tail = parts["sep"].join(p for p in (venue, parts["details"]) if p)
    if tail:
        text += f" {_sentence(tail)}"
    if parts["note"]:
        text += f" {_sentence(parts['note'])}"
    if parts["link"]:
        text += f" <{parts['link']}>"
    return text


def _reference_html(parts: dict) -> str:
    esc = html.escape
    text = f"{esc(parts['authors'])} ({esc(parts['year'])}). {esc(_sentence(parts['title']))}"
    venue = f"<em>{esc(parts['venue'])}</em>" if parts["venue"] else ""
    tail = parts["sep"].join(p for p in (venue, esc(parts["details"])) if p)
    if tail:
        text += f" {_sentence(tail)}"
    if parts["note"]:
        text += f" {esc(_sentence(parts['note']))}"
    if parts["link"]:
        link = esc(parts["link"], quote=True)
        text += f' <a href="{link}">{link}</a>'
    return text


# --------------------------------------------------------------------------------------------
# Values of the placeholders


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


def _num(value) -> str:
    """A number as written in the text: ``45.0`` -> ``45``, ``0.001`` -> ``0.001``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return _num(int(value))
    return f"{value:g}"


def _count(value) -> str:
    """An integer with thousands separators (``123,456``)."""
    return f"{int(value):,}"


def _code_list(names, limit=_MAX_LISTED_CONFOUNDS) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def _fmriprep_confound_groups(columns) -> str:
    """What fMRIPrep confound columns are, in words (``'the 6 rigid-body motion ...'``)."""
    motion = [c for c in columns if c.startswith(("trans_", "rot_")) and "derivative" not in c]
    derivatives = [c for c in columns if c.endswith("_derivative1")]
    groups = []
    if motion:
        groups.append(f"{len(motion)} rigid-body motion parameters")
    if derivatives:
        groups.append(f"{len(derivatives)} temporal derivatives of them" if motion
                      else f"{len(derivatives)} temporal derivatives of motion parameters")
    if "csf" in columns:
        groups.append("the mean cerebrospinal-fluid signal")
    if "white_matter" in columns:
        groups.append("the mean white-matter signal")
    return groups[0] if len(groups) == 1 else ", ".join(groups[:-1]) + " and " + groups[-1]


def _space_kind(space: str) -> str:
    if space.startswith("fsaverage"):
        return "surface"
    if space.startswith("fsLR"):
        return "cifti"
    return "volume"


def _fallback_atlas(subject: str) -> str:
    return (f"a k-means parcellation of the {subject} sphere from samba-bids' offline fallback "
            "templates (built from nilearn's fsaverage5; not the Schaefer 2018 atlas, so "
            "the results are for testing only)")


def _schaefer(where: str) -> str:
    return f"the Schaefer 2018 atlas (7 networks) [@schaefer2018parcellation] {where}"


def _provenance_text(value) -> str:
    return str(value).replace("<->", "\u2194")


def _head_model_phrase(provenance: dict) -> str:
    head = str(provenance.get("HeadModel", "")).strip()
    bem = _provenance_text(provenance.get("BEM", "")).strip()
    if not head:
        return "the template head model"
    if head.startswith("single-layer"):
        return ("a single-layer boundary-element model of the inner skull"
                + (f" ({bem})" if bem else ""))
    if head.startswith("three-layer"):
        return "a three-layer boundary-element model" + (f" (`{bem}`)" if bem else "")
    return "a " + _provenance_text(head) + (f"; {bem}" if bem else "")


def _noise_cov_phrase(provenance: dict, modality: str) -> str:
    kind = str(provenance.get("NoiseCovariance", "")).strip()
    rank = provenance.get("NoiseCovarianceRank")
    rank_text = f"rank {rank}" if rank is not None else ""
    if kind.startswith("ad hoc"):
        values = ("0.2 µV for EEG channels" if modality == "eeg"
                  else "5 fT/cm for gradiometers and 20 fT for magnetometers")
        return ("a diagonal ad hoc noise covariance (MNE-Python's `make_ad_hoc_cov`: "
                f"{values}" + (f"; {rank_text}" if rank_text else "") + ")")
    if kind.startswith("empirical"):
        dof = re.search(r"(\d+) degrees of freedom", kind)
        inside = [f"{dof.group(1)} degrees of freedom"] if dof else []
        inside += [rank_text] if rank_text else []
        return ("a noise covariance estimated from the empty-room recording, preprocessed like "
                "the run" + (f" ({'; '.join(inside)})" if inside else ""))
    if kind:
        return f"the noise covariance: {_provenance_text(kind)}"
    return "the noise covariance of the inverse operator"


def _band_list(level: int, sfreq_hz: float) -> str:
    from ..model.wavelet import band_names

    nyquist = float(sfreq_hz) / 2.0
    edges = [0.0] + [nyquist / 2 ** j for j in range(level, 0, -1)] + [nyquist]
    names = band_names(level)
    return ", ".join(f"{name} {_num(lo)}\u2013{_num(hi)} Hz"
                     for name, lo, hi in zip(names, edges[:-1], edges[1:]))


def _hrf_phrase(learn_hrf: bool) -> str:
    from ..model.hrf import HRF_PARAMETERS

    if not learn_hrf:
        return ("the HRF of every BOLD parcel was fixed at SPM's canonical double-gamma HRF "
                "[@friston1998event] (ablation without HRF learning).")
    words = {
        "response_delay_s": ("response delay", " s"),
        "undershoot_delay_s": ("undershoot delay", " s"),
        "response_dispersion_s": ("response dispersion", " s"),
        "undershoot_dispersion_s": ("undershoot dispersion", " s"),
        "response_undershoot_ratio": ("response-to-undershoot ratio", ""),
        "onset_s": ("onset", " s"),
    }
    items = []
    for name, init, low, high in HRF_PARAMETERS:
        label, unit = words.get(name, (name.replace("_", " "), ""))
        items.append(f"{label} {_num(init)}{unit} (range {_num(low)} to {_num(high)}{unit})")
    listed = ", ".join(items[:-1]) + " and " + items[-1]
    return ("each BOLD parcel had its own double-gamma HRF in SPM's parametrisation "
            f"[@friston1998event] with {len(HRF_PARAMETERS)} trainable parameters, each kept "
            "within a physiological range [@handwerker2004variation] by a sigmoid and "
            f"initialised at SPM's canonical HRF: {listed}.")


def template_values(context: MethodsContext) -> dict:
    """The placeholder values of every template for ``context`` (strings)."""
    from ..bold.loading import FMRIPREP_AUTO_CONFOUNDS
    from ..model.baselines import DEFAULT_ALPHAS
    from ..training import MAX_GRAD_NORM

    cfg = context.config
    prov = context.provenance
    modality = context.modality
    upper = modality.upper()
    versions = package_versions()
    versions.update(context.versions or {})
    values = {f"version_{name}": version for name, version in versions.items()}

    n_src = int(context.n_source_parcels or cfg.ephys_atlas_scale)
    n_bold = int(context.n_bold_parcels or cfg.bold_atlas_scale)
    ephys_sfreq = float(context.ephys_sfreq_hz or cfg.resample_sfreq_hz)
    window = int(context.window_trs or cfg.window_trs)
    fallback = context.templates_kind == "fallback"
    space = context.bold_space
    kind = _space_kind(space)
    gap = int(context.gap_volumes)

    # --- data and software ----------------------------------------------------------------
    values.update(
        modality_name="electroencephalography" if modality == "eeg" else "magnetoencephalography",
        modality_upper=upper,
        bids_extension_cite="@pernet2019eegbids" if modality == "eeg" else "@niso2018megbids",
        direction_sentence={
            "ephys-to-bold": "The translation ran from electrophysiology to BOLD.",
            "bold-to-ephys": ("Only the reverse translation was run, from BOLD to "
                              "electrophysiology band power."),
            "both": ("Both directions were run: electrophysiology to BOLD, and BOLD to "
                     "electrophysiology band power."),
        }[context.direction],
        run_sentence=(f" The run-specific values below are those of `{context.run_label}`."
                      if context.run_label else ""),
    )

    # --- electrophysiology preprocessing --------------------------------------------------
    highpass = context.highpass_hz if context.highpass_hz is not None else cfg.l_freq_hz
    lowpass = context.lowpass_hz if context.lowpass_hz is not None else cfg.h_freq_hz
    fir = ("with MNE-Python's default zero-phase FIR filter (firwin design, default "
           "transition bandwidths)")
    if highpass and lowpass:
        filter_phrase = f"band-pass filtered between {_num(highpass)} and {_num(lowpass)} Hz {fir}"
    elif lowpass:
        filter_phrase = f"low-pass filtered at {_num(lowpass)} Hz {fir}"
    elif highpass:
        filter_phrase = f"high-pass filtered at {_num(highpass)} Hz {fir}"
    else:
        filter_phrase = "not filtered"
    if lowpass and cfg.h_freq_hz and float(lowpass) < float(cfg.h_freq_hz) - 1e-6:
        filter_phrase += (f" (the requested low-pass of {_num(cfg.h_freq_hz)} Hz was lowered "
                          "below the Nyquist frequency)")
    if context.sfreq_hz and abs(float(context.sfreq_hz) - ephys_sfreq) > 1e-6:
        resample_clause = f", then resampled to {_num(ephys_sfreq)} Hz"
    elif context.sfreq_hz:
        resample_clause = ""
    else:
        resample_clause = f", at a final sampling rate of {_num(ephys_sfreq)} Hz"
    values.update(
        sfreq_clause=f" (sampled at {_num(context.sfreq_hz)} Hz)" if context.sfreq_hz else "",
        positions_clause=", electrode positions" if modality == "eeg" else "",
        channel_kind=("EEG channels" if modality == "eeg" else
                      "MEG channels (magnetometers and gradiometers, reference sensors "
                      "excluded)"),
        n_channels_clause=(f" ({_count(context.n_channels)} channels)"
                           if context.n_channels else ""),
        filter_phrase=filter_phrase,
        resample_clause=resample_clause,
        reference_sentence=("An average-reference projector was added; the inverse operator "
                            "applies it." if modality == "eeg" else ""),
        artefact_sentence=("samba-bids applied no MR gradient or ballistocardiogram artefact "
                           "correction: the recording was used as stored in the dataset."
                           if modality == "eeg" else ""),
    )

    # --- source reconstruction ------------------------------------------------------------
    method = prov.get("InverseMethod", cfg.inverse_method)
    description, key = INVERSE_METHODS.get(method, (str(method), None))
    snr = float(prov.get("SNR", cfg.snr))
    lambda2 = float(prov.get("Lambda2", 1.0 / snr**2))
    shape = prov.get("ParcelKernelShape")
    values.update(
        ephys_subject=context.ephys_subject,
        source_space=_provenance_text(prov.get("SourceSpace", context.ephys_subject)),
        n_sources=_count(prov["NSources"]) if "NSources" in prov else "all",
        head_model=_head_model_phrase(prov),
        transform=_provenance_text(prov.get("Transform",
                                            "fsaverage head-to-MRI transform of MNE-Python")),
        inverse_phrase=description + (f" [@{key}]" if key else ""),
        loose=_num(prov.get("Loose", 0.2)),
        depth=_num(prov.get("Depth", 0.8)),
        lambda2=f"{lambda2:.4g}",
        snr=_num(snr),
        noise_cov_phrase=_noise_cov_phrase(prov, modality),
        ephys_atlas=(_fallback_atlas(context.ephys_subject) if fallback
                     else _schaefer(f"on {context.ephys_subject}")),
        n_source_parcels=str(n_src),
        kernel_shape=(" × ".join(str(int(n)) for n in shape) if shape
                      else f"{n_src} × {context.n_channels or 'n'}"),
        chunk_s=_num(cfg.chunk_s),
    )

    # --- BOLD -------------------------------------------------------------------------------
    if kind == "surface":
        space_phrase = (f"on the {space} surface [@fischl1999fsaverage], one GIFTI file per "
                        "hemisphere,")
        atlas = _fallback_atlas(space) if fallback else _schaefer(f"on {space}")
        mean_phrase = " (mean over each parcel's vertices; medial wall excluded)"
        elements = "vertices"
    elif kind == "cifti":
        space_phrase = (f"on the {space} grayordinates [@vanessen2012fslr], a CIFTI-2 dense "
                        "time series,")
        atlas = _fallback_atlas(space) if fallback else _schaefer(f"on {space}")
        mean_phrase = " (mean over each parcel's grayordinates)"
        elements = "grayordinates"
    else:
        space_phrase = f"in {space} space" + (" [@evans2012templates]"
                                              if space.startswith("MNI152") else "")
        space_phrase += ", a NIfTI image,"
        atlas = (_fallback_atlas(space) if fallback
                 else _schaefer(f"in {space} space from TemplateFlow [@ciric2022templateflow]"))
        mean_phrase = (" (mean over each parcel's voxels with nilearn's `NiftiLabelsMasker`, "
                       "the atlas resampled to the BOLD grid by nearest neighbour where the "
                       "grids differed)")
        elements = "voxels"
    columns = list(context.confound_columns or [])
    strategy = cfg.confounds
    if strategy == "none":
        confound_sentence = "No confound regression was requested (`--confounds none`)."
    elif not columns:
        confound_sentence = ("No nuisance regressors were available for this run (no "
                             "confounds table, or no column that varied), so none were "
                             "regressed out.")
    elif strategy == "auto" and set(columns) <= set(FMRIPREP_AUTO_CONFOUNDS):
        confound_sentence = (
            f"The {len(columns)} nuisance regressors of the `auto` confound strategy were "
            f"taken from the fMRIPrep confounds table: {_code_list(columns)} "
            f"({_fmriprep_confound_groups(columns)}); missing values"
            + (" (the first row of the derivatives)" if any(c.endswith("_derivative1")
                                                         for c in columns) else "")
            + " were set to 0.")
    else:
        confound_sentence = (
            f"All {len(columns)} non-constant columns of the confounds table (strategy "
            f"`{strategy}`) were used as nuisance regressors: {_code_list(columns)}; missing "
            "values were set to 0.")
    values.update(
        n_volumes=str(context.n_volumes),
        tr_s=_num(context.tr_s),
        space_phrase=space_phrase,
        n_bold_parcels=str(n_bold),
        bold_atlas=atlas,
        parcel_mean_phrase=mean_phrase,
        confound_sentence=confound_sentence,
        confound_clause=(f" and the {len(columns)} nuisance regressors regressed out"
                         if columns and strategy != "none" else ""),
        bold_space=space,
        parcel_elements=elements,
    )

    # --- alignment and split -----------------------------------------------------------------
    clock = context.alignment
    trigger = cfg.volume_trigger
    if clock is None:
        clock = f"volume triggers {trigger!r}" if trigger else "shared start"
    if clock.startswith("volume triggers"):
        name = trigger or clock[len("volume triggers"):].strip().strip("'\"")
        alignment_sentence = (
            "The two recordings were put on one clock with the volume triggers recorded with "
            f"the electrophysiology (annotation `{name}`), one per BOLD volume.")
    elif clock.startswith("shared start"):
        alignment_sentence = (
            "No volume triggers were given, so both recordings were assumed to start at the "
            "same time (t = 0), with one volume every TR; this assumption could not be "
            "checked.")
    else:
        alignment_sentence = f"The two recordings were aligned by {_provenance_text(clock)}."
    values.update(
        alignment_sentence=alignment_sentence,
        samples_per_tr=str(int(round(context.tr_s * ephys_sfreq))),
        ephys_sfreq_hz=_num(ephys_sfreq),
        n_train=str(context.n_train_volumes),
        n_validation=str(context.n_validation_volumes),
        n_test=str(context.n_test_volumes),
        gap_volumes=str(gap),
        gap_s=_num(round(gap * float(context.tr_s), 6)),
        hrf_support_s=_num(cfg.hrf_support_s),
        train_percent=_num(round(100 * cfg.train_fraction, 4)),
        validation_percent=_num(round(100 * cfg.validation_fraction, 4)),
    )

    # --- features, graphs, model --------------------------------------------------------------
    values.update(
        wavelet=cfg.wavelet,
        wavelet_level=str(cfg.wavelet_level),
        n_bands=str(cfg.wavelet_level + 1),
        band_list=_band_list(cfg.wavelet_level, ephys_sfreq),
        k_spatial=str(cfg.k_spatial),
        k_functional=str(cfg.k_functional),
        hidden_size=str(cfg.hidden_size),
        attention_phrase=(
            "weighted by an attention over bands computed from the input (softmax over band "
            "scores)" if cfg.use_wavelet_attention else
            "averaged with uniform weights (ablation without wavelet attention)"),
        rnn_phrase=(f"LSTM [@hochreiter1997lstm] (hidden size {cfg.hidden_size})"
                    if cfg.rnn == "lstm" else
                    f"GRU [@cho2014gru] (hidden size {cfg.hidden_size})"),
        spatial_phrase=(
            f"graph attention with GATv2 [@brody2022gatv2] (PyTorch Geometric's `GATv2Conv`, "
            f"{cfg.gat_heads} heads concatenated and projected back to the hidden size) from "
            "the source parcels to the BOLD parcels on the bipartite graph, then residual "
            "GATv2 on the BOLD parcel graph" if cfg.use_graph else
            "a learned dense linear map from the source to the BOLD parcels per TR segment "
            "(ablation without graph attention; the graphs were not used)"),
        hrf_phrase=_hrf_phrase(cfg.learn_hrf),
        dropout=_num(cfg.dropout),
        n_parameters_sentence=(f"The model had {_count(context.n_parameters)} trainable "
                               "parameters." if context.n_parameters is not None else ""),
    )

    # --- training -----------------------------------------------------------------------------
    device = str(context.device or cfg.device)
    if device.startswith("cuda"):
        device_phrase = "a CUDA GPU" + (f" ({context.device_name})" if context.device_name
                                        else "")
    elif device == "cpu":
        device_phrase = "the CPU"
    elif device == "auto":
        device_phrase = "the device chosen automatically (a CUDA GPU when available, else the CPU)"
    else:
        device_phrase = f"the `{device}` device"
    contexts = []
    if context.forward:
        contexts.append("the electrophysiology before the targets for the forward model")
    if context.reverse:
        contexts.append("the BOLD after the targets for the reverse model")
    forward_fit = ""
    if context.forward and context.epochs_run is not None and context.best_epoch is not None:
        forward_fit = (f"The electrophysiology-to-BOLD model trained for {context.epochs_run} "
                       f"epochs and kept the weights of epoch {context.best_epoch}.")
    values.update(
        learning_rate=_num(cfg.learning_rate),
        weight_decay=_num(cfg.weight_decay),
        batch_size=str(cfg.batch_size),
        max_grad_norm=_num(MAX_GRAD_NORM),
        device_phrase=device_phrase,
        seed=str(cfg.seed),
        window_trs=str(window),
        context_phrase="; ".join(contexts),
        mse_weight=_num(cfg.mse_weight),
        patience=str(cfg.patience),
        max_epochs=str(cfg.max_epochs),
        forward_fit_sentence=forward_fit,
    )

    # --- evaluation, reverse ---------------------------------------------------------------
    alphas = list(DEFAULT_ALPHAS)
    ablations = [a for a in context.ablations if a != "samba"]
    values.update(
        n_null=_count(context.n_null),
        n_alphas=str(len(alphas)),
        alpha_min=f"{min(alphas):g}",
        alpha_max=f"{max(alphas):g}",
        ridge_alpha_clause=(f" (chosen: {context.ridge_alpha:g})"
                            if context.ridge_alpha is not None else ""),
        ablation_sentence=(
            f"The ablations {_code_list(ablations)} were trained, selected and scored on the "
            "same split." if ablations else ""),
        n_taps=str(gap + 1),
    )
    params, epochs, best = (context.reverse_n_parameters, context.reverse_epochs_run,
                            context.reverse_best_epoch)
    trained = (f"trained for {epochs} epochs and kept the weights of epoch {best}"
               if epochs is not None and best is not None else "")
    if params is not None:
        reverse_fit = f"It had {_count(params)} trainable parameters" + (
            f", {trained}." if trained else ".")
    else:
        reverse_fit = f"It {trained}." if trained else ""
    values["reverse_fit_sentence"] = reverse_fit
    return values


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass
class Boilerplate:
    """The rendered boilerplate.

    Attributes
    ----------
    markdown : str
        ``CITATION.md``: sections with Pandoc citations, then the reference list.
    html : str
        ``CITATION.html``: a complete HTML document (no scripts).
    bibtex : str
        ``CITATION.bib``: the cited entries.
    keys : list of str
        Cited keys, in reference-list order.
    """

    markdown: str
    html: str
    bibtex: str
    keys: list


def _tidy(text: str) -> str:
    """Collapse the spaces left by empty placeholders."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r" +([.,;])", r"\1", text)
    return re.sub(r"[ \t]+\n", "\n", text).strip() + "\n"


def _render_sections(context: MethodsContext, folder: Path) -> str:
    values = template_values(context)
    wanted = {"always": True, "forward": context.forward, "reverse": context.reverse}
    parts = []
    for name, when in SECTIONS:
        if not wanted[when]:
            continue
        path = folder / name
        try:
            template = string.Template(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise NoInputError(f"{path}: boilerplate template missing or unreadable ({err}); "
                               "reinstall samba-bids.") from err
        try:
            parts.append(_tidy(template.substitute(values)))
        except (KeyError, ValueError) as err:
            raise ValueError(f"{path}: unknown or malformed placeholder {err}.") from err
    return "\n".join(parts)


def cited_keys(text: str) -> list[str]:
    """Keys of the Pandoc citations (``[@a; @b]``) in ``text``, in order of first use."""
    keys = []
    for match in _CITATION.finditer(text):
        for item in match.group(1).split(";"):
            key = item.strip().lstrip("@")
            if key not in keys:
                keys.append(key)
    return keys


def _bibtex_entry(entry: BibEntry, versions: dict) -> str:
    raw = entry.raw
    package = VERSIONED_REFERENCES.get(entry.key)
    if package and "note" not in entry.fields and versions.get(package):
        raw = raw[:-1].rstrip()
        raw = raw.rstrip(",") + f",\n  note = {{Version {versions[package]}}}\n}}"
    return raw


def render(context: MethodsContext, *, boilerplate_dir=None) -> Boilerplate:
    """Render the methods text of ``context`` in Markdown, HTML and BibTeX (in memory).

    Parameters
    ----------
    context : MethodsContext
        What the run did.
    boilerplate_dir : path-like | None
        Templates folder; default :func:`find_boilerplate_dir`.

    Returns
    -------
    Boilerplate

    Raises
    ------
    NoInputError
        If the templates are not found.
    ValueError
        If a template cites a key that ``references.bib`` lacks, or has an unknown
        placeholder.
    """
    import markdown as markdown_lib

    folder = find_boilerplate_dir(boilerplate_dir)
    references = parse_bibtex((folder / REFERENCES_FILE).read_text(encoding="utf-8"),
                              source=str(folder / REFERENCES_FILE))
    body = _render_sections(context, folder)
    used = cited_keys(body)
    missing = [key for key in used if key not in references]
    if missing:
        raise ValueError(f"The boilerplate cites {', '.join(missing)}, which "
                         f"{folder / REFERENCES_FILE} lacks; add the entries.")
    versions = package_versions()
    versions.update(context.versions or {})
    entries = []
    for key in used:
        entry = references[key]
        package = VERSIONED_REFERENCES.get(key)
        if package and "note" not in entry.fields and versions.get(package):
            entry = BibEntry(key, entry.entry_type,
                             {**entry.fields, "note": f"Version {versions[package]}"}, entry.raw)
        entries.append(entry)
    labels = citation_labels(entries)
    entries.sort(key=lambda e: (labels[e.key].lower(), e.key))
    keys = [e.key for e in entries]

    parts = {e.key: _reference_parts(e, labels[e.key].rsplit(", ", 1)[-1]) for e in entries}
    md_refs = "\n".join(f"- `{key}`: {_reference_markdown(parts[key])}" for key in keys)
    markdown_text = body + "\n### References\n\n" + md_refs + "\n"

    def cite_html(match):
        links = []
        for item in match.group(1).split(";"):
            key = item.strip().lstrip("@")
            links.append(f'<a href="#ref-{html.escape(key, quote=True)}" '
                         f'class="citation">{html.escape(labels[key])}</a>')
        return "(" + "; ".join(links) + ")"

    body_html = markdown_lib.markdown(_CITATION.sub(cite_html, body), output_format="html")
    html_refs = "\n".join(f'<li id="ref-{html.escape(key, quote=True)}">'
                          f"{_reference_html(parts[key])}</li>" for key in keys)
    version = html.escape(versions.get("samba_bids", ""))
    html_text = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta name=\"generator\" content=\"samba-bids {version}\">\n"
        "<title>samba-bids: methods boilerplate</title>\n"
        "<style>body{font-family:sans-serif;max-width:52em;margin:2em auto;padding:0 1em;"
        "line-height:1.5}code{font-size:90%}ol.references li{margin-bottom:0.4em}</style>\n"
        "</head>\n<body>\n"
        f"{body_html}\n<h3 id=\"references\">References</h3>\n"
        f"<ol class=\"references\">\n{html_refs}\n</ol>\n</body>\n</html>\n"
    )
    header = (f"% References cited by the samba-bids {versions.get('samba_bids', '')} methods "
              "boilerplate (CITATION.md).\n\n")
    bibtex = header + "\n\n".join(_bibtex_entry(references[key], versions) for key in keys) + "\n"
    return Boilerplate(markdown=markdown_text, html=html_text, bibtex=bibtex, keys=keys)


def render_boilerplate(context: MethodsContext, logs_dir, *, boilerplate_dir=None) -> list[Path]:
    """Write ``CITATION.md``, ``CITATION.bib`` and ``CITATION.html`` into ``logs_dir``.

    Parameters
    ----------
    context : MethodsContext
        What the run did (:func:`methods_context`).
    logs_dir : path-like
        Output folder, usually ``<output_dir>/logs``; created if needed. Existing files are
        replaced atomically.
    boilerplate_dir : path-like | None
        Templates folder; default :func:`find_boilerplate_dir`.

    Returns
    -------
    list of pathlib.Path
        The three files, in the order md, bib, html.

    Raises
    ------
    NoInputError
        If the templates are not found.
    samba_bids.errors.CantCreateError
        If ``logs_dir`` cannot be created.
    """
    from ..bids.derivatives import atomic_path

    rendered = render(context, boilerplate_dir=boilerplate_dir)
    logs_dir = Path(logs_dir)
    written = []
    for name, text in (("CITATION.md", rendered.markdown), ("CITATION.bib", rendered.bibtex),
                       ("CITATION.html", rendered.html)):
        path = logs_dir / name
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written.append(path)
    logger.info("Methods boilerplate written to %s (%d references).", logs_dir,
                len(rendered.keys))
    return written
