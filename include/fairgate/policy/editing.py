"""Changing keys of a policy file from the command line (``fairgate policy set``), comments kept.

``set_keys(text, ["audit.incoming=/data/feed", "fairness.review_margin=0.05"])`` returns the file
with those keys set and everything else as it was, the comments ``policy init`` wrote included
(a round-trip YAML editor, ruamel.yaml, rewrites only what changed). A key is a dotted path from
the top of the file; missing mappings on the way are created. A value is read as YAML, so
``0.7`` is a number, ``[a, b]`` a list and ``{kind: abs_difference, max: 0.2}`` a mapping; ``yes``,
``no``, ``on`` and ``off`` stay text (only ``true``/``false`` are booleans) and are written quoted.

The result must be a valid policy: it goes through the same bounded reader and schema as any
file (:func:`fairgate.policy.loader.parse_policy`), and the file on disk is replaced in one
rename only when it is, so a refused edit leaves the file as it was.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from fairgate.errors import PolicyError
from fairgate.policy.loader import parse_policy
from fairgate.policy.reading import read_policy_yaml

# Words YAML 1.1 readers take for booleans; Fairgate reads them as text (YAML 1.2), and writes them quoted
# so that every other reader of the file does too.
_BOOLEAN_WORDS = frozenset({"yes", "no", "on", "off", "y", "n"})


def _setting(item: str) -> tuple[list[str], Any]:
    key, sep, value = item.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise PolicyError(f"{item!r} is not KEY=VALUE with a dotted key, e.g. audit.incoming=/data/feed.")
    return path, _quoted(read_policy_yaml(value, source=f"the value of {key.strip()}"))


def _quoted(value: Any) -> Any:
    """``value`` with each text a YAML 1.1 reader would take for a boolean written in quotes."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, str) and value.lower() in _BOOLEAN_WORDS:
        return DoubleQuotedScalarString(value)
    if isinstance(value, list):
        return [_quoted(v) for v in value]
    if isinstance(value, dict):
        return {k: _quoted(v) for k, v in value.items()}
    return value


def set_keys(text: str, settings: list[str], *, source: str = "policy file") -> str:
    """``text`` (a policy file) with each ``KEY=VALUE`` of ``settings`` set; PolicyError unless it is a policy."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    read_policy_yaml(text, source=source)  # the bounded reader first: size, aliases, duplicate keys
    yaml = YAML()  # round trip: comments, order and quoting kept
    yaml.preserve_quotes = True
    doc = yaml.load(text)
    if not isinstance(doc, dict):
        raise PolicyError(f"{source} does not hold a mapping of policy keys.")
    for item in settings:
        path, value = _setting(item)
        node = doc
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = CommentedMap()
            elif not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise PolicyError(
                    f"Policy key '{where}' is {child!r}, not a mapping: '{'.'.join(path)}' cannot be set."
                )
            node = child
        node[path[-1]] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    edited = out.getvalue()
    parse_policy(read_policy_yaml(edited, source=source))  # schema, cross-key rules and model.params
    return edited


def set_in_file(path: str | Path, settings: list[str]) -> None:
    """:func:`set_keys` on the file at ``path``, replaced atomically (a refused edit leaves it untouched)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PolicyError(f"Policy file {path} does not exist.") from None
    edited = set_keys(text, settings, source=f"Policy file {path}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(edited)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
