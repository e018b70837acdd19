"""The bibliography of the methods boilerplate: BibTeX read with pybtex, labels, references.

Every entry of ``boilerplate/references.bib`` is checked against what its own BibTeX text
says (authors, year, title, venue, DOI or arXiv link), read here with plain regular
expressions, independently of the parser under test.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from samba_bids.reports.bibliography import (
    MAX_LISTED_AUTHORS,
    citation_labels,
    format_references,
    latex_to_text,
    parse_bibtex,
    read_bibtex,
    with_version_note,
)

REFERENCES = Path(__file__).resolve().parents[1] / "boilerplate" / "references.bib"
TEXT = REFERENCES.read_text("utf-8")
ENTRIES = parse_bibtex(TEXT, source=str(REFERENCES))
LABELS = citation_labels(ENTRIES.values())
MARKDOWN, HTML = format_references(list(ENTRIES.values()), LABELS)
MD_BY_KEY = dict(re.findall(r"^- `([^`]+)`: (.*)$", MARKDOWN, flags=re.MULTILINE))
HTML_BY_KEY = dict(re.findall(r'^<li id="ref-([^"]+)">(.*)</li>$', HTML, flags=re.MULTILINE))
ACCENT_COMMAND = re.compile(r"\\[\"'^`~.=]")


def _raw_field(entry_text: str, name: str) -> str | None:
    """A one-line ``name = {value},`` field of an entry's text, outer braces removed."""
    match = re.search(rf"^\s*{name}\s*=\s*\{{(.*)\}},?\s*$", entry_text,
                      flags=re.MULTILINE | re.IGNORECASE)
    return match.group(1) if match else None


def _raw_families(entry_text: str) -> tuple[list[str], bool]:
    """Family names of the ``author`` field, as written (every name is "Last, First")."""
    names = _raw_field(entry_text, "author").split(" and ")
    others = names[-1] == "others"
    names = names[:-1] if others else names
    return [name.split(",")[0] if "," in name else name for name in names], others


def test_every_entry_is_read():
    starts = re.findall(r"^@(\w+)\{([^,\s]+),", TEXT, flags=re.MULTILINE)
    assert [key for _, key in starts] == list(ENTRIES) and len(starts) > 30
    for entry_type, key in starts:
        entry = ENTRIES[key]
        assert entry.entry_type == entry_type.lower()
        assert entry.raw.startswith(f"@{entry_type}{{{key},") and entry.raw.endswith("}")
        assert entry.raw in TEXT
        for name in ("title", "year", "doi", "eprint", "journal", "author"):
            assert entry.fields.get(name) == _raw_field(entry.raw, name), (key, name)
    assert set(MD_BY_KEY) == set(HTML_BY_KEY) == set(ENTRIES)


@pytest.mark.parametrize("key", list(ENTRIES))
def test_reference_states_the_entry(key):
    entry = ENTRIES[key]
    reference = MD_BY_KEY[key]
    families, others = _raw_families(entry.raw)
    authors, rest = reference.split(" (", 1)
    # authors: up to MAX_LISTED_AUTHORS, in order, each "Family Initials"; then "et al."
    listed = authors.split(", ")
    etal = listed[-1] == "et al."
    listed = listed[:-1] if etal else listed
    assert etal == (others or len(families) > MAX_LISTED_AUTHORS)
    assert len(listed) == min(len(families), MAX_LISTED_AUTHORS)
    for shown, family in zip(listed, families):
        family = latex_to_text(family)
        assert shown == family or re.fullmatch(re.escape(family) + r" [A-Z][A-Z-]*", shown), \
            (shown, family)
    # year (with a/b suffix when two labels collide), title, venue, link
    year = entry.fields.get("year", "n.d.")
    assert re.match(re.escape(year) + r"[a-z]?\)\. ", rest)
    assert LABELS[key].startswith(latex_to_text(families[0]))
    title = latex_to_text(_raw_field(entry.raw, "title"))
    assert f"). {title}" in reference
    if entry.entry_type == "article":
        assert f"*{latex_to_text(_raw_field(entry.raw, 'journal'))}*" in reference
    if entry.entry_type == "inproceedings":
        assert f"*{latex_to_text(_raw_field(entry.raw, 'booktitle'))}*" in reference
    doi, eprint = _raw_field(entry.raw, "doi"), _raw_field(entry.raw, "eprint")
    link = re.search(r" <(https://[^ ]+)>$", reference)
    if doi:  # URL-quoted: <, > and the like as %3C, %3E
        assert unquote(link.group(1)) == f"https://doi.org/{doi}"
    elif eprint:
        assert reference.endswith(f"<https://arxiv.org/abs/{eprint}>")
        assert f"arXiv:{eprint}" in reference
    # the HTML item says the same as the Markdown one
    as_text = html.unescape(re.sub(r"<[^>]+>", "", HTML_BY_KEY[key]))
    assert as_text == re.sub(r" <(https://[^>]+)>$", r" \1", reference.replace("*", ""))


