"""The guard that names tests leaving processes behind (process_guard.py) finds a real detached
process whose parent exited, leaves attached children alone, and stops the stray."""

import subprocess
import sys
import time

from process_guard import stop_strays, strays


def test_a_detached_process_is_found_and_stopped():
    attached = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    launcher = subprocess.run(
        [sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
         "'import time; time.sleep(60)'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"],
        capture_output=True, text=True, check=True)  # the orphan must not hold these pipes open
    orphan = int(launcher.stdout)
    try:
        deadline = time.time() + 10
        while orphan not in strays() and time.time() < deadline:
            time.sleep(0.1)
        found = strays()
        assert orphan in found and "time.sleep(60)" in found[orphan]
        assert attached.pid not in found           # a child of this process is not a stray
        assert orphan in stop_strays(grace_s=5)
        assert orphan not in strays()
    finally:
        attached.kill()
        attached.wait()
