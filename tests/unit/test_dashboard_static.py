"""The dashboard's static files are well-formed, accessible and fully local."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "services" / "api" / "static"
INDEX = STATIC / "index.html"

VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
    "source", "track", "wbr",
}  # fmt: skip
# Elements whose end tag HTML lets you leave out; index.html closes them anyway.
OPTIONAL_END = {"li", "p", "option", "tr", "td", "th", "thead", "tbody"}
# SVG's self-closing shapes inside inline <svg>.
SVG_SELF_CLOSING = {"path", "rect", "circle", "line", "polyline", "polygon", "ellipse", "stop"}


class Page(HTMLParser):
    """Collects what the checks need, and every nesting mistake it sees."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[int] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID and tag not in SVG_SELF_CLOSING:
            self.problems.append(f"<{tag}/> is not a void element")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.problems.append(f"end tag for void element </{tag}>")
            return
        if tag not in self.stack:
            self.problems.append(f"stray </{tag}> at line {self.getpos()[0]}")
            return
        while self.stack:
            open_tag = self.stack.pop()
            if open_tag == tag:
                break
            if open_tag not in OPTIONAL_END:
                self.problems.append(f"<{open_tag}> closed by </{tag}> at line {self.getpos()[0]}")

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str | None]]:
        """Attributes of every element matching tag and attribute values."""
        found = []
        for name, a in self.elements:
            if tag is not None and name != tag:
                continue
            if all(a.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                found.append(a)
        return found


@pytest.fixture(scope="module")
def page() -> Page:
    parser = Page()
    parser.feed(INDEX.read_text("utf-8"))
    parser.close()
    return parser


def js_files() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*.js") if "vendor" not in p.parts)


def test_index_parses_cleanly(page: Page) -> None:
    assert page.doctype.lower() == "doctype html"
    assert page.problems == []
    assert page.stack == [], f"unclosed elements: {page.stack}"
    html = page.find("html")
    assert html and html[0].get("lang")
    assert page.find("meta", charset="utf-8")
    assert page.find("meta", name="viewport")
    assert page.find("title")


def test_landmarks_and_headings(page: Page) -> None:
    for landmark, role in (("header", "banner"), ("nav", "navigation"), ("main", "main")):
        assert page.find(landmark) or page.find(role=role), f"no {landmark} landmark"
    assert page.headings.count(1) == 1, "exactly one h1"
    assert page.headings[0] == 1
    for before, after in zip(page.headings, page.headings[1:], strict=False):
        assert after <= before + 1, f"heading level jumps from h{before} to h{after}"
    live = [a for _, a in page.elements if a.get("aria-live") in {"polite", "assertive"}]
    assert live, "an aria-live region announces connection state and PR updates"


def test_every_control_has_a_label(page: Page) -> None:
    label_for = {a.get("for") for a in page.find("label")}
    for tag in ("input", "select", "textarea"):
        for attrs in page.find(tag):
            if attrs.get("type") in {"hidden", "submit", "button"}:
                continue
            labelled = (
                attrs.get("id") in label_for
                or attrs.get("aria-label")
                or attrs.get("aria-labelledby")
            )
            assert labelled, f"<{tag} id={attrs.get('id')!r}> has no label"


def test_id_references_resolve(page: Page) -> None:
    ids = [a["id"] for _, a in page.elements if a.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for _, attrs in page.elements:
        for name in ("for", "aria-labelledby", "aria-describedby", "aria-controls"):
            for ref in (attrs.get(name) or "").split():
                assert ref in ids, f"{name}={ref!r} points at no element"
        href = attrs.get("href") or ""
        if href.startswith("#") and len(href) > 1:
            assert href[1:] in ids, f"in-page link {href} has no target"


def test_references_are_local_files(page: Page) -> None:
    refs = [a.get("src") for a in page.find("script")] + [a.get("href") for a in page.find("link")]
    refs += [a.get("src") for a in page.find("img")]
    refs = [r for r in refs if r]
    assert refs, "index.html loads its script and stylesheet"
    for ref in refs:
        assert not re.match(r"^(https?:)?//", ref), f"{ref} needs the network (no CDN)"
        assert (STATIC / ref.lstrip("./")).is_file(), f"{ref} does not exist"
    scripts = page.find("script")
    assert all(s.get("type") == "module" for s in scripts if s.get("src"))


def test_nothing_inline_that_the_csp_blocks(page: Page) -> None:
    """The dashboard's CSP allows no inline script or style (flowlens.serving.DASHBOARD_CSP)."""
    for script in page.find("script"):
        assert script.get("src"), "inline <script>: move it to a file"
    assert not page.find("style"), "<style>: move it to style.css"
    for tag, attrs in page.elements:
        assert "style" not in attrs, f"<{tag} style=...>: use a class in style.css"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"<{tag} {handlers[0]}=...>: add the listener in a module"
        for name in ("href", "src", "action", "formaction"):
            assert not (attrs.get(name) or "").lower().startswith("javascript:"), (tag, name)
    for path in js_files():
        source = path.read_text("utf-8")
        for sink in ("new Function", 'setAttribute("style"', 'setTimeout("', 'setInterval("'):
            assert sink not in source, f"{path.name} uses {sink}, which the CSP blocks"


def test_module_imports_resolve() -> None:
    files = js_files()
    assert (STATIC / "app.js") in files
    pattern = re.compile(r"""(?:^|\s)(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']""", re.M)
    for path in files:
        source = path.read_text("utf-8")
        for spec in pattern.findall(source):
            assert spec.startswith(("./", "../")), f"{path.name}: {spec} is not local"
            assert (path.parent / spec).resolve().is_file(), f"{path.name}: {spec} does not exist"


def test_api_data_is_never_parsed_as_markup() -> None:
    for path in js_files():
        source = path.read_text("utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{path.name} uses {sink}"
        assert not re.search(r"""["'`]https?://(?!www\.w3\.org/2000/svg)""", source), (
            f"{path.name} reaches a remote URL"
        )


def test_browser_test_hooks_exist(page: Page) -> None:
    assert page.find(data_testid="conn-state")
    assert page.find("table", data_testid="builds-table")
    source = "\n".join(p.read_text("utf-8") for p in js_files())
    for hook in ("pr-row", "pr-status", "risk-badge", "metric-"):
        assert f'"{hook}' in source, f"data-testid {hook} is missing"
    for stage in ("pr", "build", "approval", "merge"):
        assert f'id: "{stage}"' in source, f"stage-{stage} is missing"
    assert "success-rate" in source


def test_stylesheet_is_sound() -> None:
    css = (STATIC / "style.css").read_text("utf-8")
    without_comments = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    assert without_comments.count("{") == without_comments.count("}")
    assert "prefers-color-scheme: dark" in css
    assert ":focus-visible" in css
    assert "prefers-reduced-motion" in css
    for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", without_comments):
        assert url.startswith("#") or (STATIC / url).is_file(), f"style.css references {url}"


def test_vendored_code_carries_its_licence() -> None:
    vendored = [p for p in STATIC.rglob("*") if p.is_file() and "vendor" in p.parts]
    for path in vendored:
        if path.suffix in {".js", ".css", ".mjs"}:
            licences = list(path.parent.glob("LICENSE*")) + list(path.parent.glob("LICENCE*"))
            assert licences, f"{path} is vendored without a licence file beside it"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_modules_are_valid_javascript() -> None:
    node = shutil.which("node")
    assert node is not None
    for path in js_files():
        result = subprocess.run(
            [node, "--input-type=module", "--check"],
            input=path.read_text("utf-8"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
