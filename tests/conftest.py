"""Shared fixtures: paths to the real data in ../shared/data (tests skip when it is absent)."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data`` beside the project checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def templates_dir(shared_data):
    """The real templates folder (fsaverage5, MNI152NLin6Asym, fsLR)."""
    return shared_data / "templates"


@pytest.fixture(scope="session")
def real_rest(shared_data):
    """The real BIDS dataset ``ds-real-rest``."""
    return shared_data / "ds-real-rest"
