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
