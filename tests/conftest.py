import os
import sys
import time
from pathlib import Path

# Tests import their helpers (imagegen) and the package from the checkout itself.
ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

# No telemetry calls from gradio: this machine (and CI) has no network beyond package registries.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# Every process the tests start carries this session's tag: process_guard.py finds the ones left running.
os.environ["LORA_TRAINER_TEST_SESSION"] = str(os.getpid())

import pytest  # noqa: E402

from process_guard import strays  # noqa: E402


@pytest.fixture(autouse=True)
def _no_new_stray_processes(request):
    """Warn, naming the test, when a test leaves a detached process running (CI's timed browser test
    once ran several times slower behind one)."""
    before = set(strays())
    yield
    deadline = time.time() + 5   # one that is already finishing (a failed test child) is not left running
    while (left := {pid: cmd for pid, cmd in strays().items() if pid not in before}) and time.time() < deadline:
        time.sleep(0.2)
    if left:
        import warnings

        warnings.warn(f"{request.node.nodeid} left {len(left)} process(es) running: "
                      + "; ".join(f"{pid} {cmd}" for pid, cmd in left.items()), stacklevel=1)


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
