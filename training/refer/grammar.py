"""Template grammar of the generated referring expressions: render a query, parse a text back.

A :class:`Query` is the meaning of an expression (kind, class, argument, ordinal, anchor and
grammatical number). Each :class:`Template` renders one kind of query in one phrasing, e.g.
``Template("extreme", "left", "sg", "the leftmost {sg}")``. :meth:`Grammar.parse` turns any text
back into every query it can mean (all templates are tried as full-string regular expressions),
so the uniqueness checker (:mod:`training.refer.resolve`) judges the *text*, not the intent.

Slots: ``{sg}`` / ``{pl}`` / ``{mass}`` = a singular / plural / mass name of the class,
``{asg}`` = the singular name of an anchor class, ``{ord}`` = an ordinal word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ORDINALS = ("first", "second", "third", "fourth", "fifth")
NUMBERS = ("sg", "pl", "mass")
_SLOT = re.compile(r"\{(sg|pl|mass|asg|ord)\}")


@dataclass(frozen=True)
class Query:
    """The meaning of an expression.

    Attributes:
        kind: ``class``, ``extreme``, ``corner``, ``ordinal``, ``size``, ``nearest``,
            ``farthest``, ``direction`` or ``region``.
        cls: Target class key.
        number: ``"sg"`` (exactly one target), ``"pl"`` (two or more) or ``"mass"`` (any).
        arg: Kind-specific argument (direction, corner, region, ``largest``/``smallest``).
        k: Ordinal position (1-based) for ``ordinal``; else 0.
        anchor: Anchor class key for relations; else "".
    """

    kind: str
    cls: str
    number: str
    arg: str = ""
    k: int = 0
    anchor: str = ""


@dataclass(frozen=True)
class Template:
    """One phrasing of one query kind (see the module docstring for the slots)."""

    kind: str
    arg: str
    number: str
    pattern: str


class Grammar:
    """A vocabulary plus templates, able to render queries and parse texts.

    Args:
        vocab: ``class key -> {"sg": [...], "pl": [...], "mass": [...]}`` names (first = default).
        templates: The phrasings.
    """

    def __init__(self, vocab: dict[str, dict[str, list[str]]], templates: list[Template]) -> None:
        self.vocab = vocab
        self.templates = templates
        self._names: dict[str, dict[str, list[str]]] = {form: {} for form in NUMBERS}
        for cls in sorted(vocab):
            for form in NUMBERS:
                for name in vocab[cls].get(form, []):
                    self._names[form].setdefault(name, []).append(cls)
        self._compiled = [(t, self._compile(t.pattern)) for t in templates]

    def _alternation(self, form: str) -> str:
        names = sorted(self._names[form], key=lambda s: (-len(s), s))
        return "|".join(re.escape(n) for n in names) or "(?!)"

    def _compile(self, pattern: str) -> re.Pattern[str]:
        out, pos = [], 0
        for m in _SLOT.finditer(pattern):
            out.append(re.escape(pattern[pos : m.start()]))
            slot = m.group(1)
            if slot == "ord":
                out.append("(?P<ord>" + "|".join(ORDINALS) + ")")
            elif slot == "asg":
                out.append(f"(?P<asg>{self._alternation('sg')})")
            else:
                out.append(f"(?P<cls_{slot}>{self._alternation(slot)})")
            pos = m.end()
        out.append(re.escape(pattern[pos:]))
        return re.compile("^" + "".join(out) + "$")

    def templates_for(self, query: Query) -> list[Template]:
        """Templates that can express ``query`` (same kind, argument and number)."""
        return [
            t for t in self.templates
            if t.kind == query.kind and t.arg == query.arg and t.number == query.number
            and self._fillable(t, query)
        ]

    def _fillable(self, t: Template, q: Query) -> bool:
        for slot in _SLOT.findall(t.pattern):
            if slot in NUMBERS and not self.vocab[q.cls].get(slot):
                return False
            if slot == "asg" and not (q.anchor and self.vocab[q.anchor].get("sg")):
                return False
            if slot == "ord" and not 1 <= q.k <= len(ORDINALS):
                return False
        return True

    def render(self, query: Query) -> list[str]:
        """Every text for ``query`` (all templates x all names), in a fixed order."""
        texts: list[str] = []
        for t in self.templates_for(query):
            fills: list[str] = [t.pattern]
            for slot in _SLOT.findall(t.pattern):
                if slot in NUMBERS:
                    names = self.vocab[query.cls][slot]
                elif slot == "asg":
                    names = self.vocab[query.anchor]["sg"]
                else:
                    names = [ORDINALS[query.k - 1]]
                fills = [f.replace("{" + slot + "}", n, 1) for f in fills for n in names]
            texts.extend(f for f in fills if f not in texts)
        return texts

    def parse(self, text: str) -> list[Query]:
        """Every query ``text`` can mean under this grammar (empty if it matches no template)."""
        text = " ".join(text.lower().split())
        out: list[Query] = []
        for t, rx in self._compiled:
            m = rx.match(text)
            if m is None:
                continue
            groups = m.groupdict()
            cls_name = next(v for k, v in groups.items() if k.startswith("cls_") and v)
            form = next(k[4:] for k, v in groups.items() if k.startswith("cls_") and v)
            anchors = self._names["sg"].get(groups["asg"], []) if groups.get("asg") else [""]
            k = ORDINALS.index(groups["ord"]) + 1 if groups.get("ord") else 0
            for cls in self._names[form][cls_name]:
                for anchor in anchors:
                    q = Query(t.kind, cls, t.number, t.arg, k, anchor)
                    if q not in out:
                        out.append(q)
        return out


# --------------------------------------------------------------------------------------------
# NWPU VHR-10: objects. No colour words anywhere (about 80 images are false-colour / CIR).

NWPU_VOCAB: dict[str, dict[str, list[str]]] = {
    "airplane": {"sg": ["airplane", "plane", "aircraft"],
                 "pl": ["airplanes", "planes", "aircraft"]},
    "ship": {"sg": ["ship", "boat"], "pl": ["ships", "boats"]},
    "storage_tank": {"sg": ["storage tank", "oil tank"], "pl": ["storage tanks", "oil tanks"]},
    "baseball_diamond": {"sg": ["baseball diamond", "baseball field"],
                         "pl": ["baseball diamonds", "baseball fields"]},
    "tennis_court": {"sg": ["tennis court"], "pl": ["tennis courts"]},
    "basketball_court": {"sg": ["basketball court"], "pl": ["basketball courts"]},
    "ground_track_field": {"sg": ["ground track field", "running track"],
                           "pl": ["ground track fields", "running tracks"]},
    "harbor": {"sg": ["harbor", "harbour"], "pl": ["harbors", "harbours"]},
    "bridge": {"sg": ["bridge"], "pl": ["bridges"]},
    "vehicle": {"sg": ["vehicle", "car"], "pl": ["vehicles", "cars"]},
}

_SIDES = {"left": "left", "right": "right"}
_CORNERS = {"upper_left": ("upper left", "top left"), "upper_right": ("upper right", "top right"),
            "lower_left": ("lower left", "bottom left"),
            "lower_right": ("lower right", "bottom right")}


def _nwpu_templates() -> list[Template]:
    t: list[Template] = []

    def add(kind: str, arg: str, number: str, *patterns: str) -> None:
        t.extend(Template(kind, arg, number, p) for p in patterns)

    add("class", "", "sg", "the {sg}", "the only {sg}", "the single {sg} in the image")
    add("class", "", "pl", "the {pl}", "all {pl}", "all the {pl}", "all of the {pl}",
        "every {sg}", "{pl}")
    for side in ("left", "right"):
        add("extreme", side, "sg", f"the {{sg}} on the {side}", f"the {side}most {{sg}}",
            f"the {{sg}} farthest to the {side}", f"the {{sg}} furthest {side}")
    add("extreme", "top", "sg", "the {sg} at the top", "the topmost {sg}", "the uppermost {sg}",
        "the {sg} nearest the top of the image")
    add("extreme", "bottom", "sg", "the {sg} at the bottom", "the bottommost {sg}",
        "the lowest {sg}", "the {sg} nearest the bottom of the image")
    for key, (a, b) in _CORNERS.items():
        add("corner", key, "sg", f"the {{sg}} in the {a} corner", f"the {{sg}} at the {b}",
            f"the {a} {{sg}}")
        add("corner", key, "pl", f"the {{pl}} in the {a} corner", f"the {{pl}} at the {b}")
    add("corner", "center", "sg", "the {sg} in the center", "the {sg} in the middle of the image")
    add("corner", "center", "pl", "the {pl} in the center", "the {pl} in the middle of the image")
    for side in ("left", "right", "top", "bottom"):
        add("ordinal", side, "sg", f"the {{ord}} {{sg}} from the {side}",
            f"the {{ord}} {{sg}} counting from the {side}")
    add("size", "largest", "sg", "the largest {sg}", "the biggest {sg}",
        "the {sg} with the largest area")
    add("size", "smallest", "sg", "the smallest {sg}", "the {sg} with the smallest area")
    add("nearest", "", "sg", "the {sg} closest to the {asg}", "the {sg} nearest to the {asg}",
        "the {sg} nearest the {asg}")
    add("farthest", "", "sg", "the {sg} farthest from the {asg}",
        "the {sg} furthest from the {asg}")
    for key, words in (("left_of", ("to the left of", "left of")),
                       ("right_of", ("to the right of", "right of")),
                       ("above", ("above",)), ("below", ("below",))):
        add("direction", key, "sg", *(f"the {{sg}} {w} the {{asg}}" for w in words))
        add("direction", key, "pl", *(f"the {{pl}} {w} the {{asg}}" for w in words))
    return t


NWPU_GRAMMAR = Grammar(NWPU_VOCAB, _nwpu_templates())


# --------------------------------------------------------------------------------------------
# Dubai land cover: one count class (buildings) and four mass classes.

DUBAI_VOCAB: dict[str, dict[str, list[str]]] = {
    "building": {"sg": ["building"], "pl": ["buildings"], "mass": []},
    "road": {"sg": [], "pl": [], "mass": ["road", "roads", "road network"]},
    "water": {"sg": ["water body", "body of water"], "pl": ["water bodies"],
              "mass": ["water"]},
    "vegetation": {"sg": ["patch of vegetation", "vegetated area"],
                   "pl": ["patches of vegetation", "vegetated areas"],
                   "mass": ["vegetation", "trees and grass"]},
    "land": {"sg": ["patch of bare land", "unpaved area"],
             "pl": ["patches of bare land", "unpaved areas"],
             "mass": ["bare land", "unpaved land", "bare ground"]},
}

_HALVES = {"left": ("on the left", "in the left half of the image", "on the left side"),
           "right": ("on the right", "in the right half of the image", "on the right side"),
           "top": ("at the top", "in the upper half of the image", "in the top part"),
           "bottom": ("at the bottom", "in the lower half of the image", "in the bottom part")}
_QUADS = {"upper_left": ("in the upper left", "in the top left part"),
          "upper_right": ("in the upper right", "in the top right part"),
          "lower_left": ("in the lower left", "in the bottom left part"),
          "lower_right": ("in the lower right", "in the bottom right part")}


def _dubai_templates() -> list[Template]:
    t: list[Template] = []

    def add(kind: str, arg: str, number: str, *patterns: str) -> None:
        t.extend(Template(kind, arg, number, p) for p in patterns)

    add("class", "", "sg", "the {sg}", "the only {sg}")
    add("class", "", "pl", "the {pl}", "{pl}", "all {pl}", "all the {pl}")
    add("class", "", "mass", "the {mass}", "{mass}", "all {mass}", "all the {mass}")
    for key, words in {**_HALVES, **_QUADS}.items():
        add("region", key, "mass", *(f"{{mass}} {w}" for w in words),
            *(f"the {{mass}} {w}" for w in words))
        add("region", key, "pl", *(f"the {{pl}} {w}" for w in words),
            *(f"{{pl}} {w}" for w in words))
        # singular: only the explicit "half"/"part" wording, never "the X on the left" (which
        # means "the leftmost X" in the NWPU grammar)
        add("region", key, "sg", *(f"the {{sg}} {w}" for w in words if "half" in w or "part" in w))
    add("size", "largest", "sg", "the largest {sg}", "the biggest {sg}")
    return t


DUBAI_GRAMMAR = Grammar(DUBAI_VOCAB, _dubai_templates())
