"""Silence diffusers' and transformers' loading chatter while we load a model.

Loading the demo model printed, every time: that torchvision is missing (an image processor no
pipeline of ours uses), that modules "should be kept in float32: []" (an fp16 file loaded as
float32: nothing to keep), and two progress bars for a load of under a second. None of it is
something a user can act on. Errors still show; levels and bars are restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

LIBRARIES = ("diffusers", "transformers")


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    saved = []
    for name in LIBRARIES:
        try:
            lib_logging = __import__(f"{name}.utils.logging", fromlist=["logging"])
        except ImportError:
            continue
        bars = lib_logging.is_progress_bar_enabled()
        saved.append((lib_logging, lib_logging.get_verbosity(), bars))
        lib_logging.set_verbosity(logging.ERROR)
        lib_logging.disable_progress_bar()
    try:
        yield
    finally:
        for lib_logging, level, bars in saved:
            lib_logging.set_verbosity(level)
            if bars:
                lib_logging.enable_progress_bar()
