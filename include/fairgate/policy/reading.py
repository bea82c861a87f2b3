"""Reading a policy file: bounded, so one careless or hostile file cannot stall a deployment.

The same reader serves the CLI, the DAG processor's catalog and the tasks. It refuses, naming the
file and the line:

- a file larger than :data:`MAX_BYTES` (a policy is a page of settings, not a data file);
- YAML aliases (``*name``, and so ``<<:`` merges): an alias bomb expands a few lines into
  gigabytes, and a policy has no need to repeat itself by reference;
- a key given twice in one mapping (YAML would keep the last one silently: a second
  ``model_name`` would rename the model).

Numbers that are not finite (``.nan``, ``.inf``) are refused where the policy is validated
(:func:`fairgate.policy.schema.validate`), so a policy built in code is held to the same rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fairgate.errors import PolicyError

MAX_BYTES = 1_000_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and with duplicate keys refused."""

    source = "policy file"

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML has no type hints
            raise PolicyError(
                f"{self.source} line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in "
                "a policy file; write the value out."
            )
        return super().compose_node(parent, index)

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
    loader = _Loader(data)
    loader.source = f"Policy file {source},"
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise PolicyError(f"Policy file {source} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
