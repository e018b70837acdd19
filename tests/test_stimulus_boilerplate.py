"""The group level of --pairing stimulus: its methods boilerplate
(logs/CITATION_pairing-stimulus.{md,bib,html}) and its settings guard
(logs/config_pairing-stimulus.json). Unit tests: nothing is trained."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from samba_bids.bids.derivatives import output_path
from samba_bids.config import Config
from samba_bids.errors import UsageError
from samba_bids.reports.boilerplate import (
    cited_keys,
    parse_bibtex,
    render_sections,
)
from samba_bids.reports.stimulus import (
    STIMULUS_CITATION_STEM,
    STIMULUS_SECTIONS,
    StimulusMethods,
    render_stimulus_boilerplate,
    stimulus_methods_text,
    stimulus_values,
)
from samba_bids.workflows import record_config

REPO_BOILERPLATE = Path(__file__).resolve().parents[1] / "boilerplate"
DECODED = ("samba_latent", "band_power", "ridge_prediction", "observed_bold")


def _methods(**overrides):
    """7 EEG and 5 BOLD participants, 4 segments at TR 1.5 s, features averaged, decoding
    with 200 permutations."""
    values = dict(config=Config(bold_atlas_scale=400, ephys_atlas_scale=200,
                                stimulus_features="average"),
                  n_ephys=7, n_bold=5, n_segments=4, modality="eeg", tr_s=1.5,
                  spearman_windows_s=(30.0, 60.0), decoding_sets=DECODED,
                  decoding_window_s=30.0, decoding_permutations=200)
    values.update(overrides)
    return StimulusMethods(**values)


def _squash(text):
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    logs = tmp_path_factory.mktemp("stimulus") / "logs"
    paths = render_stimulus_boilerplate(_methods(), logs)
    return {p.suffix: p.read_text(encoding="utf-8") for p in paths} | {"paths": paths}


# --- files and citations ---------------------------------------------------------------------


def test_writes_the_three_files_where_the_output_table_says(rendered, tmp_path):
    paths = rendered["paths"]
    assert [p.name for p in paths] == [f"{STIMULUS_CITATION_STEM}.{ext}"
                                       for ext in ("md", "bib", "html")]
    out = paths[0].parent.parent
    assert paths == [output_path(out, "stimulus_citation", {}, extension=ext)
                     for ext in (".md", ".bib", ".html")]
    # atomic writes leave nothing else; the participant level's CITATION.* are not touched
    assert sorted(p.name for p in paths[0].parent.iterdir()) == sorted(p.name for p in paths)
    assert output_path(tmp_path, "stimulus_config", {}).name == "config_pairing-stimulus.json"


def test_every_cited_key_is_in_the_bib_and_no_placeholder_is_left(rendered):
    md, bib, html = rendered[".md"], rendered[".bib"], rendered[".html"]
    bib_keys = set(parse_bibtex(bib))
    assert set(cited_keys(md)) == bib_keys
    assert {"afrasiyabi2024samba", "nastase2019isc", "clopper1934confidence",
            "ojala2010permutation", "pedregosa2011sklearn", "hoerl1970ridge",
            "pernet2019eegbids", "dale2000dspm", "schaefer2018parcellation"} <= bib_keys
    assert "niso2018megbids" not in bib_keys  # EEG: the EEG-BIDS paper only
    listed = re.findall(r"^- `([^`]+)`:", md, flags=re.MULTILINE)
    assert sorted(listed) == sorted(bib_keys)
    assert set(re.findall(r'href="#ref-([^"]+)"', html)) == bib_keys
    for text in (md, html):
        assert not re.search(r"\$\{?[A-Za-z_]", text), re.search(r"\$\S+", text)
    assert "[@" not in html
    assert "(CITATION_pairing-stimulus.md)" in bib.splitlines()[0]


def test_html_parses(rendered):
    class Collector(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.errors, self.h3 = [], [], 0

        def handle_starttag(self, tag, attrs):
            self.h3 += tag == "h3"
            if tag not in ("meta", "br", "hr", "img", "link"):
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if not self.stack or self.stack.pop() != tag:
                self.errors.append(tag)

    parser = Collector()
    parser.feed(rendered[".html"])
    assert parser.errors == [] and parser.stack == []
    assert parser.h3 == len(re.findall(r"^### ", rendered[".md"], flags=re.MULTILINE)) == 4


# --- what the run did appears in the text ----------------------------------------------------


def test_text_reports_the_numbers_of_the_run(rendered):
    text = _squash(rendered[".md"].split("### References")[0])
    for fragment in (
        "Electrophysiology (electroencephalography, EEG) of 7 participants and BOLD of 5 "
        "other participants were paired by the stimulus they were shown",
        "formed one of 4 segments",
        "a grid of 1.5-s steps",
        "TR = 1.5 s",
        "the mean over the 5 BOLD participants",
        "a mean of 5 participants",
        "averaged over the 7 electrophysiology participants",
        "each of the 4 segments was predicted",
        "the row with a `stim_file`",
        "200 parcels of the Schaefer 2018 atlas",
        "reduced to 400 parcels",
        "dynamic statistical parametric mapping (dSPM)",
        "windows of 30 s and 60 s",
        "windows of 30 s (20 volumes)",
        "leave-one-participant-out",
        "Clopper-Pearson 95 % confidence interval",
        "200 permutations",
        "whole blocks of consecutive windows within each participant",
        "/ (1 + 200)",
        "CITATION_pairing-stimulus.bib holds the cited references",
        "logs/config_pairing-stimulus.json",
    ):
        assert fragment in text, fragment
    assert "CITATION.bib" not in text


def test_variants_change_the_text_and_the_references(tmp_path):
    methods = _methods(config=Config(stimulus_event="film", stimulus_features="participants",
                                     inverse_method="eLORETA"),
                       modality="meg", decoding_sets=(), spearman_windows_s=())
    paths = render_stimulus_boilerplate(methods, tmp_path)
    md, keys = paths[0].read_text("utf-8"), set(parse_bibtex(paths[1].read_text("utf-8")))
    text = _squash(md)
    assert "magnetoencephalography, MEG" in text
    assert "the row whose `trial_type` was `film`" in text
    assert "kept per participant" in text and "averaged over the" not in text
    assert "exact low-resolution electromagnetic tomography (eLORETA)" in text
    assert "on the whole segment." in text and "windows of 30 s" not in text
    # no decoding: neither its section nor its references
    assert "### Stimulus decoding" not in md
    assert not {"clopper1934confidence", "ojala2010permutation", "pedregosa2011sklearn"} & keys
    assert {"niso2018megbids", "pascualmarqui2007eloreta"} <= keys
    assert "pernet2019eegbids" not in keys and "dale2000dspm" not in keys
    assert set(cited_keys(md)) == keys


def test_report_paragraph_is_the_same_text_in_plain_words(rendered):
    """The HTML report's methods paragraphs come from the same templates and values."""
    text = stimulus_methods_text(_methods())
    assert "[@" not in text and "`" not in text and "###" not in text and "$" not in text
    assert "(Nastase et al., 2019)" in text and "(Clopper & Pearson, 1934)" in text
    assert "Copyright" not in text and "CC0" not in text
    assert text.split(". ")[0].endswith("were paired by the stimulus they were shown, as in "
                                        "SAMBA's MEG-to-fMRI experiments (Afrasiyabi et al., "
                                        "2024), by the group level of samba-bids "
                                        + stimulus_values(_methods())["version_samba_bids"]
                                        + " (--pairing stimulus, with the settings recorded in "
                                          "logs/config_pairing-stimulus.json)")
    # without citations, headings and code marks, the two texts are the same
    body = rendered[".md"].split("### Copyright waiver")[0]
    markdown = re.sub(r"^###.*$", "", re.sub(r" \[@[^\]]+\]", "", body), flags=re.MULTILINE)
    label = r"[^()]*?(?:\d{4}[a-z]?|n\.d\.)"
    plain = re.sub(rf" \({label}(?:; {label})*\)", "", text)
    assert _squash(plain).strip() == _squash(markdown.replace("`", "")).strip()


