import os
import sys
from pathlib import Path

# Tests import their helpers (imagegen) and the package from the checkout itself.
ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

# No telemetry calls from gradio: this machine (and CI) has no network beyond package registries.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny random SD1-architecture checkpoint (+ its config folder), made once per session."""
    from lib_lora_trainer.models.tiny import make_tiny_sd1

    return make_tiny_sd1(tmp_path_factory.mktemp("tiny") / "tiny-sd1.safetensors")


FIXTURES = ROOT.parent / "shared" / "fixtures" / "sd-scripts" / "v0.10.1"


@pytest.fixture
def sd_scripts_fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/sd-scripts is not present")
    return FIXTURES
