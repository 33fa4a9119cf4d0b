"""The package's shape: no import cycle among llmlab's modules (imports inside functions count), no module past
900 lines, every module declares ``__all__`` (the import layers themselves are checked by import-linter in
``make check``)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parent.parent / "llmlab"


def test_no_import_cycle_among_llmlab_modules():
    graph = grimp.build_graph("llmlab")
    cycles = []
    for a in sorted(graph.modules):
        for b in graph.find_modules_directly_imported_by(a):
            if "llmlab" in (a, b):  # the facade imports lazily, by name, and is imported for its version only
                continue
            chain = graph.find_shortest_chain(importer=b, imported=a)
            if chain and "llmlab" not in chain:
                cycles.append(" -> ".join([a, *chain]))
    assert not cycles, "\n".join(cycles)


def test_no_module_is_past_900_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) < 900, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_every_module_declares_all():
    missing = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                 for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
        if "__all__" not in names:
            missing.append(str(path.relative_to(PACKAGE)))
    assert not missing, missing
