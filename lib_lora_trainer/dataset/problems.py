"""The catalogue of dataset problems: one code each, with its severity and the fix we suggest.

Keeping them in one table lets the CLI, the UI and the README list the same checks. A fix that
asks the user to do something in the tool names an action (`{prepare}`, `{trigger_first}`...);
each place that shows the report words the action its own way: the CLI names a command and its
flags, the tab names a button or a field. The fix text itself is written once.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"
AUDIENCES = ("cli", "ui")


@dataclass(frozen=True)
class Action:
    """Something the user can do about a problem, in the words of each place the report is read."""
    id: str
    cli: str
    ui: str


_ACTIONS = [
    Action("prepare", cli="`dataset prepare`", ui='"Prepare"'),
    Action("lower_resolution", cli="lower --resolution", ui='lower "Resolution" (Model and parameters)'),
    Action("crop_face", cli="use `--crop face`/`center`", ui='set "Crop" to face or center (Model and parameters)'),
    Action("trigger_first", cli="run `dataset prepare --trigger-in-captions`",
           ui='press "Put the trigger first in every caption" (Captions: bulk actions)'),
]
ACTIONS: dict[str, Action] = {a.id: a for a in _ACTIONS}


@dataclass(frozen=True)
class Check:
    code: str
    severity: str
    template: str   # the fix; {action id} where the user acts in the tool

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)

    def fix_for(self, audience: str) -> str:
        if audience not in AUDIENCES:
            raise ValueError(f"audience must be one of {', '.join(AUDIENCES)}, got {audience!r}")
        return self.template.format(**{a: getattr(ACTIONS[a], audience) for a in self.actions})

    @property
    def fix(self) -> str:
        return self.fix_for("cli")


_CHECKS = [
    # Files that cannot be used at all.
    Check("zero_byte", ERROR, "Delete the empty file or copy the image again."),
    Check("unreadable", ERROR, "Re-export the image (e.g. open and save it as PNG/JPEG) or delete it."),
    Check("truncated", ERROR, "The file ends early (interrupted copy or download): copy it again or delete it."),
    Check("decompression_bomb", ERROR, "Downscale the image below the pixel limit before importing it."),
    Check("unsupported_format", ERROR,
          "kohya reads only .png .jpg .jpeg .webp .bmp: {prepare} converts it to PNG."),
    Check("symlink_skipped", WARNING, "Copy the real file into the dataset folder instead of linking to it."),
    Check("unknown_file", WARNING, "Not an image or a .txt caption; it is ignored. Remove it to silence this."),
    # Image content.
    Check("mixed_formats", WARNING, "{prepare} writes every image as PNG."),
    Check("too_small", WARNING,
          "Use a larger original; {prepare} upscales it, which trains softer detail."),
    Check("too_small_severe", ERROR,
          "Replace it with a larger original or {lower_resolution}: upscaling this much trains blur."),
    Check("extreme_aspect", WARNING,
          "Crop the subject by hand, or {crop_face}: a square crop of this image loses most of it."),
    Check("duplicate_exact", WARNING, "Delete one copy: a duplicate doubles that image's weight in training."),
    Check("duplicate_near", WARNING,
          "Keep the better of the two unless the difference is intended: near copies over-weight one shot."),
    Check("blurry", WARNING, "Replace it with a sharper photo: the LoRA learns the blur too."),
    Check("exif_rotation", WARNING,
          "kohya ignores EXIF orientation and trains the image sideways: {prepare} rotates the pixels."),
    Check("mode_cmyk", WARNING, "{prepare} converts it to RGB; check the colours afterwards."),
    Check("mode_16bit", WARNING, "{prepare} converts it to 8-bit RGB."),
    Check("mode_palette", WARNING, "{prepare} converts it to RGB."),
    Check("mode_alpha", WARNING,
          "Transparent areas turn black in training: {prepare} flattens them onto white."),
    Check("mode_grayscale", WARNING, "Use a colour original unless you want the LoRA to learn grayscale."),
    # Captions.
    Check("caption_missing", WARNING,
          "Write a .txt caption beside the image; without one kohya uses only the folder's class tokens."),
    Check("caption_empty", ERROR, "Write a caption or delete the .txt file: kohya stops on an empty caption."),
    Check("caption_not_utf8", ERROR,
          "Save the caption as UTF-8 (kohya fails to read it otherwise); {prepare} re-encodes it."),
    Check("caption_multiline", WARNING, "kohya reads only the first line: put the whole caption on one line."),
    Check("caption_too_long", WARNING,
          "Shorten the caption to 75 CLIP tokens; kohya drops the rest unless max_token_length is raised."),
    Check("trigger_missing", WARNING,
          "Put the trigger word in the caption, or {trigger_first}."),
    Check("caption_orphan", WARNING, "Rename it to match its image (same name, .txt) or delete it."),
    # The dataset as a whole.
    Check("no_images", ERROR, "Point at the folder (or .zip) that holds the training images."),
    Check("too_few_images", WARNING, "Add photos: 15-30 varied images train a far more flexible LoRA."),
]

CHECKS: dict[str, Check] = {c.code: c for c in _CHECKS}


@dataclass
class Problem:
    code: str
    path: str
    message: str
    related: list[str] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return CHECKS[self.code].severity

    @property
    def fix(self) -> str:
        """The fix in the CLI's words (also the API's `fix`)."""
        return CHECKS[self.code].fix

    def fix_for(self, audience: str) -> str:
        """The fix in the words of `audience` ("cli" or "ui")."""
        return CHECKS[self.code].fix_for(audience)

    def to_dict(self) -> dict:
        d = {"code": self.code, "severity": self.severity, "path": self.path,
             "message": self.message, "fix": self.fix, "actions": list(CHECKS[self.code].actions)}
        if self.related:
            d["related"] = list(self.related)
        return d
