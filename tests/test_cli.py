"""Command line: options, configuration precedence and BEP027 exit codes."""

import pytest

from samba_bids.cli.parser import parse_args
from samba_bids.cli.run import build_config, main
from samba_bids.config import Config
from samba_bids.errors import UsageError

from .synthetic import make_dataset, tree_digest


def test_both_spellings_and_prefix_stripping(tmp_path):
    for flag in ("--participant-label", "--participant_label"):
        args = parse_args([str(tmp_path), str(tmp_path / "out"), "participant", flag,
                           "sub-01", "02", "-d", f"fmriprep={tmp_path}/d", str(tmp_path / "x")])
        config = build_config(args)
        assert config.participant_label == ["01", "02"]
        assert config.derivatives == {"fmriprep": tmp_path / "d", "x": tmp_path / "x"}


def test_config_file_and_command_line_precedence(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('max_epochs = 7\nseed = 3\n[model]\nhidden_size = 16\n')
    args = parse_args([str(tmp_path), str(tmp_path / "o"), "participant", "--config-file",
                       str(toml), "--seed", "11"])
    config = build_config(args)
    assert (config.max_epochs, config.seed, config.hidden_size) == (7, 11, 16)
    toml.write_text("epochs = 3\n")
    with pytest.raises(UsageError, match="unknown setting.*epochs"):
        build_config(args)


def test_config_digest_ignores_locations():
    a = Config(bids_dir="/a", output_dir="/b", seed=1)
    b = Config(bids_dir="/c", output_dir="/d", seed=1)
    assert a.digest() == b.digest() != Config(seed=2).digest()
    with pytest.raises(UsageError, match="modality"):
        Config(modality="ecog")


def test_exit_codes(tmp_path, templates_dir, capsys):
    assert main(["--version"]) == 0
    assert main([]) == 64  # usage error
    assert main([str(tmp_path), str(tmp_path), "participant"]) == 64  # output == input
    assert main([str(tmp_path / "missing"), str(tmp_path / "o"), "participant"]) == 66
    (tmp_path / "notbids").mkdir()
    assert main([str(tmp_path / "notbids"), str(tmp_path / "o"), "participant"]) == 16
    err = capsys.readouterr().err
    assert "dataset_description.json is missing" in err

    root = make_dataset(tmp_path / "ds", templates_dir, n_volumes=30)
    before = tree_digest(root)
    common = ["-w", str(tmp_path / "work"), "--templates-dir", str(templates_dir)]
    assert main([str(root), str(root / "sub-01" / "out"), "participant", *common]) == 64
    assert main([str(root), str(tmp_path / "o"), "participant", "--participant-label", "09",
                 *common]) == 18
    assert main([str(root), str(tmp_path / "o"), "participant", "-t", "movie", *common]) == 18
    assert main([str(root), str(tmp_path / "o"), "participant",
                 "--templates-dir", str(tmp_path / "none"), "-w", str(tmp_path / "work")]) == 66
    assert tree_digest(root) == before


def test_container_entrypoint_uses_writable_caches(tmp_path):
    """docker/entrypoint.sh runs samba-bids with caches under TMPDIR (read-only images)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    entrypoint = Path(__file__).resolve().parents[1] / "docker" / "entrypoint.sh"
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    result = subprocess.run(["bash", str(entrypoint), "--version"], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("samba-bids ")
    assert (tmp_path / f"samba-bids-cache-{os.getuid()}").is_dir()


def test_help_shows_each_default_once(capsys):
    """Defaults come from Config, once, in one form; never argparse's '(default: None)'."""
    from samba_bids.cli.parser import build_parser
    from samba_bids.config import CHOICES

    text = " ".join(build_parser().format_help().split())
    assert "(default: None)" not in text and "(default auto)" not in text
    assert "(default: dSPM)" in text and "(default: 100)" in text
    assert text.count("(default: ephys-to-bold)") == 1
    for space in ("fsaverage5", "fsaverage", "MNI152NLin6Asym", "fsLR"):
        assert space in text.split("--bold-space BOLD_SPACE, --bold_space BOLD_SPACE")[1][:200]
    for name, allowed in CHOICES.items():
        flag = "--" + name.replace("_", "-")
        if flag in text and name not in ("analysis_level",):
            assert "{" + ",".join(map(str, allowed)) + "}" in text, name
