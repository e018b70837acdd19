"""MethodsContext: values other stages fix come in as attributes, with those stages' defaults."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from samba_bids.alignment import blocked_split
from samba_bids.bold import FMRIPREP_AUTO_CONFOUNDS
from samba_bids.config import Config
from samba_bids.model.baselines import DEFAULT_ALPHAS
from samba_bids.reports import boilerplate
from samba_bids.reports.boilerplate import SECTION_VALUES, template_values
from samba_bids.reports.methods import MethodsContext, methods_context
from samba_bids.training import MAX_GRAD_NORM


def _context(**overrides):
    values = dict(config=Config(), modality="eeg", tr_s=2.0, bold_space="fsaverage5",
                  provenance={}, n_train_volumes=100, n_validation_volumes=20,
                  n_test_volumes=20, gap_volumes=16,
                  confound_columns=["trans_x", "rot_y", "csf"])
    values.update(overrides)
    return MethodsContext(**values)


def test_defaults_are_the_stages_constants():
    context = _context()
    assert context.auto_confounds == tuple(FMRIPREP_AUTO_CONFOUNDS)
    np.testing.assert_array_equal(context.ridge_alphas, DEFAULT_ALPHAS)
    assert context.max_grad_norm == MAX_GRAD_NORM


def test_methods_context_passes_the_stage_values():
    config = Config()
    split = blocked_split(240, 2.0, hrf_support_s=config.hrf_support_s)
    common = dict(provenance={}, split=split, tr_s=2.0, modality="eeg",
                  bold_space="fsaverage5", confound_columns=["trans_x", "rot_y", "csf"])
    default = methods_context(config, **common)
    assert default.auto_confounds == tuple(FMRIPREP_AUTO_CONFOUNDS)
    assert default.max_grad_norm == MAX_GRAD_NORM
    given = methods_context(config, auto_confounds=("trans_x",), ridge_alphas=(0.1, 1.0, 10.0),
                            max_grad_norm=1.5, **common)
    values = template_values(given)
    assert values["max_grad_norm"] == "1.5"
    assert (values["n_alphas"], values["alpha_min"], values["alpha_max"]) == ("3", "0.1", "10")
    # the columns are no longer all among the auto list: described as "all columns"
    assert "non-constant columns" in values["confound_sentence"]
    assert "rigid-body motion" in template_values(default)["confound_sentence"]


def test_section_values_do_not_import_other_stages():
    """The sections read the stage values from the context; boilerplate imports no stage."""
    source = Path(boilerplate.__file__).read_text("utf-8")
    tree = ast.parse(source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert not imported & {"FMRIPREP_AUTO_CONFOUNDS", "DEFAULT_ALPHAS", "MAX_GRAD_NORM",
                           "is_fallback_templates"}
    sections = "".join(ast.get_source_segment(source, node) for node in ast.walk(tree)
                       if isinstance(node, ast.FunctionDef)
                       and node.name in {f.__name__ for f in SECTION_VALUES})
    for name in ("auto_confounds", "ridge_alphas", "max_grad_norm", "templates_kind"):
        assert f"context.{name}" in sections, name


def test_every_section_function_is_short():
    source = Path(boilerplate.__file__).read_text("utf-8")
    tree = ast.parse(source)
    lengths = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef)
               and node.name in {f.__name__ for f in SECTION_VALUES} | {"template_values"}}
    assert len(lengths) == len(SECTION_VALUES) + 1
    assert max(lengths.values()) <= 80, lengths
