"""Who a name denotes: people are compared by their names case- and space-normalised.

``alice``, ``Alice`` and `` alice `` are one person to a quorum, to ``review.approvers`` and to
separation of duties; otherwise one reviewer could count twice by typing their name differently.
"""

from __future__ import annotations


def person(name: str | None) -> str:
    """The comparable form of ``name`` (case-folded, inner spaces collapsed); "" for no name."""
    return " ".join(str(name or "").split()).casefold()


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two names denote one person (two missing names denote nobody)."""
    return bool(person(a)) and person(a) == person(b)
