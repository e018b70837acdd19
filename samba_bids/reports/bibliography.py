"""The bibliography of the methods boilerplate: BibTeX entries, citations and references.

BibTeX is read with pybtex (:func:`pybtex.database.parse_string`; names as
:class:`pybtex.database.Person`, LaTeX to text with :meth:`pybtex.richtext.Text.from_latex`).
Citations are Pandoc's (``[@key]`` or ``[@key1; @key2]``); :func:`citation_labels` gives them
author-year labels and :func:`format_references` writes the reference list in Markdown and
HTML. Nothing here knows about runs or templates (:mod:`samba_bids.reports.boilerplate`).
"""

from __future__ import annotations

import dataclasses
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

#: A Pandoc citation: ``[@key]`` or ``[@key1; @key2]``.
CITATION = re.compile(r"\[(@[^\[\]\s;]+(?:\s*;\s*@[^\[\]\s;]+)*)\]")
#: Authors listed in a reference before "et al.".
MAX_LISTED_AUTHORS = 10

# ``%`` comment lines: blanked (same length, so offsets hold) before pybtex reads the text, as
# BibTeX would otherwise read an ``@`` inside them as the start of an entry.
_COMMENT_LINE = re.compile(r"^[ \t]*%.*$", flags=re.MULTILINE)


@dataclass
class BibEntry:
    """One BibTeX entry.

    Attributes
    ----------
    key : str
    entry_type : str
        Lower case (``article``, ``inproceedings``, ``misc``).
    fields : dict of str to str
        Field names in lower case; values without their outer braces or quotes, runs of white
        space collapsed (pybtex); name fields (``author``) joined back with `` and ``.
    raw : str
        The entry's text as in the file.
    persons : dict of str to list of pybtex.database.Person
        Parsed name fields (``author``, ``editor``), in order.
    """

    key: str
    entry_type: str
    fields: dict
    raw: str
    persons: dict = field(default_factory=dict, repr=False)


def _error_message(error, source: str) -> str:
    key = getattr(getattr(error, "parser", None), "current_entry_key", None)
    return f"{source}: entry {key!r}: {error}" if key else f"{source}: {error}"


def _entry_texts(text: str) -> dict:
    """``{key: the entry's text from its @ to its closing brace}`` of a valid BibTeX text."""
    from pybtex.database.input.bibtex import LowLevelParser

    parser = LowLevelParser(text, handle_error=lambda error: None)
    texts = {}
    for command, (key, _) in parser:
        if command.lower() not in ("string", "preamble"):
            texts[key] = text[parser.command_start:parser.pos]
    return texts


def parse_bibtex(text: str, *, source: str = "the bibliography") -> dict:
    """Entries of a BibTeX text, by key, in file order.

    Read with pybtex; ``%`` comment lines outside entries are skipped.

    Parameters
    ----------
    text : str
        BibTeX source.
    source : str
        Where the text comes from (a file name), for the error messages.

    Returns
    -------
    dict of str to BibEntry

    Raises
    ------
    ValueError
        If an entry's braces do not balance, a field cannot be parsed, a field or a key
        repeats; the message names ``source`` and the entry.
    """
    import pybtex.errors
    from pybtex.database import parse_string
    from pybtex.exceptions import PybtexError

    text = _COMMENT_LINE.sub(lambda match: " " * len(match.group()), text)
    with pybtex.errors.capture() as errors:  # collected whatever pybtex's strict mode is
        try:
            data = parse_string(text, "bibtex")
        except PybtexError as error:
            errors.append(error)
    if errors:
        raise ValueError(_error_message(errors[0], source)) from errors[0]
    raw = _entry_texts(text)
    entries = {}
    for key, entry in data.entries.items():
        fields = {name.lower(): value for name, value in entry.fields.items()}
        persons = {role.lower(): list(names) for role, names in entry.persons.items()}
        for role, names in persons.items():
            fields[role] = " and ".join(str(name) for name in names)
        entries[key] = BibEntry(key=key, entry_type=entry.type.lower(), fields=fields,
                                raw=raw[key], persons=persons)
    return entries


def read_bibtex(path) -> dict:
    """Entries of a ``.bib`` file (:func:`parse_bibtex`); errors name the file."""
    path = Path(path)
    return parse_bibtex(path.read_text(encoding="utf-8"), source=str(path))


