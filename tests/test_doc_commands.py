"""Every ``fairgate`` and ``airflow`` command the docs show in a reference block (the untagged blocks
beside the ``bash`` walkthroughs, which ``tests/test_walkthroughs.py`` runs) is accepted, as printed,
by the parser of the CLI it names: a renamed flag, a removed subcommand or a wrong choice fails here.

A reference block writes synopses (``[--date D]``, ``VERSION|production``, ``KEY=VALUE ...``); each
is read the way a person would type it: optional parts included, the first of the alternatives,
``...`` dropped. The commands need a store, a run id or a live Airflow, so they are parsed, not run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fairgate.cli.main import build_parser as fairgate_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"^(?:\$ )?(?:\.venv/bin/)?(fairgate|airflow)\s+(.*)$")


def _reference_commands() -> list[tuple[str, str, str]]:
    """(page, cli, the line as printed) of every command line of every untagged block."""
    out = []
    for page in PAGES:
        for block in re.findall(r"```\n(.*?)```", page.read_text(), flags=re.S):
            joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
            for line in joined.splitlines():
                found = COMMAND.match(line.strip())
                if found:
                    out.append((page.name, found.group(1), found.group(2)))
    return out


def as_typed(synopsis: str) -> list[str]:
    """A synopsis as the arguments a person types: ``[x]`` → ``x``, ``a|b`` → ``a``, ``...`` dropped."""
    unquoted_ellipsis = re.sub(r"(?<=\s)\.\.\.(?=\s|$)", " ", synopsis)  # `KEY=VALUE ...`, not `"..."`
    words, out, skip = shlex.split(unquoted_ellipsis, comments=True), [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word == "|":  # `mlflow-sync | mlflow-check`: the first alternative
            skip = True
            continue
        word = word.strip("[]")
        if not word:
            continue
        out.append(word.split("|")[0] if "|" in word and not word.startswith(("'", '"')) else word)
    return out


COMMANDS = _reference_commands()


def test_the_docs_show_reference_commands_of_both_clis():
    assert {cli for _, cli, _ in COMMANDS} == {"fairgate", "airflow"} and len(COMMANDS) >= 30


def test_synopses_read_as_typed():
    assert as_typed("bundle VERSION|production [--out FILE] [--no-model]   # x") == [
        "bundle",
        "VERSION",
        "--out",
        "FILE",
        "--no-model",
    ]
    assert as_typed("mlflow-sync | mlflow-check [--tracking-uri URI]") == ["mlflow-sync", "--tracking-uri", "URI"]
    assert as_typed("policy set FILE KEY=VALUE ...") == ["policy", "set", "FILE", "KEY=VALUE"]
    assert as_typed('contest ROW --reason "..." [--date D]') == ["contest", "ROW", "--reason", "...", "--date", "D"]


@pytest.mark.parametrize(("page", "cli", "line"), COMMANDS, ids=[f"{p}:{c} {x[:40]}" for p, c, x in COMMANDS])
def test_each_reference_command_parses_as_printed(page, cli, line):
    if cli == "fairgate":
        build_parser = fairgate_parser
    else:
        from airflow.cli.cli_parser import get_parser as build_parser  # Airflow's CLI: heavy, only here
    argv = as_typed(line)
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{page}: `{cli} {line}` is not accepted by the {cli} CLI (argv {argv}, exit {exc.code})")
