"""The configuration's sections: one definition of the settings that make the outputs, the
digest two participants share, and the per-stage keys of the work-directory cache."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from samba_bids.bids.layout import RunPair
from samba_bids.config import (
    CHOICES,
    PREPARE_SECTIONS,
    RESULT_SECTIONS,
    SECTIONS,
    Config,
    check_option,
)
from samba_bids.errors import UsageError
from samba_bids.workflows import RunCache, RunInputs, record_config


def test_every_setting_has_one_section():
    sections = {f.name: f.metadata.get("section") for f in dataclasses.fields(Config)}
    assert set(sections.values()) <= set(SECTIONS), sections
    assert None not in sections.values()
    names = [name for section in SECTIONS for name in Config.section_fields(section)]
    assert sorted(names) == sorted(sections)  # each field in exactly one section
    assert set(CHOICES) <= set(sections)


def test_two_participants_with_the_same_settings_share_the_digest(tmp_path):
    """The model sidecars' ConfigDigest: selections, locations and resources are not part of
    the run's identity (before, each participant label gave another digest)."""
    one = Config(bids_dir=tmp_path / "a", output_dir=tmp_path / "out", participant_label=["01"],
                 task_label=["rest"], device="cpu", nprocs=2, skip_bids_validation=True)
    two = Config(bids_dir=tmp_path / "b", output_dir=tmp_path / "out2",
                 participant_label=["sub-02"], session_label=["1"], device="auto",
                 bold_space="fsaverage5")
    assert one.digest() == two.digest()
    assert one.settings() == two.settings()
    assert one.digest() != dataclasses.replace(one, learning_rate=1e-2).digest()
    assert one.digest() != dataclasses.replace(one, l_freq_hz=1.0).digest()
    # the digest hashes exactly the recorded settings of logs/config.json
    path = record_config(one)
    assert json.loads(path.read_text())["Settings"] == one.settings()
    assert set(one.settings()) == set(Config.section_fields(*RESULT_SECTIONS))


def test_digest_by_section():
    base = Config()
    trained = dataclasses.replace(base, learning_rate=5e-4, max_epochs=3, hidden_size=8)
    assert base.digest(*PREPARE_SECTIONS) == trained.digest(*PREPARE_SECTIONS)
    assert base.digest("training") != trained.digest("training")
    assert base.digest("ephys") != dataclasses.replace(base, inverse_method="MNE").digest("ephys")
    with pytest.raises(ValueError, match="section"):
        base.digest("optimiser")


def test_check_option_names_the_setting_and_its_values():
    assert check_option("rnn", "gru", CHOICES["rnn"]) == "gru"
    with pytest.raises(UsageError, match=r"rnn must be one of lstm, gru; got 'rnn'"):
        check_option("rnn", "rnn", CHOICES["rnn"])
    with pytest.raises(UsageError, match="inverse_method"):
        Config(inverse_method="LCMV")
    with pytest.raises(ValueError, match="direction"):
        check_option("direction", "sideways", CHOICES["direction"], error=ValueError)


def _pair(tmp_path):
    eeg = tmp_path / "sub-01_task-rest_eeg.vhdr"
    bold = tmp_path / "sub-01_task-rest_space-MNI_bold.nii.gz"
    for path in (eeg, bold, eeg.with_suffix(".eeg")):
        path.write_bytes(b"x")
    return RunPair(entities={"subject": "01", "task": "rest"}, ephys_file=eeg,
                   bold_files=[bold], space="MNI152NLin6Asym")


def _inputs():
    return RunInputs(features=np.zeros((2, 5, 4, 2)), observed=np.ones((3, 5)), split=None,
                     parcels=None, atlas=None, tr_s=2.0, modality="eeg", clock="start",
                     bold=object())


def test_cache_reuses_prepared_inputs_when_only_training_changes(tmp_path):
    """Changing the learning rate retrains from the prepared inputs; changing a filter
    prepares again; a finished run is found only with every setting the same."""
    pair = _pair(tmp_path)
    config = Config(bids_dir=tmp_path, output_dir=tmp_path / "out")
    cache = RunCache(tmp_path / "work", pair, config, tmp_path)
    cache.store_inputs(_inputs())

    other_training = RunCache(tmp_path / "work", pair,
                              dataclasses.replace(config, learning_rate=1e-2), tmp_path)
    reused = other_training.load_inputs()
    assert reused is not None and reused.bold is None  # stored without the BOLD data
    np.testing.assert_array_equal(reused.observed, np.ones((3, 5)))
    assert other_training.folder != cache.folder  # but the run itself is not finished

    other_filter = RunCache(tmp_path / "work", pair, dataclasses.replace(config, l_freq_hz=1.0),
                            tmp_path)
    assert other_filter.load_inputs() is None

    # a different participant selection or thread count is the same run
    same = RunCache(tmp_path / "work", pair,
                    dataclasses.replace(config, participant_label=["01"], nprocs=1), tmp_path)
    assert (same.folder, same.inputs_folder) == (cache.folder, cache.inputs_folder)

    # a changed input file invalidates both
    Path(pair.bold_files[0]).write_bytes(b"changed")
    changed = RunCache(tmp_path / "work", pair, config, tmp_path)
    assert changed.load_inputs() is None and changed.folder != cache.folder
