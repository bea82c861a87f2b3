"""Reading a policy file: bounded, so one careless or hostile file cannot stall a deployment.

The same reader serves the CLI, the DAG processor's catalog and the tasks. It refuses, naming the
file and the line:

- a file larger than :data:`MAX_BYTES` (a policy is a page of settings, not a data file);
- YAML aliases (``*name``, and so ``<<:`` merges): an alias bomb expands a few lines into
  gigabytes, and a policy has no need to repeat itself by reference;
- a key given twice in one mapping (YAML would keep the last one silently: a second
  ``model_name`` would rename the model);
- nesting deeper than :data:`MAX_DEPTH` levels (a policy is a few levels deep; 100,000 of them
  exhaust the parser's recursion), a whole number of more than :data:`MAX_DIGITS` digits, and
  control characters (NUL and the like, refused by YAML itself).

Every error of reading and constructing a file, whatever raised it, is a
:class:`~fairgate.errors.PolicyError` naming the file: never a traceback, never an exception that
a caller (the DAG processor reading a folder of policies) does not expect.

Booleans are YAML 1.2's (``true``/``false`` only): ``yes``, ``no``, ``on`` and ``off`` are text, as
the values of a yes/no column are.

Numbers that are not finite (``.nan``, ``.inf``) are refused where the policy is validated
(:func:`fairgate.policy.schema.validate`), so a policy built in code is held to the same rule.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fairgate.errors import PolicyError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_DIGITS = 30


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and with duplicate keys refused."""

    source = "policy file"
    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML has no type hints
        if self.check_event(yaml.AliasEvent):
            raise PolicyError(
                f"{self.source} line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in "
                "a policy file; write the value out."
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise PolicyError(
                    f"{self.source} line {event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep; a "
                    "policy is a few levels of settings."
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_DIGITS:
            raise PolicyError(
                f"{self.source} line {node.start_mark.line + 1}: a whole number of {digits:,} digits; a policy's "
                f"numbers have at most {MAX_DIGITS}."
            )
        return int(super().construct_yaml_int(node))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise PolicyError(f"{self.source} line {key_node.start_mark.line + 1}: a key must be a plain value.")
            if key in seen:
                raise PolicyError(
                    f"{self.source} line {key_node.start_mark.line + 1}: key {key!r} is given twice in the same "
                    "mapping; keep one."
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_policy_yaml(data: bytes | str, *, source: str | Path = "(given as text)") -> Any:
    """The parsed YAML of a policy file, or :class:`PolicyError` naming ``source`` and the cause."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_BYTES:
        raise PolicyError(
            f"Policy file {source} is {size:,} bytes; a policy may be at most {MAX_BYTES:,} "
            "(it holds settings, not data)."
        )
    loader = None
    try:
        loader = _Loader(data)  # the reader checks every character here: a NUL byte is refused at once
        loader.source = f"Policy file {source},"
        return loader.get_single_data()
    except PolicyError:
        raise
    except yaml.YAMLError as exc:
        raise PolicyError(f"Policy file {source} is not valid YAML: {exc}") from None
    except (ValueError, TypeError, RecursionError, MemoryError, UnicodeError) as exc:  # whatever else the parser raised
        raise PolicyError(f"Policy file {source} cannot be read ({type(exc).__name__}: {str(exc)[:200]}).") from None
    finally:
        if loader is not None:
            loader.dispose()


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
# Booleans as YAML 1.2 has them: only true / false. YAML 1.1 (PyYAML's default) also reads yes, no, on,
# off, y and n as booleans, so `allowed: [yes, no]` of a yes/no column became [True, False].
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