def test_latex_is_decoded_in_every_field():
    """Each accent command gives one accented letter; no LaTeX is left."""
    for key, entry in ENTRIES.items():
        for name, value in entry.fields.items():
            text = latex_to_text(value)
            assert not set(text) & set("{}\\"), (key, name, text)
            assert sum(ord(c) > 127 for c in text) == \
                len(ACCENT_COMMAND.findall(value)) + value.count("--"), (key, name, text)
    assert latex_to_text('H{\\"a}m{\\"a}l{\\"a}inen \\& C{\\^o}t{\\\'e} 35--42') == \
        "Hämäläinen & Côté 35–42"
    assert latex_to_text("{\\.I}lhan  {EEG-BIDS}\n an") == "İlhan EEG-BIDS an"


def test_names_with_particles_and_corporate_authors():
    md = MD_BY_KEY
    assert "van der Walt SJ" in md["harris2020numpy"]
    assert md["nilearn"].startswith("Nilearn contributors (")
    assert LABELS["nilearn"] == "Nilearn contributors, n.d."
    assert LABELS["fey2019pyg"] == "Fey & Lenssen, 2019"
    assert LABELS["gramfort2013mne"] == "Gramfort et al., 2013"
    assert md["hamalainen1994mne"].startswith("Hämäläinen MS, Ilmoniemi RJ (1994). ")


def test_labels_of_colliding_entries_get_suffixes():
    text = "\n".join(f"@misc{{k{i}, author = {{Doe, Jane}}, title = {{T{i}}}, year = {{2001}}}}"
                     for i in range(3))
    labels = citation_labels(parse_bibtex(text).values())
    assert list(labels.values()) == ["Doe, 2001a", "Doe, 2001b", "Doe, 2001c"]


def test_comment_lines_are_skipped():
    entries = parse_bibtex("% cite as [@key] -- not an entry\n@misc{a, title = {A}}\n")
    assert list(entries) == ["a"] and entries["a"].raw == "@misc{a, title = {A}}"


@pytest.mark.parametrize("text, message", [
    ("@article{broken,\n  title = {Open {brace},\n  year = {2000}\n", "broken"),
    ("@misc{twice, title = {A}}\n@misc{twice, title = {B}}\n", "twice"),
    ("@misc{field, title = {A}, title = {B}}\n", "title"),
    ("@misc{comma, title = {A} year = {2000}}\n", "comma"),
])
def test_malformed_bibtex_is_a_value_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "references.bib"
    path.write_text(text, "utf-8")
    with pytest.raises(ValueError, match=message) as info:
        read_bibtex(path)
    assert str(path) in str(info.value)


def test_version_note_is_added_once():
    entry = ENTRIES["nilearn"]
    noted = with_version_note(entry, "0.11.0")
    assert noted.fields["note"] == "Version 0.11.0"
    assert noted.raw.endswith(",\n  note = {Version 0.11.0}\n}")
    assert parse_bibtex(noted.raw)["nilearn"].fields == noted.fields
    assert with_version_note(noted, "0.12.0") is noted
    assert with_version_note(entry, None) is entry
    md, _ = format_references([noted], {"nilearn": "Nilearn contributors, n.d."})
    assert "Version 0.11.0." in md
