"""The catalogue of dataset problems: one code each, with its severity and the fix we suggest.

Keeping them in one table lets the CLI, the UI and the README list the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Check:
    code: str
    severity: str
    fix: str


_CHECKS = [
    # Files that cannot be used at all.
    Check("zero_byte", ERROR, "Delete the empty file or copy the image again."),
    Check("unreadable", ERROR, "Re-export the image (e.g. open and save it as PNG/JPEG) or delete it."),
    Check("truncated", ERROR, "The file ends early (interrupted copy or download): copy it again or delete it."),
    Check("decompression_bomb", ERROR, "Downscale the image below the pixel limit before importing it."),
    Check("unsupported_format", ERROR,
          "kohya reads only .png .jpg .jpeg .webp .bmp: run `dataset prepare`, which converts it to PNG."),
    Check("symlink_skipped", WARNING, "Copy the real file into the dataset folder instead of linking to it."),
    Check("unknown_file", WARNING, "Not an image or a .txt caption; it is ignored. Remove it to silence this."),
    # Image content.
    Check("mixed_formats", WARNING, "`dataset prepare` writes every image as PNG."),
    Check("too_small", WARNING,
          "Use a larger original; `dataset prepare` upscales it, which trains softer detail."),
    Check("too_small_severe", ERROR,
          "Replace it with a larger original or lower --resolution: upscaling this much trains blur."),
    Check("extreme_aspect", WARNING,
          "Crop the subject by hand, or use `--crop face`/`center`: a square crop of this image loses most of it."),
    Check("duplicate_exact", WARNING, "Delete one copy: a duplicate doubles that image's weight in training."),
    Check("duplicate_near", WARNING,
          "Keep the better of the two unless the difference is intended: near copies over-weight one shot."),
    Check("blurry", WARNING, "Replace it with a sharper photo: the LoRA learns the blur too."),
    Check("exif_rotation", WARNING,
          "kohya ignores EXIF orientation and trains the image sideways: `dataset prepare` rotates the pixels."),
    Check("mode_cmyk", WARNING, "`dataset prepare` converts it to RGB; check the colours afterwards."),
    Check("mode_16bit", WARNING, "`dataset prepare` converts it to 8-bit RGB."),
    Check("mode_palette", WARNING, "`dataset prepare` converts it to RGB."),
    Check("mode_alpha", WARNING,
          "Transparent areas turn black in training: `dataset prepare` flattens them onto white."),
    Check("mode_grayscale", WARNING, "Use a colour original unless you want the LoRA to learn grayscale."),
    # Captions.
    Check("caption_missing", WARNING,
          "Write a .txt caption beside the image; without one kohya uses only the folder's class tokens."),
    Check("caption_empty", ERROR, "Write a caption or delete the .txt file: kohya stops on an empty caption."),
    Check("caption_not_utf8", ERROR,
          "Save the caption as UTF-8 (kohya fails to read it otherwise); `dataset prepare` re-encodes it."),
    Check("caption_multiline", WARNING, "kohya reads only the first line: put the whole caption on one line."),
    Check("caption_too_long", WARNING,
          "Shorten the caption to 75 CLIP tokens; kohya drops the rest unless max_token_length is raised."),
    Check("trigger_missing", WARNING,
          "Put the trigger word in the caption, or run `dataset prepare --trigger-in-captions`."),
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
        return CHECKS[self.code].fix

    def to_dict(self) -> dict:
        d = {"code": self.code, "severity": self.severity, "path": self.path,
             "message": self.message, "fix": self.fix}
        if self.related:
            d["related"] = list(self.related)
        return d
