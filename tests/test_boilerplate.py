"""Methods boilerplate (logs/CITATION.md, .bib, .html): content, citations, files, packaging."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from samba_bids.alignment import blocked_split
from samba_bids.config import Config
from samba_bids.errors import NoInputError
from samba_bids.reports import boilerplate as bp
from samba_bids.reports.boilerplate import (
    INVERSE_METHODS,
    MethodsContext,
    cited_keys,
    find_boilerplate_dir,
    methods_context,
    parse_bibtex,
    render,
    render_boilerplate,
    template_values,
)

REPO_BOILERPLATE = Path(__file__).resolve().parents[1] / "boilerplate"

EEG_PROVENANCE = {
    "SourceSpace": "fsaverage5, all 20484 vertices",
    "Transform": "fsaverage head<->MRI transform shipped with MNE-Python "
                 "(mne/data/fsaverage/fsaverage-trans.fif)",
    "HeadModel": "sphere model fitted to the head (r0 = (0.5, -17.2, 43.1) mm in fsaverage MRI "
                 "coordinates, radius 95.3 mm)",
    "NSources": 20484,
    "InverseMethod": "dSPM", "SNR": 3.0, "Lambda2": 1 / 9, "SourceOrientation": "normal",
    "Loose": 0.2, "Depth": 0.8,
    "NoiseCovariance": "ad hoc (mne.make_ad_hoc_cov: diagonal, EEG 0.2 uV, gradiometers "
                       "5 fT/cm, magnetometers 20 fT)",
    "NoiseCovarianceRank": 29,
    "Parcellation": "Schaefer 2018, 7 networks, 100 parcels on fsaverage5",
    "LabelMode": "mean_flip", "ParcelKernelShape": [100, 30],
}
MEG_PROVENANCE = {
    "SourceSpace": "fsaverage5, all 20484 vertices",
    "Transform": "fsaverage head<->MRI transform shipped with MNE-Python",
    "HeadModel": "single-layer inner-skull BEM (MNE fsaverage)",
    "BEM": "fsaverage inner skull (MNE), ico-4 (2562 vertices), 0.3 S/m",
    "NSources": 20479,
    "InverseMethod": "eLORETA", "SNR": 2.0, "Lambda2": 0.25, "SourceOrientation": "normal",
    "Loose": 0.2, "Depth": 0.8,
    "NoiseCovariance": "empirical (given, e.g. empty room; 12345 degrees of freedom)",
    "NoiseCovarianceRank": 64,
    "ParcelKernelShape": [200, 306],
}
MEG_CONFOUNDS = ["global_signal", "a_comp_cor_00", "a_comp_cor_01", "framewise_displacement"]


def _eeg_context(**overrides):
    """EEG, dSPM, fsaverage5 surface BOLD, electrophysiology -> BOLD only (defaults)."""
    values = dict(
        config=Config(volume_trigger="R128"), modality="eeg", tr_s=2.0, bold_space="fsaverage5",
        provenance=EEG_PROVENANCE, n_train_volumes=130, n_validation_volumes=27,
        n_test_volumes=29, gap_volumes=16, window_trs=15, n_channels=30, sfreq_hz=5000.0,
        highpass_hz=0.5, lowpass_hz=45.0, alignment="volume triggers 'R128'",
        confound_columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf",
                          "white_matter"],
        n_parameters=123456, epochs_run=42, best_epoch=27, device="cpu", ridge_alpha=1000.0,
        run_label="sub-01_task-rest",
    )
    values.update(overrides)
    return MethodsContext(**values)


def _meg_context(**overrides):
    """MEG, eLORETA, MNI152NLin6Asym BOLD, both directions, non-default settings."""
    config = Config(direction="both", inverse_method="eLORETA", snr=2.0, l_freq_hz=1.0,
                    h_freq_hz=40.0, resample_sfreq_hz=200.0, rnn="gru", confounds="all",
                    ephys_atlas_scale=200, bold_atlas_scale=400, learning_rate=3e-4,
                    k_spatial=5, k_functional=3, mse_weight=0.25, seed=7)
    values = dict(
        config=config, modality="meg", tr_s=1.5, bold_space="MNI152NLin6Asym",
        provenance=MEG_PROVENANCE, n_train_volumes=301, n_validation_volumes=64,
        n_test_volumes=66, gap_volumes=22, window_trs=12, n_channels=306, sfreq_hz=1000.0,
        alignment="shared start at t = 0 (assumed)", confound_columns=MEG_CONFOUNDS,
        n_parameters=98765, epochs_run=61, best_epoch=46, reverse_n_parameters=54321,
        reverse_epochs_run=33, reverse_best_epoch=18, device="cuda:0",
        device_name="NVIDIA H100", n_null=500,
    )
    values.update(overrides)
    return MethodsContext(**values)


@pytest.fixture(scope="module")
def eeg(tmp_path_factory):
    logs = tmp_path_factory.mktemp("eeg") / "logs"
    paths = render_boilerplate(_eeg_context(), logs)
    return {p.suffix: p.read_text(encoding="utf-8") for p in paths} | {"paths": paths}


@pytest.fixture(scope="module")
def meg(tmp_path_factory):
    logs = tmp_path_factory.mktemp("meg") / "logs"
    paths = render_boilerplate(_meg_context(), logs)
    return {p.suffix: p.read_text(encoding="utf-8") for p in paths} | {"paths": paths}


def _body(markdown):
    """CITATION.md without its reference list."""
    return markdown.split("### References")[0]


def _squash(text):
    return re.sub(r"\s+", " ", text)


# --- files -------------------------------------------------------------------------------


def test_writes_the_three_files(eeg):
    names = [p.name for p in eeg["paths"]]
    assert names == ["CITATION.md", "CITATION.bib", "CITATION.html"]
    assert all(p.parent.name == "logs" and p.stat().st_size > 0 for p in eeg["paths"])
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in eeg["paths"][0].parent.iterdir()) == sorted(names)


def test_rerender_replaces_files(tmp_path):
    first = render_boilerplate(_eeg_context(), tmp_path)
    second = render_boilerplate(_eeg_context(best_epoch=31), tmp_path)
    assert first == second
    text = second[0].read_text(encoding="utf-8")
    assert "weights of epoch 31" in text and "weights of epoch 27" not in text
    assert len(list(tmp_path.iterdir())) == 3


# --- what the run did appears in the text -----------------------------------------------------


def test_eeg_text_reports_the_run(eeg):
    text = _squash(_body(eeg[".md"]))
    for fragment in (
        "band-pass filtered between 0.5 and 45 Hz",
        "resampled to 100 Hz",
        "(sampled at 5000 Hz)",
        "(30 channels)",
        "repetition time 2 s",
        "218 volumes",
        "training (130 volumes), validation (27 volumes) and test (29 volumes)",
        "gaps of 16 volumes (32 s",
        "123,456 trainable parameters",
        "trained for 42 epochs and kept the weights of epoch 27",
        "dynamic statistical parametric mapping (dSPM)",
        "λ² = 1/SNR² = 0.1111 (SNR = 3)",
        "annotation `R128`",
        "average-reference projector",
        "sphere model fitted to the head",
        "0.2 µV for EEG channels; rank 29",
        "100 parcels of the Schaefer 2018 atlas",
        "200 parcels of the Schaefer 2018 atlas",
        "on the fsaverage5 surface",
        "`trans_x`",
        "6 rigid-body motion parameters",
        "LSTM",
        "2 heads",
        "(chosen: 1000)",
        "1,000 phase-randomised surrogates",
        "A3 0–6.25 Hz, D3 6.25–12.5 Hz, D2 12.5–25 Hz, D1 25–50 Hz",
        "on the CPU",
        "`sub-01_task-rest`",
        "response delay 6 s (range 4 to 10 s)",
    ):
        assert fragment in text, fragment
    assert "head↔MRI" in text
    for absent in ("eLORETA", "GRU", "Reverse direction", "ablation", "n.a."):
        assert absent not in text, absent


def test_meg_text_reports_the_run(meg):
    text = _squash(_body(meg[".md"]))
    for fragment in (
        "magnetoencephalography (MEG)",
        "band-pass filtered between 1 and 40 Hz",
        "resampled to 200 Hz",
        "(306 channels)",
        "repetition time 1.5 s",
        "training (301 volumes), validation (64 volumes) and test (66 volumes)",
        "gaps of 22 volumes (33 s",
        "98,765 trainable parameters",
        "trained for 61 epochs and kept the weights of epoch 46",
        "It had 54,321 trainable parameters, trained for 33 epochs and kept the weights of "
        "epoch 18.",
        "exact low-resolution electromagnetic tomography (eLORETA)",
        "(SNR = 2)",
        "empty-room recording",
        "12345 degrees of freedom",
        "single-layer boundary-element model of the inner skull",
        "in MNI152NLin6Asym space",
        "400 parcels of the Schaefer 2018 atlas",
        "All 4 non-constant columns of the confounds table (strategy `all`)",
        "`a_comp_cor_01`",
        "assumed to start at the same time",
        "GRU",
        "5 nearest source parcels",
        "from the 3 source parcels",
        "learning rate 0.0003",
        "plus 0.25 times the mean squared error",
        "random seed 7",
        "a CUDA GPU (NVIDIA H100)",
        "500 phase-randomised surrogates",
        "12 target volumes",
        "23 taps",
        "the BOLD after the targets for the reverse model",
        "A3 0–12.5 Hz",
        "voxels",
    ):
        assert fragment in text, fragment
    for absent in ("dSPM", "LSTM", "average-reference", "R128"):
        assert absent not in text, absent


def test_reverse_section_only_when_run(eeg, meg, tmp_path):
    assert "### Reverse direction" not in eeg[".md"]
    assert "### Reverse direction" in meg[".md"] and "Reverse direction" in meg[".html"]
    reverse_only = render(_eeg_context(config=Config(direction="bold-to-ephys"),
                                       reverse_n_parameters=4321, reverse_epochs_run=9,
                                       reverse_best_epoch=4, n_parameters=None,
                                       epochs_run=None, best_epoch=None))
    md = reverse_only.markdown
    assert "### Reverse direction" in md and "4,321 trainable parameters" in md
    assert "### The SAMBA model" not in md and "### Evaluation and baselines" not in md
    assert "Only the reverse translation was run" in md
    # the ridge baseline and the forward model's pieces are not cited when not run
    for key in ("hoerl1970ridge", "goldman2002alpha", "hochreiter1997lstm",
                "handwerker2004variation"):
        assert key not in reverse_only.keys and key not in reverse_only.bibtex
    assert "brody2022gatv2" in reverse_only.keys  # the reverse model's graph attention


# --- citations ---------------------------------------------------------------------------


def test_only_used_methods_are_cited(eeg, meg):
    eeg_keys, meg_keys = set(parse_bibtex(eeg[".bib"])), set(parse_bibtex(meg[".bib"]))
    assert "pascualmarqui2007eloreta" in meg_keys and "pascualmarqui2007eloreta" not in eeg_keys
    assert "dale2000dspm" in eeg_keys and "dale2000dspm" not in meg_keys
    assert "pernet2019eegbids" in eeg_keys and "niso2018megbids" not in eeg_keys
    assert "niso2018megbids" in meg_keys and "pernet2019eegbids" not in meg_keys
    assert {"evans2012templates", "ciric2022templateflow"} <= meg_keys
    assert not {"evans2012templates", "ciric2022templateflow"} & eeg_keys
    assert "hochreiter1997lstm" in eeg_keys and "cho2014gru" not in eeg_keys
    assert "cho2014gru" in meg_keys and "hochreiter1997lstm" not in meg_keys
    assert "schaefer2018parcellation" in eeg_keys & meg_keys
    for key in ("hamalainen1994mne", "pascualmarqui2002sloreta", "vanessen2012fslr"):
        assert key not in eeg_keys | meg_keys
    assert "eLORETA" in meg[".html"] and "Pascual-Marqui, 2007" in meg[".html"]
    assert "Pascual-Marqui" not in eeg[".html"]


@pytest.mark.parametrize("which", ["eeg", "meg"])
def test_cited_keys_match_the_bib(which, eeg, meg):
    rendered = {"eeg": eeg, "meg": meg}[which]
    bib_keys = set(parse_bibtex(rendered[".bib"]))
    md_keys = set(cited_keys(rendered[".md"]))
    assert md_keys == bib_keys
    # the reference list of the .md names each entry once
    listed = re.findall(r"^- `([^`]+)`:", rendered[".md"], flags=re.MULTILINE)
    assert sorted(listed) == sorted(bib_keys)
    hrefs = set(re.findall(r'href="#ref-([^"]+)"', rendered[".html"]))
    ids = set(re.findall(r'id="ref-([^"]+)"', rendered[".html"]))
    assert hrefs == ids == bib_keys
    assert "[@" not in rendered[".html"]


def test_each_inverse_method_cites_its_paper():
    for method, (_, key) in INVERSE_METHODS.items():
        values = template_values(_eeg_context(
            config=Config(inverse_method=method),
            provenance={**EEG_PROVENANCE, "InverseMethod": method}))
        assert f"[@{key}]" in values["inverse_phrase"], method
        others = {k for _, k in INVERSE_METHODS.values()} - {key}
        assert not any(k in values["inverse_phrase"] for k in others)


def test_fslr_space_cites_fslr():
    rendered = render(_eeg_context(bold_space="fsLR"))
    assert "vanessen2012fslr" in rendered.keys
    assert "grayordinates" in rendered.markdown


def test_every_reference_can_be_cited():
    """No dead entry: every key of references.bib is cited by a template or the renderer."""
    references = parse_bibtex((REPO_BOILERPLATE / "references.bib").read_text("utf-8"))
    sources = "".join(p.read_text("utf-8") for p in REPO_BOILERPLATE.glob("*.md"))
    sources += Path(bp.__file__).read_text("utf-8")
    for key in references:
        assert f"@{key}" in sources or f'"{key}"' in sources, key


def _balanced(text):
    depth = 0
    for i, char in enumerate(text):
        if i and text[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


REQUIRED = {"article": ("author", "title", "journal", "year"),
            "inproceedings": ("author", "title", "booktitle", "year"),
            "misc": ("author", "title")}


@pytest.mark.parametrize("which", ["eeg", "meg", "source"])
def test_bib_parses_with_required_fields(which, eeg, meg):
    if which == "source":
        text = (REPO_BOILERPLATE / "references.bib").read_text("utf-8")
    else:
        text = {"eeg": eeg, "meg": meg}[which][".bib"]
    entries = parse_bibtex(text)
    # one parsed entry per "@type{" in the text: nothing was skipped
    assert len(entries) == len(re.findall(r"^@\w+\{", text, flags=re.MULTILINE)) > 10
    for key, entry in entries.items():
        assert _balanced(entry.raw), key
        assert entry.entry_type in REQUIRED, key
        for name in REQUIRED[entry.entry_type]:
            assert entry.fields.get(name), (key, name)
        assert entry.fields.get("doi") or entry.fields.get("eprint") or \
            entry.entry_type == "article", key
        if "doi" in entry.fields:
            assert re.fullmatch(r"10\.\d{4,9}/\S+", entry.fields["doi"]), key
        if "year" in entry.fields:
            assert re.fullmatch(r"(19|20)\d\d", entry.fields["year"]), key


def test_bib_parser_rejects_unbalanced_entry():
    with pytest.raises(ValueError, match="broken"):
        parse_bibtex("@article{broken,\n  title = {Open {brace},\n  year = {2000}\n")


def test_software_references_get_the_installed_version(eeg):
    nilearn = parse_bibtex(eeg[".bib"])["nilearn"]
    assert nilearn.fields["note"] == f"Version {metadata.version('nilearn')}"
    assert f"nilearn {metadata.version('nilearn')}" in eeg[".md"]
    assert f"MNE-Python {metadata.version('mne')}" in eeg[".md"]


def test_labels_and_accents(eeg, meg):
    assert "Fey &amp; Lenssen, 2019" in eeg[".html"]
    assert "Gramfort et al., 2013" in eeg[".html"]
    assert "Höchenberger R" in eeg[".html"] and "{\\" not in eeg[".html"]
    assert bp.latex_to_text('H{\\"a}m{\\"a}l{\\"a}inen \\& C{\\^o}t{\\\'e} 35--42') == \
        "Hämäläinen & Côté 35–42"


# --- HTML ----------------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.stack, self.errors = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))
        if tag not in ("meta", "br", "hr", "img", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


@pytest.mark.parametrize("which", ["eeg", "meg"])
def test_html_parses_and_has_no_external_script(which, eeg, meg):
    rendered = {"eeg": eeg, "meg": meg}[which]
    parser = _Collector()
    parser.feed(rendered[".html"])
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert "script" not in parser.tags and "iframe" not in parser.tags
    for tag, attrs in parser.attrs:
        assert "src" not in attrs, tag
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(("#ref-", "https://")), href
    n_sections = len(re.findall(r"^### ", rendered[".md"], flags=re.MULTILINE))
    assert parser.tags.count("h3") == n_sections
    assert parser.tags.count("li") == len(parse_bibtex(rendered[".bib"]))


# --- other run variants ----------------------------------------------------------------------


def test_fallback_templates_are_not_called_schaefer():
    rendered = render(_eeg_context(templates_kind="fallback"))
    assert "schaefer2018parcellation" not in rendered.keys
    assert "not the Schaefer 2018 atlas" in rendered.markdown
    assert "Schaefer 2018 atlas (7 networks)" not in rendered.markdown


def test_no_confounds_and_ablations():
    values = template_values(_eeg_context(config=Config(confounds="none", use_graph=False,
                                                        learn_hrf=False,
                                                        use_wavelet_attention=False),
                                          confound_columns=None,
                                          ablations=("no-graph", "fixed-hrf")))
    assert "No confound regression" in values["confound_sentence"]
    assert values["confound_clause"] == ""
    assert "dense linear map" in values["spatial_phrase"] and "GATv2" not in \
        values["spatial_phrase"]
    assert "fixed at SPM's canonical" in values["hrf_phrase"]
    assert "uniform weights" in values["attention_phrase"]
    assert "`no-graph`, `fixed-hrf`" in values["ablation_sentence"]
    missing = template_values(_eeg_context(confound_columns=[]))
    assert "No nuisance regressors were available" in missing["confound_sentence"]


def test_lowered_lowpass_is_reported():
    values = template_values(_eeg_context(lowpass_hz=22.5, sfreq_hz=50.0))
    assert "between 0.5 and 22.5 Hz" in values["filter_phrase"]
    assert "requested low-pass of 45 Hz was lowered" in values["filter_phrase"]


def test_methods_context_from_workflow_objects():
    config = Config(direction="both")
    split = blocked_split(240, 2.0, hrf_support_s=config.hrf_support_s)
    history = pd.DataFrame({"epoch": np.arange(1, 21), "train_loss": 0.5, "val_loss": 0.6})
    forward = SimpleNamespace(n_parameters=1111, history=history, best_epoch=12, device="cpu",
                              window_trs=14)
    reverse = SimpleNamespace(n_parameters=2222, history=history.iloc[:9], best_epoch=5,
                              device="cpu", window_trs=14)
    context = methods_context(config, provenance=EEG_PROVENANCE, split=split, tr_s=2.0,
                              modality="eeg", bold_space="fsaverage5", forward_fit=forward,
                              reverse_fit=reverse, n_channels=30)
    assert (context.n_train_volumes, context.n_validation_volumes, context.n_test_volumes,
            context.gap_volumes) == (len(split.train), len(split.validation), len(split.test),
                                     16)
    assert context.n_volumes == 240
    assert (context.n_parameters, context.epochs_run, context.best_epoch) == (1111, 20, 12)
    assert (context.reverse_n_parameters, context.reverse_epochs_run,
            context.reverse_best_epoch) == (2222, 9, 5)
    assert context.window_trs == 14 and context.device == "cpu"
    assert context.forward and context.reverse


def test_context_checks_its_inputs():
    with pytest.raises(ValueError, match="modality"):
        _eeg_context(modality="ieeg")
    with pytest.raises(ValueError, match="templates_kind"):
        _eeg_context(templates_kind="borrowed")
    with pytest.raises(ValueError, match="tr_s"):
        _eeg_context(tr_s=0)


# --- locating the templates ---------------------------------------------------------------


def test_missing_templates_raise_a_clear_error(tmp_path, monkeypatch):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(NoInputError, match=re.escape(str(nowhere))):
        find_boilerplate_dir(nowhere)
    places = [tmp_path / "a", tmp_path / "b"]
    monkeypatch.setattr(bp, "boilerplate_candidates", lambda: places)
    with pytest.raises(NoInputError) as info:
        render_boilerplate(_eeg_context(), tmp_path / "logs")
    message = str(info.value)
    assert str(places[0]) in message and str(places[1]) in message
    assert "SAMBA_BOILERPLATE" in message and info.value.exit_code == 66
    assert not (tmp_path / "logs").exists()


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMBA_BOILERPLATE", raising=False)
    assert find_boilerplate_dir() == REPO_BOILERPLATE  # editable install: beside the package
    copy = tmp_path / "bp"
    shutil.copytree(REPO_BOILERPLATE, copy)
    monkeypatch.setenv("SAMBA_BOILERPLATE", str(copy))
    assert find_boilerplate_dir() == copy
    candidates = bp.boilerplate_candidates()
    assert candidates[0] == copy and candidates[1] == REPO_BOILERPLATE
    assert Path(bp.sys.prefix) / "share" / "samba-bids" / "boilerplate" in candidates
    monkeypatch.setenv("SAMBA_BOILERPLATE", str(tmp_path / "empty"))
    assert find_boilerplate_dir() == REPO_BOILERPLATE  # a wrong variable falls through


def test_unknown_citation_key_is_an_error(tmp_path):
    copy = tmp_path / "bp"
    shutil.copytree(REPO_BOILERPLATE, copy)
    data = copy / "data.md"
    data.write_text(data.read_text("utf-8") + "\nSee [@nosuchpaper2099].\n", "utf-8")
    with pytest.raises(ValueError, match="nosuchpaper2099"):
        render(_eeg_context(), boilerplate_dir=copy)


def test_setup_cfg_ships_the_templates():
    setup_cfg = (REPO_BOILERPLATE.parent / "setup.cfg").read_text("utf-8")
    assert "share/samba-bids/boilerplate = boilerplate/*" in setup_cfg
    assert bp.SHARE_SUBDIR.as_posix() == "share/samba-bids/boilerplate"
    for name, _ in bp.SECTIONS:
        assert (REPO_BOILERPLATE / name).is_file(), name
