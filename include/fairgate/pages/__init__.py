"""Every page Fairgate writes or serves, rendered from the templates in this package.

HTML templates are autoescaped, so a value that came from outside the code (a reviewer's
rationale, a policy string, a column name or category value from the data, a run id) is always
text, never markup. Markdown templates (the model card, the review request) pass every value
through :func:`md_text` instead, which escapes the characters Markdown would act on; the card is
turned into HTML with raw HTML disabled. Pages carry no script: charts are inline PNG, and the
stylesheet is this package's one file, inlined and allowed by its hash in
:data:`CONTENT_SECURITY_POLICY`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

STYLESHEET = resources.files(__name__).joinpath("fairgate.css").read_text(encoding="utf-8")
STYLE_SOURCE = "'sha256-" + base64.b64encode(hashlib.sha256(STYLESHEET.encode()).digest()).decode() + "'"
# For every response of the Fairness view. No script may run; images only inline; the one
# stylesheet by its hash; framed only by the Airflow UI on the same origin.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; img-src data:; style-src {STYLE_SOURCE}; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
}

# Markdown acts on these; a backslash makes each a literal character (CommonMark, "Backslash escapes").
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


@dataclass(frozen=True)
class Image:
    """A chart carried inline as a data URI, so a page needs no other file."""

    png: bytes
    alt: str
    css_class: str = ""

    @property
    def src(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


class _MarkdownSource(str):
    """Markdown this package wrote itself (a code span around a value): inserted as it is."""


def md_text(value: Any) -> str:
    """``value`` as literal Markdown text: special characters escaped, line breaks folded."""
    if isinstance(value, _MarkdownSource):
        return value
    if value is None:
        return "n/a"
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).splitlines()))


def md_code(value: Any) -> _MarkdownSource:
    """``value`` as a Markdown code span, fenced by more backticks than it contains."""
    text = " ".join(str(value).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _MarkdownSource(f"{fence}{pad}{text}{pad}{fence}")


def fmt(x: Any, digits: int = 4) -> str:
    """A figure for a table cell: floats to ``digits`` places, missing as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return "n/a" if x != x else f"{x:.{digits}f}"
    return str(x)


def written(value: Any) -> str:
    """A value as people write it, not as Python prints it: yes / no, none, a list joined with commas."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set):
        return ", ".join(written(v) for v in value) or "none"
    return fmt(value)


def md_url(url: str) -> _MarkdownSource:
    """A link destination: characters that would end or break it are percent-encoded."""
    from urllib.parse import quote

    return _MarkdownSource(quote(url, safe="/:?#&=%@+,;.~-_"))


@cache
def _environment(kind: str) -> jinja2.Environment:
    loader = jinja2.PackageLoader(__name__, "templates")
    if kind == "html":
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            finalize=lambda v: "n/a" if v is None else v,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.globals["stylesheet"] = Markup(STYLESHEET)  # noqa: S704  (our own file, hashed in the CSP)
    else:
        env = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701 (Markdown: md_text escapes every value instead)
            finalize=md_text,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["code"] = md_code
        env.filters["url"] = md_url
    env.filters["fmt"] = fmt
    env.filters["written"] = written
    return env


def section(value: Any) -> defaultdict[str, Any]:
    """A record section for a template: a missing section or key reads as None (shown as n/a)."""
    return defaultdict(lambda: None, value or {})


def render_html(template: str, **context: Any) -> str:
    """An autoescaped HTML page from ``templates/<template>``."""
    return _environment("html").get_template(template).render(**context)


def render_markdown(template: str, **context: Any) -> str:
    """A Markdown document from ``templates/<template>``; every value is inserted as literal text."""
    return _environment("markdown").get_template(template).render(**context)


def markdown_to_html(text: str) -> Markup:
    """Our own Markdown as HTML, with raw HTML disabled (it shows as text)."""
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))  # noqa: S704
