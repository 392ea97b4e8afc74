"""Annotated comparison grids: row labels (prompts), column labels (weights, samplers...), cells."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont

BG = (250, 250, 250)
INK = (20, 20, 20)
MISSING = (225, 225, 225)
MARK = (0, 170, 60)         # the recommended cell's frame
# A 128 px demo picture shows at 2x (256 + a 2 px gap each side); a 512 px one is scaled down to it.
CELL = 260
LABEL_WIDTH = 260
TITLE_H = 34
HEAD_H = 40


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizing
        return ImageFont.load_default()


def make_grid(row_labels: list[str], col_labels: list[str], cells: list[list[Image.Image | None]],
              cell: int = CELL, title: str = "", label_width: int = LABEL_WIDTH,
              marked: frozenset[tuple[int, int]] = frozenset()) -> Image.Image:
    """cells[r][c] is a PIL image or None (drawn as a grey 'n/a' box). Small images are scaled up
    with NEAREST so pixels stay honest. Cells (r, c) in `marked` get a green frame."""
    if len(cells) != len(row_labels) or any(len(r) != len(col_labels) for r in cells):
        raise ValueError(f"grid shape mismatch: {len(row_labels)} rows x {len(col_labels)} columns expected")
    font, small = _font(18), _font(16)
    title_h = TITLE_H if title else 0
    head_h = HEAD_H
    w = label_width + cell * len(col_labels)
    h = title_h + head_h + cell * len(row_labels)
    img = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(img)
    if title:
        d.text((8, 6), title, fill=INK, font=font)
    for c, label in enumerate(col_labels):
        d.text((label_width + c * cell + 6, title_h + 10), label, fill=INK, font=font)
    for r, label in enumerate(row_labels):
        y = title_h + head_h + r * cell
        lines = textwrap.wrap(label, width=max(10, label_width // 9))[: max(1, cell // 20)]
        d.multiline_text((8, y + 6), "\n".join(lines), fill=INK, font=small, spacing=3)
        for c, im in enumerate(cells[r]):
            x = label_width + c * cell
            if im is None:
                d.rectangle([x + 2, y + 2, x + cell - 3, y + cell - 3], fill=MISSING)
                d.text((x + cell // 2 - 10, y + cell // 2 - 6), "n/a", fill=INK, font=small)
                continue
            # Scaled-up pixels stay honest (NEAREST); bigger pictures are reduced smoothly.
            resample = Image.Resampling.NEAREST if im.width <= cell else Image.Resampling.LANCZOS
            img.paste(im.convert("RGB").resize((cell - 4, cell - 4), resample), (x + 2, y + 2))
            if (r, c) in marked:
                d.rectangle([x, y, x + cell - 1, y + cell - 1], outline=MARK, width=4)
    return img
