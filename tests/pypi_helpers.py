"""Whether PyPI answers: tests that really pip-install skip with a reason when it does not."""

import urllib.request


def pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/tomli-w/", timeout=15) as response:
            return response.status == 200
    except OSError:
        return False
