import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
# The embedded default takes about 3 minutes on 2 cores; this leaves room for a busy machine.
DEFAULT_RUN_TIMEOUT_S = 1800


@pytest.fixture
def assets_dir() -> Path:
    """The shared real assets, from ZOOPROBE_ASSETS; tests that need them skip when it is unset."""
    location = os.environ.get("ZOOPROBE_ASSETS")
    if not location:
        pytest.skip("ZOOPROBE_ASSETS is not set; point it at the shared assets folder to run this test")
    return Path(location)


@pytest.fixture(scope="session")
def tiny_checkout_run(tmp_path_factory) -> Path:
    """A copy of this checkout with the tiny config as its params.yaml, run once to completion.

    Shared by the workflow and DVC tests, which copy it before changing anything in it.
    """
    from workflow_helpers import TINY, copy_checkout, run

    checkout = copy_checkout(tmp_path_factory.mktemp("tiny") / "checkout")
    shutil.copy2(TINY, checkout / "params.yaml")
    run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=checkout)
    return checkout


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A copy of this checkout run once to completion on its own params.yaml, the embedded default.

    About 3 minutes on 2 cores. Shared by the tests of the default config and of its report; tests
    that change anything in it work on a copy.
    """
    from workflow_helpers import copy_checkout, run

    checkout = copy_checkout(tmp_path_factory.mktemp("default") / "checkout")
    run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=checkout, timeout=DEFAULT_RUN_TIMEOUT_S)
    return checkout