def test_copyright_waiver_names_the_files_written():
    default = render_sections(["copyright.md"], {"version_samba_bids": "9.9"})
    assert "CITATION.bib holds the cited references" in default.markdown
    stimulus = render_sections(["copyright.md"], {"version_samba_bids": "9.9"},
                               stem=STIMULUS_CITATION_STEM)
    assert "CITATION_pairing-stimulus.html shows the same text" in stimulus.markdown


def test_methods_check_their_inputs():
    with pytest.raises(ValueError, match="modality"):
        _methods(modality="ieeg")
    with pytest.raises(ValueError, match="tr_s"):
        _methods(tr_s=0)
    with pytest.raises(ValueError, match="decoding feature sets"):
        _methods(decoding_sets=("pupil",))
    with pytest.raises(ValueError, match="decoding_permutation"):
        _methods(decoding_permutation="windows")


def test_templates_are_shipped():
    setup_cfg = (REPO_BOILERPLATE.parent / "setup.cfg").read_text("utf-8")
    assert "share/samba-bids/boilerplate = boilerplate/*" in setup_cfg
    for name, _ in STIMULUS_SECTIONS:
        assert (REPO_BOILERPLATE / name).is_file(), name


# --- the settings guard ----------------------------------------------------------------------

NAME = "config_pairing-stimulus.json"


