"""Structure: no import cycles inside the package (lazy imports included), and the benchmark scripts import
nothing from tests/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xformer"
# The model families register themselves with the registry's decorator, and the registry imports them to run it.
ALLOWED = {frozenset({"xformer.models.registry", "xformer.models.mobilenetv2", "xformer.models.vit",
                      "xformer.models.xformer", "xformer.models.segmentation", "xformer.models.detection"})}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that `name` imports anywhere in its body (function-level imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    # importing a module runs its package's __init__ first: that edge is not a cycle of ours
    return {m for m in found if m in modules and not name.startswith(m + ".") and m != name}


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), set(), [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                result.add(frozenset(component))

    for node in graph:
        if node not in index:
            visit(node)
    return result


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles = {c for c in _cycles(graph) if c not in ALLOWED}
    assert cycles == set(), [sorted(c) for c in cycles]


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset({"a", "b", "c"})}


def test_benchmark_scripts_import_nothing_from_tests():
    for path in (ROOT / "benchmarks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "tests" or n.startswith("tests.") for n in names), f"{path.name} imports {names}"


def test_one_readme_updater():
    scripts = [p for p in ROOT.glob("*/*.py") if p.parent.name not in ("tests", ".venv")]
    updaters = [p.relative_to(ROOT).as_posix() for p in scripts if ":start -->" in p.read_text(encoding="utf-8")]
    assert updaters == ["scripts/update_readme.py"]
