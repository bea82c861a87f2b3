"""The layering rules of docs/architecture.md, checked on the source: no Airflow in the domain, no import
cycle, imports of our own modules at the top of each file, and a package docstring naming its modules."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOMAIN = REPO / "include" / "fairgate"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(DOMAIN.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(DOMAIN.rglob("*.py"))}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """Nodes inside ``if TYPE_CHECKING:`` blocks: imported for annotations only, never at run time."""
    return {
        id(n)
        for top in tree.body
        if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
        for n in ast.walk(top)
    }


def _imports(path: Path) -> list[tuple[ast.stmt, str]]:
    """Every run-time import of ``path`` with the module it names (``from a import b`` names ``a.b`` where
    that is a module of ours)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.append((node, full if full in MODULES else node.module))
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        deps = {m for _, m in _imports(path) if m in MODULES and m != name}
        parts = name.split(".")
        deps |= {".".join(parts[:i]) for i in range(1, len(parts))} - {name}  # a module runs its packages first
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


# The package order, from the ground up: a module may import its own layer and the layers below it, never one
# above, at run time or for type checking alone. docs/architecture.md draws the same order.
LAYERS = (
    "fairgate.errors",
    "fairgate.values",  # plain(): a frame's value as JSON and YAML hold it
    "fairgate.configuration",
    "fairgate.contracts",  # what one stage hands the next: typed results every layer above may read
    "fairgate.pages",  # the page renderer and its templates
    "fairgate.storage",
    "fairgate.policy",
    "fairgate.groups",  # the policy's protected groups on a frame: codes, cells, comparisons
    "fairgate.data",
    "fairgate.fairness",
    "fairgate.models",
    "fairgate.mitigation",
    "fairgate.governance",
    "fairgate.monitoring",
    "fairgate.reporting",
    "fairgate.stages",
    "fairgate.integrations",
    "fairgate.cli",
)


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return i
    return None


