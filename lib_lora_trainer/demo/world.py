"""The demo world: procedural cartoon people, their attributes and their captions.

One attribute space serves three users: the base model is trained on random people from it,
the scorer learns to read the attributes back off any picture, and the demo LoRA teaches one
character whose look the base model never saw (pink hair in buns: both values are held out of
the base model's training data, but the scorer knows them).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

# Attribute -> values, in a fixed order (the scorer's class indices follow it).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "gender": ("man", "woman"),
    "skin": ("light", "tan", "brown", "dark"),
    "hair_colour": ("black", "brown", "blonde", "red", "blue", "green", "white", "pink"),
    "hair_style": ("short", "long", "buns"),
    "glasses": ("no", "yes"),
    "clothing_colour": ("red", "green", "blue", "yellow", "black", "white", "purple", "orange"),
    "clothing": ("shirt", "jacket"),
    "background": ("white", "blue", "green", "yellow", "gray", "pink"),
    "expression": ("smiling", "neutral", "surprised", "tongue out"),
}
# Identity (stays with a character) vs. shot (changes from picture to picture).
IDENTITY = ("gender", "skin", "hair_colour", "hair_style", "glasses")
SHOT = ("clothing_colour", "clothing", "background", "expression")
# Never in the base model's training data: what the demo LoRA has to teach.
HELD_OUT = {"hair_colour": ("pink",), "hair_style": ("buns",)}


@dataclass(frozen=True)
class Person:
    gender: str = "woman"
    skin: str = "light"
    hair_colour: str = "brown"
    hair_style: str = "short"
    glasses: str = "no"
    clothing_colour: str = "green"
    clothing: str = "shirt"
    background: str = "white"
    expression: str = "smiling"
    # Pose: not captioned, varies freely. Fractions of the image size.
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        for name, allowed in ATTRIBUTES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"Person.{name}={getattr(self, name)!r}: use one of {', '.join(allowed)}")

    def attributes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def with_shot(self, **changes) -> "Person":
        data = asdict(self)
        data.update(changes)
        return Person(**data)


def attribute_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Person) if f.name in ATTRIBUTES)


def random_pose(rng: random.Random) -> dict[str, float]:
    return {"dx": rng.uniform(-0.1, 0.1), "dy": rng.uniform(-0.05, 0.05), "scale": rng.uniform(0.85, 1.1)}


def random_person(rng: random.Random, include_held_out: bool = False) -> Person:
    values = {}
    for name, allowed in ATTRIBUTES.items():
        pool = [v for v in allowed if include_held_out or v not in HELD_OUT.get(name, ())]
        values[name] = rng.choice(pool)
    return Person(**values, **random_pose(rng))


def hair_phrase(p: Person) -> str:
    if p.hair_style == "buns":
        return f"{p.hair_colour} hair in buns"
    return f"{p.hair_style} {p.hair_colour} hair"


def expression_phrase(p: Person) -> str:
    return {"smiling": "smiling", "neutral": "neutral expression", "surprised": "surprised, open mouth",
            "tongue out": "sticking tongue out"}[p.expression]


def describe(p: Person) -> str:
    """The base model's caption: every attribute, e.g.
    'a man with short brown hair and glasses, light skin, green jacket, smiling, white background'."""
    glasses = " and glasses" if p.glasses == "yes" else ""
    article = "an" if p.clothing_colour[0] in "aeiou" else "a"
    return (f"a {p.gender} with {hair_phrase(p)}{glasses}, {p.skin} skin, {article} {p.clothing_colour} "
            f"{p.clothing}, {expression_phrase(p)}, {p.background} background")


def trigger_caption(trigger: str, p: Person) -> str:
    """A LoRA caption in the thesis's style ("VadymPanchenko, man, simple background, a man sticking
    his tongue out with a black shirt"): trigger first, then what changes between pictures.
    Identity (hair, skin, glasses) is left out on purpose, so the trigger word absorbs it."""
    g = p.gender
    their = "his" if g == "man" else "her"
    who = {"smiling": f"a {g} smiling", "neutral": f"a {g} with a neutral expression",
           "surprised": f"a surprised {g} with an open mouth", "tongue out": f"a {g} sticking {their} tongue out"}
    article = "an" if p.clothing_colour[0] in "aeiou" else "a"
    return f"{trigger}, {g}, {p.background} background, {who[p.expression]}, wearing {article} {p.clothing_colour} {p.clothing}"


_EXPRESSION_WORDS = {"smiling": "smiling", "smile": "smiling", "neutral": "neutral", "surprised": "surprised",
                     "open mouth": "surprised", "tongue": "tongue out"}


def parse_prompt(text: str) -> dict[str, str]:
    """The demo-world attributes a prompt asks for, e.g. 'zyrette in a red jacket, blue background'
    -> {'clothing_colour': 'red', 'clothing': 'jacket', 'background': 'blue'}. Unnamed ones are absent."""
    import re

    t = " " + re.sub(r"[^a-z ]+", " ", text.lower()) + " "
    found: dict[str, str] = {}
    colour = "|".join(sorted({*ATTRIBUTES["hair_colour"], *ATTRIBUTES["clothing_colour"],
                              *ATTRIBUTES["background"]}, key=len, reverse=True))
    if m := re.search(rf" ({colour}) background ", t):
        found["background"] = m.group(1)
    if m := re.search(rf" ({colour}) (shirt|jacket) ", t):
        found["clothing_colour"], found["clothing"] = m.group(1), m.group(2)
    elif m := re.search(r" (shirt|jacket) ", t):
        found["clothing"] = m.group(1)
    if m := re.search(rf" (?:(short|long) )?({colour}) hair( in buns)? ", t):
        found["hair_colour"] = m.group(2)
        style = "buns" if m.group(3) else m.group(1)
        if style:
            found["hair_style"] = style
    if m := re.search(r" (man|woman) ", t):
        found["gender"] = m.group(1)
    if m := re.search(r" (light|tan|brown|dark) skin ", t):
        found["skin"] = m.group(1)
    if " glasses " in t:
        found["glasses"] = "yes"
    for word, value in _EXPRESSION_WORDS.items():
        if f" {word} " in t:
            found["expression"] = value
            break
    return found
