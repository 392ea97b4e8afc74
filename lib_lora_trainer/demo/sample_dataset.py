"""A sample "photos of one person" folder with the mistakes real folders have.

16 good shots of one character plus the usual problems (a blurry shot, a copy, a missing and
an empty caption, a tiny thumbnail, a caption without the trigger, a sideways phone photo,
a transparent PNG, a GIF), so `dataset check` has something real to say.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from PIL import Image, ImageFilter

from .characters import Character, Shot, caption, draw

DEMO_TRIGGER = "zkperson"
DEMO_CHARACTER = Character(skin="tan", hair_colour="purple", hair_length="long", eye_colour="green",
                           jacket_colour="orange")
BACKGROUNDS = ["white", "blue", "gray", "yellow", "pink", "green", "white", "blue"]
EXPRESSIONS = ["smiling", "neutral", "open mouth"]


def shots(n: int = 16) -> list[Shot]:
    combos = itertools.cycle(itertools.product(BACKGROUNDS, EXPRESSIONS))
    out = []
    for i in range(n):
        bg, expr = next(combos)
        out.append(Shot(background=bg, expression=expr, dx=((i % 5) - 2) * 0.05, scale=0.85 + (i % 4) * 0.08))
    return out


def write_sample_dataset(folder: str | Path, size: int = 640, trigger: str = DEMO_TRIGGER,
                         flaws: bool = True) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, shot in enumerate(shots()):
        name = f"photo_{i + 1:02d}"
        draw(DEMO_CHARACTER, shot, size=size, seed=i).save(folder / f"{name}.jpg", quality=92)
        (folder / f"{name}.txt").write_text(caption(trigger, DEMO_CHARACTER, shot) + "\n", encoding="utf-8")
    if not flaws:
        return folder
    extra = Shot(background="gray", expression="smiling")
    draw(DEMO_CHARACTER, extra, size, seed=100).filter(ImageFilter.GaussianBlur(6)).save(folder / "blurry.jpg")
    (folder / "blurry.txt").write_text(caption(trigger, DEMO_CHARACTER, extra) + "\n", encoding="utf-8")
    (folder / "photo_01 (copy).jpg").write_bytes((folder / "photo_01.jpg").read_bytes())
    (folder / "photo_01 (copy).txt").write_bytes((folder / "photo_01.txt").read_bytes())
    draw(DEMO_CHARACTER, Shot("white"), size, seed=101).save(folder / "no_caption.jpg")
    draw(DEMO_CHARACTER, Shot("blue"), 200, seed=102).save(folder / "thumbnail.jpg")
    (folder / "thumbnail.txt").write_text(f"{trigger}, thumbnail\n", encoding="utf-8")
    draw(DEMO_CHARACTER, Shot("pink"), size, seed=103).save(folder / "empty_caption.jpg")
    (folder / "empty_caption.txt").write_text("", encoding="utf-8")
    draw(DEMO_CHARACTER, Shot("yellow"), size, seed=104).save(folder / "no_trigger.jpg")
    (folder / "no_trigger.txt").write_text("a person in an orange jacket\n", encoding="utf-8")
    phone = draw(DEMO_CHARACTER, Shot("green", "neutral"), size, seed=105).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the pixels are stored sideways
    phone.save(folder / "phone.jpg", exif=exif)
    (folder / "phone.txt").write_text(f"{trigger}, phone photo\n", encoding="utf-8")
    cutout = draw(DEMO_CHARACTER, Shot("white"), size, seed=106).convert("RGBA")
    cutout.putalpha(Image.new("L", cutout.size, 255).point(lambda v: v))
    cutout.getchannel("A").paste(0, (0, 0, size // 4, size))
    alpha = Image.new("L", cutout.size, 255)
    alpha.paste(0, (0, 0, size // 4, size))
    cutout.putalpha(alpha)
    cutout.save(folder / "cutout.png")
    (folder / "cutout.txt").write_text(f"{trigger}, cutout\n", encoding="utf-8")
    draw(DEMO_CHARACTER, Shot("blue", "open mouth"), size, seed=107).save(folder / "animated.gif")
    (folder / "animated.txt").write_text(f"{trigger}, gif\n", encoding="utf-8")
    (folder / "notes.docx").write_bytes(b"PK\x03\x04 not a dataset file")
    return folder
