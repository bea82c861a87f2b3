"""Hostile values (markup in every field a person writes) and the check that a page shows them as text."""

from __future__ import annotations

from html.parser import HTMLParser

IMG = "<img src=x onerror=alert(1)>"


SCRIPT = "<script>alert(1)</script>"


LINK = "[click me](https://attacker.example/)"


HOSTILE = (IMG, SCRIPT, LINK)


EVIL = f"{IMG} {SCRIPT} {LINK}"  # one value carrying all three


class Page(HTMLParser):
    """A page parsed into its tags, its text and its inline styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def assert_inert(page: str, *, shown: tuple[str, ...] = HOSTILE) -> Page:
    parsed = Page()
    parsed.feed(page)
    for tag, attrs in parsed.tags:
        assert tag not in ("script", "iframe", "object", "embed", "svg", "form", "base", "meta") or (
            tag == "meta" and set(attrs) <= {"charset", "name", "content"}
        ), (tag, attrs)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,"), attrs
        if tag == "a":
            assert "https://attacker" not in (attrs.get("href") or ""), attrs
    text = " ".join(" ".join(parsed.text).split())
    for value in shown:
        assert value in text, f"{value!r} is not shown as text"
    return parsed