def test_record_config_with_another_name(tmp_path, caplog):
    out = tmp_path / "out"
    config = Config(output_dir=out, analysis_level="group", pairing="stimulus")
    participant = record_config(Config(output_dir=out))  # the participant level's, first
    before = participant.read_bytes()
    path = record_config(config, NAME)
    assert path == out / "logs" / NAME
    assert json.loads(path.read_text())["Settings"] == config.settings()
    # the same settings, other selections and locations: accepted, nothing rewritten
    again = dataclasses.replace(config, participant_label=["02"], task_label=["film"],
                                device="cpu", work_dir=tmp_path / "w", bids_dir=tmp_path / "b")
    assert record_config(again, NAME) == path
    # another setting: refused, naming it and the file
    changed = dataclasses.replace(config, learning_rate=1e-2)
    with pytest.raises(UsageError, match=r"learning_rate \(0\.001 -> 0\.01\)") as info:
        record_config(changed, NAME)
    assert NAME in str(info.value) and info.value.exit_code == 64
    assert json.loads(path.read_text())["Settings"]["learning_rate"] == 1e-3
    # --overwrite: accepted with a warning, the new settings recorded
    with caplog.at_level(logging.WARNING, logger="samba_bids"):
        assert record_config(dataclasses.replace(changed, overwrite=True), NAME) == path
    assert any("learning_rate" in r.getMessage() for r in caplog.records)
    assert json.loads(path.read_text())["Settings"]["learning_rate"] == 1e-2
    # logs/config.json was never read or written by any of these
    assert participant.read_bytes() == before
    assert record_config(Config(output_dir=out)) == participant


def test_record_config_default_name_is_unchanged(tmp_path):
    config = Config(output_dir=tmp_path)
    assert record_config(config) == tmp_path / "logs" / "config.json"
    assert not (tmp_path / "logs" / NAME).exists()
    with pytest.raises(ValueError, match="json"):
        record_config(config, "../config.json")
    with pytest.raises(ValueError, match="json"):
        record_config(config, "config.yaml")


def test_stimulus_group_level_records_its_settings_before_any_work(tmp_path, monkeypatch):
    """The guard runs before the stimulus design is read: a rerun with other settings stops
    with UsageError (exit 64) and --overwrite lets it through."""
    from samba_bids.workflows import group, stimulus

    class Reached(Exception):
        pass

    def reached(config):
        raise Reached

    monkeypatch.setattr(stimulus, "run_stimulus_translation", reached)
    config = Config(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out",
                    analysis_level="group", pairing="stimulus")
    with pytest.raises(Reached):
        group.run_group_level(config)
    recorded = tmp_path / "out" / "logs" / NAME
    assert json.loads(recorded.read_text())["Settings"]["pairing"] == "stimulus"
    assert not (tmp_path / "out" / "logs" / "config.json").exists()
    with pytest.raises(Reached):  # same settings, another participant selection
        group.run_group_level(dataclasses.replace(config, participant_label=["01"]))
    other = dataclasses.replace(config, stimulus_features="average")
    with pytest.raises(UsageError, match="stimulus_features"):
        group.run_group_level(other)
    with pytest.raises(Reached):
        group.run_group_level(dataclasses.replace(other, overwrite=True))
