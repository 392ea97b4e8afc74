"""A sample "photos of one person" folder with the mistakes real folders have.

16 shots of the demo character (varied poses, expressions, clothes and backgrounds,
thesis-style captions that start with the trigger), some in the shape real folders have them,
so `dataset check` has something real to say and `prepare` something to fix.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

from .render import render
from .world import ATTRIBUTES, Person, random_pose, trigger_caption

DEMO_TRIGGER = "zyrette"
DEMO_CLASS = "woman"
# Pink hair in buns: looks the base model never saw, so only the LoRA can draw her.
DEMO_CHARACTER = Person(gender="woman", skin="tan", hair_colour="pink", hair_style="buns", glasses="yes")
PHOTO_SIZE = 512
SAMPLE_PICTURES = 16
# What `flaws` adds, in words (the CLI and the tab say what they wrote).
SAMPLE_FLAWS = ("a sideways photo with an EXIF flag, an RGBA PNG, a GIF, a caption without the trigger, "
                "an exact copy, a thumbnail and a document")


def shots(n: int = SAMPLE_PICTURES, seed: int = 7) -> list[Person]:
    """n pictures of the character: every expression, background and clothing colour appears."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(DEMO_CHARACTER.with_shot(
            expression=ATTRIBUTES["expression"][i % 4],
            background=ATTRIBUTES["background"][(i * 5) % 6],
            clothing_colour=ATTRIBUTES["clothing_colour"][(i * 3) % 8],
            clothing=ATTRIBUTES["clothing"][(i // 2) % 2],
            **random_pose(rng)))
    return out


def _photo(person: Person, seed: int, size: int = PHOTO_SIZE) -> Image.Image:
    return render(person, size, seed=seed)


def write_sample_dataset(folder: str | Path, trigger: str = DEMO_TRIGGER, flaws: bool = True,
                         size: int = PHOTO_SIZE) -> Path:
    """SAMPLE_PICTURES (16) pictures of the character; with `flaws`, some come the way phones and downloads deliver
    them (sideways with an EXIF flag, RGBA PNG, GIF, a caption without the trigger: `prepare`
    fixes those) and junk is added beside them (an exact copy, a thumbnail, a document: `prepare`
    drops those). Either way `prepare` ends with the same 16 pictures."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, person in enumerate(shots()):
        name, caption = f"photo_{i + 1:02d}", trigger_caption(trigger, person)
        img = _photo(person, i, size)
        if flaws and i == 5:
            exif = Image.Exif()
            exif[0x0112] = 6  # "rotate 90 CW to display": the pixels are stored sideways
            img.rotate(90, expand=True).save(folder / f"{name}.jpg", quality=95, exif=exif)
        elif flaws and i == 6:
            img.convert("RGBA").save(folder / f"{name}.png")  # opaque, but with an alpha channel
        elif flaws and i == 7:
            img.save(folder / f"{name}.gif")
        else:
            img.save(folder / f"{name}.jpg", quality=95)
        if flaws and i == 8:
            caption = caption.split(", ", 1)[1]  # the trigger forgotten
        (folder / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
    if flaws:
        (folder / "photo_01 (copy).jpg").write_bytes((folder / "photo_01.jpg").read_bytes())
        (folder / "photo_01 (copy).txt").write_bytes((folder / "photo_01.txt").read_bytes())
        _photo(DEMO_CHARACTER, 100, 24).save(folder / "thumbnail.jpg")
        (folder / "thumbnail.txt").write_text(f"{trigger}, thumbnail\n", encoding="utf-8")
        (folder / "notes.docx").write_bytes(b"PK\x03\x04 not a dataset file")
    return folder
