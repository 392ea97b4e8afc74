"""What a dataset check or prepare was made with (a "stamp" of the form's values), and whether the
form still says the same: a preset that sets Resolution, Crop and Repeats marks an earlier report
or prepared copy out of date instead of leaving a stale "512 px" on screen."""

from __future__ import annotations

from html import escape

from .report_html import warning_html

# What a check / a prepare depends on; each result keeps the values it was made with (a "stamp"),
# so a later change of the form (a preset sets resolution, crop and repeats) marks it out of date
# instead of leaving a stale "512 px" on screen.
CHECK_KEYS = ("trigger", "resolution")
PREPARE_KEYS = ("trigger", "class_token", "resolution", "crop", "repeats")
_LABELS = {"trigger": "Trigger word", "class_token": "Class token", "resolution": "Resolution", "crop": "Crop",
           "repeats": "Repeats"}
PARAMS_SECTION = "Model and parameters"   # the section that holds Resolution, Crop, Repeats and Class token


def _whole(value, default=None):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default if value in (None, "") else value


def form_recipe(trigger=None, resolution=None, crop=None, class_token=None, repeats=None) -> dict:
    """The form's values as a check or a prepare uses them (normalised, so 512.0 == 512)."""
    return {"trigger": (trigger or "").strip(), "resolution": _whole(resolution, 512),
            "crop": crop or "center", "class_token": (class_token or "").strip(), "repeats": _whole(repeats, 1)}


def _shown(key: str, value) -> str:
    if key == "resolution":
        return f"{value} px"
    return f"{value}" if value not in ("", None) else "(none)"


def _changes(stamp: dict, now: dict, keys: tuple[str, ...]) -> tuple[str, str]:
    """('Resolution 512 px, Repeats 100', 'Resolution 64 px, Repeats 25') for the keys that differ."""
    diff = [k for k in keys if stamp.get(k) != now.get(k)]
    was = ", ".join(f"{_LABELS[k]} {_shown(k, stamp.get(k))}" for k in diff)
    new = ", ".join(f"{_LABELS[k]} {_shown(k, now.get(k))}" for k in diff)
    return was, new


def recipe_note(resolution, crop) -> str:
    """The line in the Dataset section that says which resolution and crop Check and Prepare use."""
    r = form_recipe(resolution=resolution, crop=crop)
    return (f'<p class="lt-note">Check and Prepare use <b>{escape(_shown("resolution", r["resolution"]))}</b>, '
            f'<b>{escape(r["crop"])}</b> crop: "Resolution" and "Crop" in {PARAMS_SECTION} (the preset sets them). '
            "Start training uses the same values.</p>")


def report_status(stamp: dict | None, trigger: str, resolution) -> str | None:
    """The report to show after the trigger or the resolution changed: None = leave it as it is;
    the checked report, under a warning when it was checked with other values."""
    if not stamp:
        return None
    was, now = _changes(stamp, form_recipe(trigger, resolution), CHECK_KEYS)
    if not was:
        return stamp["html"]
    return warning_html(f"This report was checked with {was}; the form now says {now}. "
                        'Press "Check dataset" to check again.') + stamp["html"]


def prepare_status(stamp: dict | None, trigger: str, class_token: str, resolution, crop: str,
                   repeats) -> str | None:
    """The Prepare result to show after a value it used changed: None = leave it; the result
    when the form still says what it was prepared with; otherwise what changed."""
    if not stamp:
        return None
    was, now = _changes(stamp, form_recipe(trigger, resolution, crop, class_token, repeats), PREPARE_KEYS)
    if not was:
        return stamp["html"]
    return warning_html(f"The copy prepared with {was} is out of date: the form now says {now}. Start training "
                        'prepares its own copy with the values of the form; press "Prepare" to see it.')
