"""Build ``backend/text/lexicon.json``: everyday words -> the concepts the shipped weights know.

The default weights were trained on generated referring expressions (``training/refer``) whose
nouns are the 15 classes of NWPU VHR-10 and the Dubai land-cover set, each with a few fixed
names (``training.refer.grammar``: "building", "water body", "trees and grass", ...). Users
say "lake", "houses", "trucks" or "motorway". This script derives, at development time, a
table from those words to the trained concepts from a real lexical resource, **WordNet 3.0**
(Princeton), read from the Debian package ``wordnet-base`` (``/usr/share/wordnet``: the
database files, parsed here directly, so no Python package is needed), and writes it as JSON
that the backend ships: the plugin needs no extra package at run time.

How words are chosen (reviewable: ``--explain`` prints every word with its origin):

* **Seeds**: for each concept, hand-picked WordNet senses (e.g. ``body_of_water.n.01``,
  ``canal.n.03``, ``house.n.01``) and a hyponym depth. Every lemma of a seed synset is taken
  (the sense was chosen by a person), except those listed in ``drop``.
* **Hyponyms** of a seed down to its depth (no instances, i.e. no proper names), but only
  lemmas whose *first* WordNet sense is that synset, so polysemous words whose everyday
  meaning is something else ("drink", "run", "deep", "sound" under body of water) stay out.
* **Spelling variants** come with WordNet's synsets (harbor/harbour, aeroplane, theatre);
  British/American variants of the grammar's other words (centre -> center) are added by rule
  when WordNet lists both spellings in one synset.
* **Plurals** of every noun (regular English rules, or WordNet's ``noun.exc`` exceptions such
  as wharves, checked back with WordNet's own morphology, ``morphy``).
* A word derived for two concepts goes to the one where it is a seed lemma; if that does not
  decide it, it is left out (printed). The trained names themselves and the grammar's
  function words are never remapped.

Usage::

    python tools/build_lexicon.py [--wordnet DIR] [--out backend/text/lexicon.json] [--explain]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.refer.grammar import (  # noqa: E402
    DUBAI_GRAMMAR,
    DUBAI_VOCAB,
    NWPU_GRAMMAR,
    NWPU_VOCAB,
    ORDINALS,
)

DEFAULT_WORDNET = Path("/usr/share/wordnet")
DEFAULT_OUT = ROOT / "backend" / "text" / "lexicon.json"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# WordNet 3.0 database files (wndb(5WN)): data.noun, index.noun, noun.exc


@dataclass
class Synset:
    """One noun synset: its lemmas (as written, ``_`` for spaces) and pointers."""

    offset: str
    lemmas: list[str]
    pointers: list[tuple[str, str]]  # (symbol, target offset), nouns only
    gloss: str
    name: str = ""


@dataclass
class WordNet:
    """The noun part of a WordNet database directory."""

    synsets: dict[str, Synset] = field(default_factory=dict)
    index: dict[str, list[str]] = field(default_factory=dict)  # lemma -> offsets, sense order
    exceptions: dict[str, list[str]] = field(default_factory=dict)  # plural -> bases
    by_name: dict[str, Synset] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> WordNet:
        """Parse ``data.noun``, ``index.noun`` and ``noun.exc`` under ``root``."""
        missing = [n for n in ("data.noun", "index.noun", "noun.exc") if not (root / n).is_file()]
        if missing:
            raise SystemExit(
                f"WordNet database not found in {root} (missing {', '.join(missing)}); install "
                "it with 'apt-get install wordnet-base' or pass --wordnet DIR"
            )
        wn = cls()
        for line in (root / "data.noun").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            f = head.split()
            n_words = int(f[3], 16)
            lemmas = [f[4 + 2 * i] for i in range(n_words)]
            i = 4 + 2 * n_words
            n_pointers = int(f[i])
            pointers = []
            for k in range(n_pointers):
                symbol, target, pos = f[i + 1 + 4 * k : i + 4 + 4 * k]
                if pos == "n":
                    pointers.append((symbol, target))
            wn.synsets[f[0]] = Synset(f[0], lemmas, pointers, gloss.strip())
        for line in (root / "index.noun").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            f = line.split()
            n_pointer_kinds = int(f[3])
            wn.index[f[0]] = f[4 + n_pointer_kinds + 2 :]
        for line in (root / "noun.exc").read_text(encoding="latin-1").splitlines():
            plural, *bases = line.split()
            wn.exceptions[plural] = bases
        for synset in wn.synsets.values():
            first = synset.lemmas[0].lower()
            synset.name = f"{first}.n.{wn.index[first].index(synset.offset) + 1:02d}"
            wn.by_name[synset.name] = synset
        return wn

    def synset(self, name: str) -> Synset:
        """The synset called ``name`` (``lemma.n.NN``, NLTK's naming)."""
        if name not in self.by_name:
            raise SystemExit(f"no WordNet synset {name!r}; check the seed list")
        return self.by_name[name]

    def hyponyms(self, synset: Synset) -> list[Synset]:
        """Direct hyponyms (``~``), not instances (``~i``: proper names)."""
        return [self.synsets[t] for s, t in synset.pointers if s == "~"]

    def first_sense(self, lemma: str, synset: Synset) -> bool:
        """Whether ``synset`` is the most frequent noun sense of ``lemma``."""
        offsets = self.index.get(lemma.lower(), [])
        return bool(offsets) and offsets[0] == synset.offset

    def is_noun(self, lemma: str) -> bool:
        """Whether ``lemma`` (spaces or underscores) is a WordNet noun."""
        return lemma.lower().replace(" ", "_") in self.index

    def morphy(self, word: str) -> set[str]:
        """Base forms of a noun form (WordNet's exception list, then its suffix rules)."""
        word = word.replace(" ", "_")
        bases = {b for b in self.exceptions.get(word, []) if b in self.index}
        if word in self.index:
            bases.add(word)
        for suffix, ending in (
            ("s", ""),
            ("ses", "s"),
            ("xes", "x"),
            ("zes", "z"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("men", "man"),
            ("ies", "y"),
        ):
            if word.endswith(suffix):
                base = word[: len(word) - len(suffix)] + ending
                if base in self.index:
                    bases.add(base)
        return {b.replace("_", " ") for b in bases}


# --------------------------------------------------------------------------------------------
# Seeds: the senses a person chose for each trained concept


# fmt: off
SEEDS: dict[str, tuple[str, ...]] = {
    "water": (
        "body_of_water.n.01:3", "lake.n.01:2", "pond.n.01:1", "reservoir.n.02", "river.n.01",
        "stream.n.01:1", "canal.n.03:1", "watercourse.n.03", "swimming_pool.n.01:1", "pool.n.01",
        "sea.n.01", "ocean.n.01",
    ),
    "building": (
        "building.n.01:1", "house.n.01:1", "dwelling.n.01", "housing.n.01", "roof.n.01",
        "factory.n.01:1", "warehouse.n.01", "shed.n.01", "barn.n.01", "school.n.02", "church.n.02",
        "hospital.n.01", "shop.n.01", "plaza.n.02", "garage.n.01", "apartment.n.01",
        "bungalow.n.01", "mansion.n.02", "villa.n.02", "cabin.n.02", "hovel.n.01",
        "outbuilding.n.01:1",
    ),
    "vehicle": (
        "car.n.01:1", "motor_vehicle.n.01:2", "truck.n.01:1", "van.n.05", "bus.n.01",
        "trailer_truck.n.01", "cab.n.03", "lorry.n.02",
    ),
    "road": (
        "road.n.01:2", "street.n.01:1", "highway.n.01:1", "expressway.n.01", "thoroughfare.n.01:1",
        "lane.n.01", "avenue.n.02", "driveway.n.01",
    ),
    "vegetation": (
        "vegetation.n.01:2", "forest.n.01", "forest.n.02:1", "tree.n.01", "grass.n.01",
        "lawn.n.01", "grassland.n.01:1", "hayfield.n.01", "shrub.n.01", "hedge.n.01",
        "garden.n.01", "park.n.02", "grove.n.02",
    ),
    "land": (
        "desert.n.01", "sand.n.01", "soil.n.02", "barren.n.01", "vacant_lot.n.01", "clearing.n.01",
        "beach.n.01",
    ),
    "airplane": ("airplane.n.01:2", "aircraft.n.01", "jet.n.01:1", "airliner.n.01:1"),
    "ship": (
        "ship.n.01:2", "boat.n.01:2", "vessel.n.02:1", "yacht.n.01", "ferry.n.01",
        "oil_tanker.n.01", "sailboat.n.01", "motorboat.n.01",
    ),
    "storage_tank": ("tank.n.02:1", "silo.n.01"),
    "baseball_diamond": ("baseball_diamond.n.01", "ballpark.n.01"),
    "tennis_court": ("tennis_court.n.01:1",),
    "basketball_court": ("basketball_court.n.01:1",),
    "ground_track_field": ("racetrack.n.01", "stadium.n.01", "playing_field.n.02"),
    "harbor": ("seaport.n.01", "port.n.01", "marina.n.01", "pier.n.01", "dock.n.05"),
    "bridge": ("bridge.n.01:1", "viaduct.n.01", "overpass.n.01"),
}
"""Concept -> hand-picked WordNet senses, ``"synset"`` or ``"synset:hyponym depth"``."""
# fmt: on

DROP: dict[str, frozenset[str]] = {
    concept: frozenset(words.split(","))
    for concept, words in {
        "water": "drink,main,mid water,offing,briny,narrow,shallow,rapid,raceway,wallow,"
        "confluent,high sea,mare clausum,mare liberum,seven seas,territorial waters,"
        "international waters,natatorium,cut,race",
        "building": "architecture,bathing machine,aviary,bird sanctuary,volary,feedlot,firetrap,"
        "gambling house,gambling den,gambling hell,gaming house,opium den,shooting gallery,"
        "signal box,signal tower,telecom hotel,telco building,whorehouse,brothel,bordello,bagnio,"
        "house of prostitution,house of ill repute,bawdyhouse,cathouse,sporting house,"
        "dead room,rink,skating rink,plaza,flat,hall,residence,hutch,abode,habitation,domicile,"
        "lodging,living accommodations,eating place,eatery,ruin,ministry,club,nursery,"
        "house of god,mansion house,manse,place,earth closet,jakes,outhouse,privy,dog house,"
        "doghouse,doll's house,dollhouse,kennel,safe house",
        "vehicle": "machine,hack,camion,coach,charabanc,jitney,passenger vehicle,amphibian,"
        "electric,cruiser,rig,semi,doodlebug,phaeton,runabout,horseless carriage,hot rod,"
        "stock car,pace car,go kart",
        "road": "route,pike,branch line,rail line,spur track,trunk line,detour,shortcut,bypath,"
        "roundabout way,drive,speedway,clearway",
        "vegetation": "botany,commons,common,green,timber,baby tears,baby's tears,pearl weed,"
        "pearlweed,pearlwort,rupturewort,whitlowwort,browse,ley,silva,sylva,nursery",
        "land": "waste",
        "airplane": "kamikaze,hangar queen,interceptor,hydroplane,delta wing,narrow body,"
        "wide body,single prop,twin prop,double prop",
        "ship": "watercraft,oiler,scooter,launch,gig,cockleshell,hoy,galley,bareboat,pontoon,"
        "outboard,water scooter,sea scooter,ice yacht,iceboat,dredger,shipwreck",
        "storage_tank": "aquarium,fish tank,marine museum,hot water heater,hot water tank,"
        "water heater,septic tank,gas tank,gasoline tank,petrol tank",
        "baseball_diamond": "park",
        "ground_track_field": "racecourse,raceway,bowl,field,playing area",
        "basketball_court": "home court",
        "bridge": "span,cattle grid,cattle guard",
    }.items()
}
"""Concept -> words of its seeds to leave out: other everyday meanings, rooms, oddities."""

ARTICLES = {"a": "the", "an": "the"}
"""The generated training texts always say "the": "a house" reaches the model as "the building"."""

EXTRA_FUNCTION_WORDS = (
    "a an and or the this that these those some any all of to in on at by with from for near "
    "next around between beside besides inside outside along over under please show find mark "
    "segment select highlight me my our their its is are there here"
).split()
"""Common English words that name no object (besides the grammar's own template words)."""


# --------------------------------------------------------------------------------------------
# The training vocabulary


def trained_concepts() -> dict[str, dict[str, object]]:
    """Concept -> canonical singular/plural name and every trained name (both grammars)."""
    out: dict[str, dict[str, object]] = {}
    for vocab in (NWPU_VOCAB, DUBAI_VOCAB):
        for cls, forms in vocab.items():
            mass = forms.get("mass", [])
            sg = mass[0] if mass and cls != "road" else forms["sg"][0] if forms["sg"] else mass[0]
            pl = mass[0] if mass and cls != "road" else forms["pl"][0] if forms["pl"] else mass[1]
            names = sorted({n for f in ("sg", "pl", "mass") for n in forms.get(f, [])})
            out[cls] = {"sg": sg, "pl": pl, "trained": names}
    return out


def template_words() -> set[str]:
    """Every word of the grammars' templates and ordinals (their slots left out)."""
    words: set[str] = set(ORDINALS)
    for grammar in (NWPU_GRAMMAR, DUBAI_GRAMMAR):
        for template in grammar.templates:
            text = re.sub(r"\{[a-z]+\}", " ", template.pattern)
            words.update(re.findall(r"[a-z]+", text))
    return words


# --------------------------------------------------------------------------------------------
# Plurals and spelling variants


def plurals(noun: str, wn: WordNet) -> list[str]:
    """Plurals of a noun or noun phrase (head = the word before "of", else the last word).

    The regular English form (``-s``, ``-es``, ``-ies``, ``-man`` -> ``-men``) and WordNet's
    irregular ones (``noun.exc``: wharves, stadia), each kept only if WordNet's morphology
    (:meth:`WordNet.morphy`) gives the singular back.
    """
    words = noun.split()
    head = words.index("of") - 1 if "of" in words else len(words) - 1
    word = words[head]
    if word == "man" or (word.endswith("man") and word[:-3] in wn.index):  # not "liman"
        regular = word[:-3] + "men"
    elif re.search(r"(s|x|z|ch|sh)$", word):
        regular = word + "es"
    elif re.search(r"[^aeiou]y$", word):
        regular = word[:-1] + "ies"
    else:
        regular = word + "s"
    irregular = sorted(p for p, bases in wn.exceptions.items() if word in bases and "_" not in p)
    out = []
    for form in (regular, *irregular):
        if form != word and word in wn.morphy(form) and form not in out:
            out.append(form)
    return [" ".join([*words[:head], form, *words[head + 1 :]]) for form in out]


_BRITISH = (
    (re.compile(r"er$"), "re"),
    (re.compile(r"or$"), "our"),
    (re.compile(r"ize$"), "ise"),
    (re.compile(r"yze$"), "yse"),
    (re.compile(r"og$"), "ogue"),
)


def british_variants(word: str, wn: WordNet) -> list[str]:
    """British spellings of an American ``word`` that WordNet lists in one of its synsets."""
    out = []
    for pattern, ending in _BRITISH:
        if pattern.search(word):
            variant = pattern.sub(ending, word)
            for offset in wn.index.get(word, []):
                if variant in (x.lower() for x in wn.synsets[offset].lemmas):
                    out.append(variant)
                    break
    return out


# --------------------------------------------------------------------------------------------
# The derivation


@dataclass(frozen=True)
class Candidate:
    """A word for a concept, with where it came from."""

    phrase: str
    concept: str
    synset: str
    relation: str  # "seed" (a lemma of a chosen sense) or "hyponym"


def _clean(lemma: str) -> str | None:
    """``lemma`` as users type it (spaces, lower case), or None for proper names/odd forms."""
    if lemma != lemma.lower() or not re.fullmatch(r"[a-z][a-z_-]*", lemma):  # no ship's boat
        return None
    phrase = lemma.replace("_", " ").replace("-", " ")
    return phrase if len(phrase.split()) <= 3 else None


def candidates(wn: WordNet) -> list[Candidate]:
    """Every (phrase, concept) the seeds give, before conflicts are resolved."""
    out: list[Candidate] = []
    for concept, seeds in SEEDS.items():
        drop = DROP.get(concept, frozenset())
        for seed in seeds:
            name, _, depth_text = seed.partition(":")
            max_depth = int(depth_text or 0)
            stack = [(wn.synset(name), 0)]
            while stack:
                synset, depth = stack.pop()
                for lemma in synset.lemmas:
                    phrase = _clean(lemma)
                    if phrase is None or phrase in drop:
                        continue
                    if depth == 0:
                        out.append(Candidate(phrase, concept, synset.name, "seed"))
                    elif wn.first_sense(lemma, synset):
                        out.append(Candidate(phrase, concept, synset.name, "hyponym"))
                if depth < max_depth:
                    stack.extend((h, depth + 1) for h in wn.hyponyms(synset))
    return out


def build(wn: WordNet) -> tuple[dict[str, object], list[str]]:
    """The lexicon (JSON-ready) and a log of the decisions (conflicts, skipped words)."""
    concepts = trained_concepts()
    trained_names = {n for c in concepts.values() for n in c["trained"]}  # type: ignore[attr-defined]
    function_words = template_words() | set(EXTRA_FUNCTION_WORDS)
    log: list[str] = []
    by_phrase: dict[str, list[Candidate]] = {}
    for c in candidates(wn):
        by_phrase.setdefault(c.phrase, []).append(c)
    chosen: dict[str, Candidate] = {}
    for phrase, cands in sorted(by_phrase.items()):
        if phrase in trained_names or phrase in function_words:
            continue  # never remap what the model was trained with
        owners = {c.concept for c in cands}
        if len(owners) > 1:
            seeds = {c.concept for c in cands if c.relation == "seed"}
            if len(seeds) != 1:
                log.append(f"ambiguous, left out: {phrase!r} -> {sorted(owners)}")
                continue
            owner = seeds.pop()
            log.append(f"ambiguous, kept for its seed: {phrase!r} -> {owner} (not {owners})")
            cands = [c for c in cands if c.concept == owner]
        chosen[phrase] = min(cands, key=lambda c: (c.relation != "seed", c.synset))
    entries: dict[str, list[str]] = {}
    for phrase, c in sorted(chosen.items()):
        entries[phrase] = [c.concept, "sg", c.synset]
    for phrase, c in sorted(chosen.items()):
        forms = plurals(phrase, wn)
        if not forms:
            log.append(f"no plural for {phrase!r}")
        for form in forms:
            if form in trained_names or form in function_words:
                continue
            if form in entries and entries[form][0] != c.concept:
                log.append(f"plural {form!r} of {phrase!r} is also a word for {entries[form][0]}")
                continue
            entries.setdefault(form, [c.concept, "pl", c.synset])
    rewrites = dict(ARTICLES)
    for word in sorted(function_words):
        for variant in british_variants(word, wn):
            rewrites[variant] = word
    for name in sorted(trained_names):  # British spellings of trained names (centre, harbour)
        for word in name.split():
            for variant in british_variants(word, wn):
                if variant not in trained_names and variant not in entries:
                    log.append(f"variant of a trained word: {variant!r} -> {word!r}")
                    rewrites.setdefault(variant, word)
    lexicon = {
        "format": FORMAT_VERSION,
        "built_by": "tools/build_lexicon.py",
        "source": "WordNet 3.0 (Princeton University), Debian package wordnet-base",
        "license": WORDNET_NOTICE,
        "concepts": concepts,
        "function_words": sorted(function_words),
        "rewrites": rewrites,
        "entries": entries,
    }
    return lexicon, log


WORDNET_NOTICE = (
    "WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. THIS SOFTWARE "
    'AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR '
    "WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON "
    "UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANTABILITY OR FITNESS FOR ANY "
    "PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION "
    "WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS. The "
    "name of Princeton University or Princeton may not be used in advertising or publicity "
    "pertaining to distribution of the software and/or database. Title to copyright in this "
    "software, database and any associated documentation shall at all times remain with "
    "Princeton University and LICENSEE agrees to preserve same."
)
"""The notice WordNet's licence asks to keep with every copy of (data derived from) it."""


def explain(lexicon: dict[str, object], log: Iterable[str]) -> str:
    """Human-readable listing: concept -> its words (singulars), then the decision log."""
    entries = lexicon["entries"]
    assert isinstance(entries, dict)
    lines = []
    concepts = lexicon["concepts"]
    assert isinstance(concepts, dict)
    for concept in concepts:
        words = sorted(p for p, (c, n, _) in entries.items() if c == concept and n == "sg")
        lines.append(f"{concept} ({len(words)}): {', '.join(words)}")
    lines.append(f"rewrites: {lexicon['rewrites']}")
    lines.extend(log)
    return "\n".join(lines)


def to_json(lexicon: dict[str, object]) -> str:
    """JSON with one line per top-level key and per entry (small, and diffs read well)."""
    lines = []
    for key, value in lexicon.items():
        if key == "entries":
            assert isinstance(value, dict)
            rows = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            lines.append('"entries": {\n' + ",\n".join(rows) + "\n}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet", type=Path, default=DEFAULT_WORDNET, help="WordNet dict dir")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--explain", action="store_true", help="print every word and decision")
    args = parser.parse_args(argv)
    wn = WordNet.load(args.wordnet)
    lexicon, log = build(wn)
    text = to_json(lexicon)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    entries = lexicon["entries"]
    assert isinstance(entries, dict)
    if args.explain:
        print(explain(lexicon, log))
    print(f"{args.out}: {len(entries)} words and phrases, {len(text) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
