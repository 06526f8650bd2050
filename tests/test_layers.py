"""The layering of psum, pinned: which package may import which, read from the source's AST.

Layers, bottom up (README "Layout"): the numeric core ``psum.golden`` → its network emulation
``psum.golden.emulation`` (torch + C) → hardware generators ``psum.hw`` → RTL verification
``psum.hw.verify`` → synthesis ``psum.flows``; beside them the float networks ``psum.nets``, then
``psum.quant`` and ``psum.sweeps`` on top of networks and emulation, ``psum.reports`` on top of all,
and the command line ``psum.cli`` over everything. The root's leaf modules (errors, progress,
result files, paths, helpers) may be imported from anywhere and import nothing of psum but each other.

Every ``import``/``from`` statement counts, also those inside functions (a lazy import is still a
dependency); only imports under ``if TYPE_CHECKING:`` are exempt.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> folder (the same mapping as pyproject.toml's package-dir)
FOLDERS = {
    "psum": "psum",
    "psum.cli": "psum/cli",
    "psum.golden": "golden",
    "psum.golden.emulation": "golden/emulation",
    "psum.hw": "hw",
    "psum.hw.verify": "hw/verify",
    "psum.flows": "flows",
    "psum.nets": "nets",
    "psum.quant": "quant",
    "psum.sweeps": "sweeps",
    "psum.reports": "reports",
    "psum.studies": "studies",
}

# Importable from anywhere; they import nothing of psum but each other.
LEAVES = {"psum.errors", "psum.progress", "psum.resultsfile", "psum.paths", "psum._util", "psum.keys"}

# layer -> the layers it may import (besides itself and the leaves)
ALLOWED = {
    "psum.golden": set(),
    "psum.golden.emulation": {"psum.golden"},
    "psum.hw": {"psum.golden"},
    "psum.hw.verify": {"psum.hw", "psum.golden"},
    "psum.flows": {"psum.hw", "psum.hw.verify", "psum.golden"},
    "psum.nets": set(),
    "psum.quant": {"psum.nets", "psum.golden", "psum.golden.emulation"},
    "psum.sweeps": {"psum.nets", "psum.golden", "psum.golden.emulation"},
    "psum.reports": {"psum.golden", "psum.golden.emulation", "psum.hw", "psum.hw.verify", "psum.flows",
                     "psum.nets", "psum.quant", "psum.sweeps", "psum.studies"},
    # psum against published results (issue 16): on top of networks, emulation, sweeps and quant
    "psum.studies": {"psum.nets", "psum.golden", "psum.golden.emulation", "psum.sweeps", "psum.quant"},
    "psum.cli": set(FOLDERS),
    # The root package is the user-facing facade: it re-exports the API of every layer, lazily.
    "psum": set(FOLDERS),
}

# Explicit exceptions to FORBIDDEN_THIRD_PARTY, each with its reason.
EXCEPTIONS = {
    ("psum.golden.quantize", "torch"): "hands a torch tensor back when given one (import inside the function)",
}

# The numeric core may use the standard library and numpy, nothing else (checked by allow-list).
CORE_THIRD_PARTY = {"numpy"}

# Third-party packages a layer must not import (argparse: only the CLI parses arguments).
FORBIDDEN_THIRD_PARTY = {
    "psum.golden": {"torch", "amaranth", "cocotb", "cocotb_tools", "matplotlib", "argparse"},
    "psum.golden.emulation": {"amaranth", "cocotb", "matplotlib", "argparse"},
    "psum.hw": {"torch", "cocotb", "argparse"},
    "psum.hw.verify": {"torch", "argparse"},
    "psum.flows": {"torch", "argparse"},
    "psum.nets": {"amaranth", "cocotb", "argparse"},
    "psum.quant": {"amaranth", "cocotb", "argparse"},
    "psum.sweeps": {"amaranth", "cocotb", "argparse"},
    "psum.reports": {"argparse"},
    "psum.studies": {"amaranth", "cocotb", "argparse"},
    "psum": {"argparse"},
}


def test_every_package_is_registered():
    """A new package folder must be placed in the table (else its imports would go unchecked)."""
    known = {(ROOT / folder).resolve() for folder in FOLDERS.values()}
    for folder in set(FOLDERS.values()):
        for init in (ROOT / folder).rglob("__init__.py"):
            assert init.parent.resolve() in known, f"{init.parent.relative_to(ROOT)}/ is not in FOLDERS"


def modules():
    """Every module of the package: (dotted name, path)."""
    out = []
    for pkg, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = pkg if path.name == "__init__.py" else f"{pkg}.{path.stem}"
            out.append((name, path))
    return out


MODULES = dict(modules())


def layer_of(module: str) -> str:
    """The longest package of :data:`FOLDERS` that holds ``module``."""
    best = ""
    for pkg in FOLDERS:
        if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > len(best):
            best = pkg
    return best


def _is_type_checking(node) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str, path: Path):
    """The absolute names ``name`` imports: ``from X import y`` gives ``X.y`` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip = {id(n) for node in ast.walk(tree) if _is_type_checking(node) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in MODULES or full == "psum.__version__":
                    found.append((full, node.lineno))
                else:
                    found.append((base, node.lineno))
    return found


def test_every_folder_is_a_package():
    for pkg, folder in FOLDERS.items():
        assert (ROOT / folder / "__init__.py").is_file(), f"{folder}/ has no __init__.py ({pkg})"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_layers(name):
    path = MODULES[name]
    mine = layer_of(name)
    bad = []
    for target, line in imports(name, path):
        top = target.split(".")[0]
        if top == "psum":
            if name in LEAVES:
                if target not in LEAVES:
                    bad.append(f"{path.relative_to(ROOT)}:{line}: leaf module imports {target}")
                continue
            if target in LEAVES or target == "psum.__version__":
                continue
            if target == "psum" and mine not in ("psum", "psum.cli"):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mine} may not import the psum facade "
                           "(it re-exports every layer); import the module that holds the name")
                continue
            theirs = layer_of(target)
            if path.name == "__init__.py" and theirs.startswith(name + "."):
                continue  # a package may re-export its own subpackages (lazily)
            if theirs != mine and theirs not in ALLOWED[mine]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mine} may not import {target} ({theirs})")
        elif (name, top) in EXCEPTIONS:
            continue
        elif top in FORBIDDEN_THIRD_PARTY.get(mine, ()):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {mine} may not import {top}")
        elif mine == "psum.golden" and top not in sys.stdlib_module_names and top not in CORE_THIRD_PARTY:
            bad.append(f"{path.relative_to(ROOT)}:{line}: the numeric core imports only the standard "
                       f"library and numpy, not {top}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Module-to-module imports (package ``__init__`` re-exports aside) form no cycle."""
    graph = {}
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        graph[name] = {t for t, _ in imports(name, path)
                       if t in MODULES and MODULES[t].name != "__init__.py" and t != name}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_numeric_core_loads_without_torch():
    """``import psum.golden`` (formats, spec, mac_step, reference) pulls in neither torch nor amaranth."""
    code = ("import sys, psum.golden, psum.golden.reference, psum.golden.stimulus; "
            "print(sorted(m for m in ('torch', 'amaranth', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