def with_version_note(entry: BibEntry, version: str | None) -> BibEntry:
    """``entry`` with ``note = {Version <version>}`` added, in its fields and its text.

    Unchanged when ``version`` is empty or the entry already has a note.
    """
    if not version or "note" in entry.fields:
        return entry
    raw = entry.raw[:-1].rstrip().rstrip(",") + f",\n  note = {{Version {version}}}\n}}"
    return dataclasses.replace(entry, fields={**entry.fields, "note": f"Version {version}"},
                               raw=raw)


def latex_to_text(value: str) -> str:
    """BibTeX field text for display: LaTeX decoded by pybtex, braces dropped, spaces collapsed.

    ``{\\"a}`` -> ``ä``, ``\\&`` -> ``&``, ``--`` -> en dash.
    """
    from pybtex.richtext import Text

    return " ".join(Text.from_latex(value).render_as("text").split())


# --------------------------------------------------------------------------------------------
# Citations


def cited_keys(text: str) -> list[str]:
    """Keys of the Pandoc citations (``[@a; @b]``) in ``text``, in order of first use."""
    keys = []
    for match in CITATION.finditer(text):
        for item in match.group(1).split(";"):
            key = item.strip().lstrip("@")
            if key not in keys:
                keys.append(key)
    return keys


def link_citations(text: str, labels: dict) -> str:
    """``text`` with each Pandoc citation replaced by author-year links to ``#ref-<key>``."""
    def cite_html(match):
        links = []
        for item in match.group(1).split(";"):
            key = item.strip().lstrip("@")
            links.append(f'<a href="#ref-{html.escape(key, quote=True)}" '
                         f'class="citation">{html.escape(labels[key])}</a>')
        return "(" + "; ".join(links) + ")"

    return CITATION.sub(cite_html, text)


def _initials(given: str) -> str:
    words = [w for w in re.split(r"[\s.]+", given) if w]
    return "".join("-".join(p[0] for p in w.split("-") if p) for w in words)


def _authors(entry: BibEntry) -> tuple[list[tuple[str, str, str]], bool]:
    """``([(family, given, lineage), ...], whether the list ends in "and others")``.

    Family: pybtex's von and last parts; given: its first and middle names.
    """
    persons = list(entry.persons.get("author", []))
    others = bool(persons) and str(persons[-1]).strip().lower() == "others"
    if others:
        persons = persons[:-1]
    names = []
    for person in persons:
        family = latex_to_text(" ".join(person.prelast_names + person.last_names))
        given = latex_to_text(" ".join(person.first_names + person.middle_names))
        lineage = latex_to_text(" ".join(person.lineage_names))
        names.append((family, given, lineage))
    return names, others


def citation_labels(entries) -> dict:
    """Author-year labels (``'Gramfort et al., 2013'``) of entries, unique (a/b suffixes)."""
    labels = {}
    for entry in entries:
        authors, others = _authors(entry)
        families = [family for family, _, _ in authors] or [entry.key]
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


# --------------------------------------------------------------------------------------------
# References


def _reference_parts(entry: BibEntry, label_year: str) -> dict:
    """Pieces of a formatted reference: authors, year, title, venue, link, note."""
    fields = entry.fields
    authors, others = _authors(entry)
    shown = [" ".join(p for p in (family, _initials(given), lineage) if p)
             for family, given, lineage in authors]
    if len(shown) > MAX_LISTED_AUTHORS:
        shown, others = shown[:MAX_LISTED_AUTHORS], True
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


def format_references(entries, labels: dict) -> tuple[str, str]:
    """The reference list of ``entries``, in their order, in Markdown and in HTML.

    Parameters
    ----------
    entries : list of BibEntry
        The cited entries, in reference-list order.
    labels : dict
        :func:`citation_labels` of the entries; a reference's year is its label's (``2019a``).

    Returns
    -------
    markdown : str
        One ``- `key`: reference`` line per entry.
    html : str
        One ``<li id="ref-key">`` per entry (the items of an ``<ol>``).
    """
    parts = {e.key: _reference_parts(e, labels[e.key].rsplit(", ", 1)[-1]) for e in entries}
    markdown = "\n".join(f"- `{e.key}`: {_reference_markdown(parts[e.key])}" for e in entries)
    items = "\n".join(f'<li id="ref-{html.escape(e.key, quote=True)}">'
                      f"{_reference_html(parts[e.key])}</li>" for e in entries)
    return markdown, items
