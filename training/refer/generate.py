"""Choose, phrase and check the expressions of one scene (shared by the NWPU and Dubai sources)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from training.refer.grammar import Grammar, Query
from training.refer.resolve import Margins, check_expression, resolve
from training.refer.scene import Scene

EXPR_TYPES = ("class", "unique", "position", "ordinal", "size", "relation")
_TYPE_OF_KIND = {
    "extreme": "position", "corner": "position", "region": "position", "ordinal": "ordinal",
    "size": "size", "nearest": "relation", "farthest": "relation", "direction": "relation",
}


def expr_type(query: Query) -> str:
    """Expression type of a query: ``class`` / ``unique`` (singular class) / ``position`` / ..."""
    if query.kind == "class":
        return "unique" if query.number == "sg" else "class"
    return _TYPE_OF_KIND[query.kind]


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, meaning, type and the target instance ids."""

    text: str
    query: Query
    expr_type: str
    target: frozenset[int]


def select_expressions(
    scene: Scene,
    candidates: list[Query],
    grammar: Grammar,
    caps: dict[str, int],
    rng: np.random.Generator,
    *,
    margins: Margins | None = None,
    phrasings: int = 1,
    min_target_px: int = 16,
    stats: Counter[str] | None = None,
) -> list[Expression]:
    """Resolve candidate queries, keep the discriminative ones, phrase and check them.

    A candidate is kept when it resolves unambiguously, its target mask has at least
    ``min_target_px`` pixels and, for every kind but ``class``, it refers to a strict subset of
    its class (otherwise a class segmenter would do). Per type at most ``caps[type]`` are kept
    (random, seeded). Each kept query gets up to ``phrasings`` different texts, each of which
    must pass :func:`check_expression` (parsed back, every reading resolves to the target).

    Args:
        scene: The image.
        candidates: Queries to try.
        grammar: Renders and parses texts.
        caps: Maximum number of queries per expression type.
        rng: Seeded generator (one per image, so results do not depend on processing order).
        margins: Ambiguity margins.
        phrasings: Texts per query.
        min_target_px: Smallest target mask.
        stats: Counter updated with ``"<kind>:<outcome>"`` keys.

    Returns:
        Expressions in a deterministic order (by type, then selection order).
    """
    stats = stats if stats is not None else Counter()
    by_type: dict[str, list[tuple[Query, frozenset[int]]]] = {t: [] for t in EXPR_TYPES}
    seen_targets: dict[str, set[frozenset[int]]] = {t: set() for t in EXPR_TYPES}
    for q in candidates:
        res = resolve(q, scene, margins)
        if res.ids is None:
            stats[f"{q.kind}:ambiguous"] += 1
            continue
        majors = {i.iid for i in scene.of_class(q.cls, include_minor=False)}
        if q.kind != "class" and res.ids >= majors:
            stats[f"{q.kind}:not_discriminative"] += 1
            continue
        if int(scene.union_mask(res.ids).sum()) < min_target_px:
            stats[f"{q.kind}:too_small"] += 1
            continue
        t = expr_type(q)
        if res.ids in seen_targets[t]:  # "leftmost" = "upper left corner"?
            stats[f"{q.kind}:duplicate"] += 1
            continue
        seen_targets[t].add(res.ids)
        by_type[t].append((q, res.ids))
    out: list[Expression] = []
    for t in EXPR_TYPES:
        pool = by_type[t]
        order = rng.permutation(len(pool)) if pool else []
        kept = 0
        for idx in order:
            if kept >= caps.get(t, 0):
                break
            q, target = pool[int(idx)]
            texts = grammar.render(q)
            n_ok = 0
            for ti in rng.permutation(len(texts)):
                text = texts[int(ti)]
                chk = check_expression(text, scene, target, grammar, margins)
                if not chk.ok:
                    stats[f"{q.kind}:text_rejected"] += 1
                    continue
                out.append(Expression(text, q, t, target))
                n_ok += 1
                if n_ok >= phrasings:
                    break
            if n_ok:
                kept += 1
                stats[f"{q.kind}:accepted"] += 1
    return out
