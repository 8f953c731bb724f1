"""The house rules of pcdrl/ (design.md, "The house"), checked on the source itself:

- packages import only packages below them in the data flow (LAYERS), lazy imports inside functions included;
- no import cycles between modules;
- no module imports another module's private (`_name`) names;
- reward terms import nothing that runs a model (they are pure functions of a batch);
- no source file is over MAX_LINES;
- nothing but `pcdrl` is a Python package at the top of the repo (a wheel installs nothing generic).
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pcdrl"
LAYERS = {
    "runtime": 0, "stats": 0,
    "models": 1, "pcd": 2, "behaviors": 3, "simulators": 4, "explanations": 5, "rewards": 6, "rl": 7,
    "evaluation": 8, "study": 9, "sweeps": 9, "quickstart_config": 10, "quickstart": 10, "cli": 11, "__main__": 12, "__init__": 0,
}
"""Each top-level part of pcdrl, by its place in the data flow; a part imports only parts with a lower or equal
number (equal: within itself). A new package must be placed here on purpose."""
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every pcdrl import in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pcdrl":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.append((full, "", node.lineno) if full in modules else (node.module, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "pcdrl"]
    return out


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = _modules()
IMPORTS = {name: _imports(path, MODULES) for name, path in MODULES.items()}


def test_every_part_has_a_layer():
    assert {_part(m) for m in MODULES} <= set(LAYERS), "a new part of pcdrl needs its place in LAYERS"


def test_parts_import_only_parts_below_them():
    upward = [f"{MODULES[m].relative_to(REPO)}:{line} imports {target} ({_part(m)} may not import {_part(target)})"
              for m, imports in IMPORTS.items() for target, _, line in imports
              if LAYERS[_part(target)] > LAYERS[_part(m)]]
    assert upward == []


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in imports if t in MODULES and t != m} for m, imports in IMPORTS.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_imports_of_private_names():
    private = [f"{MODULES[m].relative_to(REPO)}:{line} imports {name} from {target}"
               for m, imports in IMPORTS.items() for target, name, line in imports
               if name.startswith("_") and not name.startswith("__")]
    assert private == []


def test_reward_terms_run_no_model():
    reaching = sorted({t for m, imports in IMPORTS.items() if _part(m) == "rewards"
                       for t, _, _ in imports if _part(t) not in ("rewards", "runtime", "stats")})
    assert reaching == []


def test_no_source_file_over_the_limit():
    long = {str(p.relative_to(REPO)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_pcdrl_is_the_only_top_level_package():
    packages = sorted(p.parent.name for p in REPO.glob("*/__init__.py"))
    assert packages == ["pcdrl"]


def test_the_checks_see_the_code():
    # A guard against the checks above passing on nothing: the walk finds the packages and their imports.
    assert {"pcdrl.rl.trainer", "pcdrl.cli", "pcdrl.runtime.config_loader"} <= set(MODULES)
    assert any(t == "pcdrl.runtime.config_loader" for t, _, _ in IMPORTS["pcdrl.rl.train_config"])
    by_part = defaultdict(set)
    for m, imports in IMPORTS.items():
        by_part[_part(m)] |= {_part(t) for t, _, _ in imports}
    assert "rl" in by_part["evaluation"] and "runtime" in by_part["models"]
