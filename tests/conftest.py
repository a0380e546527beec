import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


@pytest.fixture
def assets_dir() -> Path:
    """The shared real assets, from ZOOPROBE_ASSETS; tests that need them skip when it is unset."""
    location = os.environ.get("ZOOPROBE_ASSETS")
    if not location:
        pytest.skip("ZOOPROBE_ASSETS is not set; point it at the shared assets folder to run this test")
    return Path(location)