def _all_imports(path: Path) -> list[tuple[int, str]]:
    """Every import of ``path`` that names a module of ours: at the top, inside functions and under
    ``TYPE_CHECKING`` alike (an annotation ties two packages as surely as a call)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("fairgate.")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fairgate."):
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def upward_imports(modules: dict[str, Path], root: Path = REPO) -> list[str]:
    """Each import that runs up the order of :data:`LAYERS`, as ``path:line module -> module``."""
    found = []
    for name, path in modules.items():
        mine = _layer(name)
        for line, target in _all_imports(path):
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                found.append(f"{path.relative_to(root)}:{line} {name} -> {target} ({LAYERS[theirs]})")
    return found


def test_every_module_of_the_domain_stands_on_one_layer():
    assert sorted(n for n in MODULES if n != "fairgate" and _layer(n) is None) == []


def test_no_import_runs_up_the_package_order():
    assert upward_imports(MODULES) == []


def test_the_order_check_catches_an_upward_import_even_for_type_checking(tmp_path):
    low = tmp_path / "fairness.py"
    low.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fairgate.models.recourse import X\n")
    high = tmp_path / "models.py"
    high.write_text("def f():\n    from fairgate.fairness.metrics import measure\n")
    found = upward_imports({"fairgate.fairness.bias": low, "fairgate.models.training": high}, root=tmp_path)
    assert found == ["fairness.py:3 fairgate.fairness.bias -> fairgate.models.recourse.X (fairgate.models)"]


def test_the_domain_never_imports_airflow():
    offenders = [
        f"{path.relative_to(REPO)}:{node.lineno} imports {module}"
        for path in MODULES.values()
        for node, module in _imports(path)
        if module.split(".")[0] == "airflow"
    ]
    assert offenders == []


def test_the_domain_has_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_of_our_own_modules_are_at_the_top_of_the_file():
    """Only heavy third-party imports are deferred into functions; one of ours there hides the structure."""
    inside = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                inside += [
                    f"{path.relative_to(REPO)}:{n.lineno}"
                    for n in ast.walk(fn)
                    if isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "fairgate"
                ]
    assert inside == []


def test_every_package_says_what_its_modules_are_for():
    for init in sorted(DOMAIN.glob("*/__init__.py")):
        if init.parent.is_symlink():
            continue  # fairgate.config: the bundled policy's folder
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        modules = [p.stem for p in init.parent.glob("*.py") if p.stem != "__init__"]
        missing = [m for m in modules if f".{m}" not in doc]
        assert doc and missing == [], f"{init.relative_to(REPO)} names no {missing}"


def test_the_import_depth_stays_shallow():
    graph = _graph()
    depth: dict[str, int] = {}

    def of(v: str) -> int:
        if v not in depth:
            depth[v] = 1 + max((of(w) for w in graph[v]), default=0)
        return depth[v]

    assert max(of(v) for v in graph) <= 12


def _named_in(doc: str) -> tuple[set[str], set[str]]:
    """The dotted names (``fairgate.x.y``) and repository paths a document names in backticks."""
    import re

    spans = re.findall(r"`([^`\n]+)`", doc)
    dotted = {s.split("(")[0] for s in spans if re.fullmatch(r"fairgate(_airflow)?(\.\w+)+(\(\))?", s)}
    paths = {s.split("::")[0] for s in spans if re.match(r"(include|plugins|dags|tests|dev|docs)/", s)}
    return dotted, paths


def _resolves(name: str) -> bool:
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_architecture_doc_names_only_what_exists_and_every_package():
    doc = (REPO / "docs" / "architecture.md").read_text()
    dotted, paths = _named_in(doc)
    assert len(dotted) > 60
    assert sorted(n for n in dotted if not _resolves(n)) == []
    assert sorted(p for p in paths if not (REPO / p).exists()) == []
    packages = {f"fairgate.{p.parent.name}" for p in DOMAIN.glob("*/__init__.py") if not p.parent.is_symlink()}
    assert sorted(packages - dotted) == []


def test_the_doc_check_catches_a_name_that_is_gone():
    assert _resolves("fairgate.fairness.gate.decide")
    assert not _resolves("fairgate.fairness.gate.no_such_function")
    assert not _resolves("fairgate.lifecycle")  # the flat module of before the packages


def test_no_class_name_is_defined_twice():
    """One name per thing: a class name means one class across the domain and the Airflow adapter."""
    seen: dict[str, list[str]] = {}
    for path in [*DOMAIN.rglob("*.py"), *(REPO / "plugins" / "fairgate_airflow").rglob("*.py")]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}


TESTS = REPO / "tests"


def test_no_test_module_imports_another_test_module():
    """What tests share is in tests/support (and fixtures in conftest.py files, which pytest finds itself)."""
    found = []
    for path in TESTS.rglob("*.py"):
        if TESTS / "support" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            if module.startswith("tests.") and not module.startswith("tests.support"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {module}")
    assert found == []


def test_the_unit_tests_mirror_the_packages():
    """tests/unit/<package>/ for each package of the domain, and no folder for one that is gone; a top-level
    module's tests stand in tests/unit/ itself."""
    elsewhere = {"stages": "each stage runs in its DAG (tests/dags) and its operator (tests/operators)"}
    packages = {p.parent.name for p in DOMAIN.glob("*/__init__.py") if not p.parent.is_symlink()}
    folders = {p.name for p in (TESTS / "unit").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= packages, folders - packages
    assert sorted(packages - folders - set(elsewhere)) == []


# What an operator may import of the domain at run time: the stages (which call everything else), the
# results they hand each other, the error kinds (a task's retries follow them), the public face, and the
# integrations for the MLflow task (a layer above the stages). Types for annotations may come from anywhere.
OPERATOR_SEAM = ("fairgate", "fairgate.stages", "fairgate.contracts", "fairgate.errors", "fairgate.integrations")


def test_operators_reach_the_domain_through_the_stages_only():
    found = []
    for path in sorted((REPO / "plugins" / "fairgate_airflow" / "operators").glob("*.py")):
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if module.split(".")[0] != "fairgate":
                continue
            if (
                not any(module == seam or module.startswith(seam + ".") for seam in OPERATOR_SEAM[1:])
                and module != "fairgate"
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {module}")
    assert found == []
