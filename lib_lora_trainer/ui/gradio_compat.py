"""What differs between the two gradio majors the tab runs on, in one place: gradio 3.41.2 (A1111
1.10.x) and gradio 4.40.0 (Forge Neo). Every ui module builds its Blocks with the calls both accept
and asks this module for the rest; there is one copy of each section.

Handled here (3.41 -> 4.40):
- a browser function on an event: `_js=` -> `js=` (`js`). In both, the function gets the event's
  input values and returns a list; with a Python function those values become its inputs, without
  one they are applied to the outputs (a single value is wrapped in a list in both).
- the queue: `queue(concurrency_count=n)` (a pool of n workers shared by every event) ->
  `queue(default_concurrency_limit=n)` (how many calls of one event run at once; gradio 4's
  default is 1, and the old keyword is refused) (`queue`).
- a Dropdown's value should be one of its choices: gradio 4 warns on each postprocess of a value
  that is not; a refreshed list keeps the current value only while it is listed (`choice`,
  `dropdown_update`).
- uploaded files: gradio 3 passes tempfile wrappers (`.name`), gradio 4 plain paths (type
  "filepath"), and file values may be FileData dicts (`path`) (`file_paths`, `file_path`).
- `show_progress`: gradio 3.41 takes a bool or "full"/"minimal"/"hidden", gradio 4 documents only
  the strings: the tab always passes the string (`HIDDEN`).
- a handler that wants gr.SelectData: both read the parameter's type hint at run time, so with
  `from __future__ import annotations` it is set as a real class (`wants_select_data`).

Checked and the same in both (nothing to do): gr.update(...) (Component.update, gone in 4, is
never used), Blocks/Row/Column/Accordion with elem_id (elem_classes, show_label and Button size take
the same keywords; unused), Button variant "primary"/"stop" and scale, Textbox lines/max_lines/
show_copy_button/interactive, Number precision, Dropdown/Checkbox info, Gallery columns/height/
object_fit/allow_preview and its (path, caption) values, Image type="filepath", File file_count/
file_types and its .upload event, gr.State, .then(), .select(), visible=False inputs,
Blocks.render() of a built tab, mount_gradio_app. Files a handler returns (thumbnails, samples,
the test grid) are copied into gradio's cache by both, so no allowed_paths is needed for them.
Not used by the tab (never to be added without a helper here): `.style()` and `gr.Box` (removed
in 4), `every=` polling (the browser script clicks a hidden refresh button instead,
javascript/lora_trainer.js), Chatbot, `gr.Blocks(js=...)` (4 only).

Seen in the browser, nothing to fix here: gradio 4.40's page logs "Too many arguments provided for
the endpoint" for every event with inputs (it looks its own endpoints up by index in an API
description that lists them by name), and it lazy-loads pictures (loading="lazy")."""

from __future__ import annotations

import functools
import os
from typing import Any, Iterable

HIDDEN = "hidden"   # show_progress value both majors accept


@functools.lru_cache(maxsize=None)
def major() -> int:
    """The installed gradio's major version (3 or 4)."""
    import gradio

    return int(str(gradio.__version__).split(".", 1)[0])


def js(function: str) -> dict[str, str]:
    """Event keyword arguments that run `function` (a JS function expression or the name of a global
    function) in the browser: `btn.click(fn, inputs, outputs, **js("myFn"))`."""
    return {"js": function} if major() >= 4 else {"_js": function}


def queue(blocks, concurrency: int):
    """Let `concurrency` calls of an event run at once (status refreshes beside a long check or prepare)."""
    if major() >= 4:
        blocks.queue(default_concurrency_limit=concurrency)
    else:
        blocks.queue(concurrency_count=concurrency)
    return blocks


def choice(value: Any, choices: Iterable[Any], fallback_first: bool = True) -> Any:
    """`value` when it is one of `choices`; else the first choice (or None)."""
    options = list(choices)
    if value in options:
        return value
    return options[0] if (options and fallback_first) else None


def dropdown_update(choices: Iterable[Any], value: Any = None, fallback_first: bool = True):
    """gr.update for a Dropdown whose choices changed: the value kept only while it is listed."""
    import gradio as gr

    options = list(choices)
    return gr.update(choices=options, value=choice(value, options, fallback_first))


def file_path(value: Any) -> str | None:
    """A file value as a path: a str/PathLike (gradio 4 filepath), a tempfile wrapper with .name
    (gradio 3 File), or a FileData / dict with "path" or "name" (gradio 4 / gradio 3 Gallery)."""
    if value is None or value == "":
        return None
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, dict):
        found = value.get("path") or value.get("name")
        return str(found) if found else None
    for attr in ("path", "name"):
        found = getattr(value, attr, None)
        if isinstance(found, (str, os.PathLike)) and found:
            return os.fspath(found)
    return None


def file_paths(values: Any) -> list[str]:
    """An upload's value (one file or a list) as a list of paths."""
    if values is None:
        return []
    items = values if isinstance(values, (list, tuple)) else [values]
    return [p for p in (file_path(v) for v in items) if p]


def wants_select_data(fn, param: str = "evt"):
    """Mark `fn`'s parameter `param` as gr.SelectData, which both majors fill in from the type hint
    (a string hint, as `from __future__ import annotations` makes, is not resolved)."""
    import gradio as gr

    fn.__annotations__[param] = gr.SelectData
    return fn
