"""Fail when any module of the given packages takes part in an import cycle.

``python -m tools.import_cycles app provisioning`` builds the import graph with grimp (the
library under import-linter) — every ``import``, at module level or inside a function, except
those under ``if TYPE_CHECKING:`` — and prints each group of modules that import each other in a
loop (a strongly connected component). Exit status 1 if there is one. import-linter's contracts
(pyproject.toml) state the layering; this check forbids cycles at every depth, which its
``acyclic_siblings`` contract does only between siblings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

import grimp


def strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module, or a module
    importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def import_graph(packages: Iterable[str]) -> dict[str, set[str]]:
    names = list(packages)
    graph = grimp.build_graph(*names, exclude_type_checking_imports=True, cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}


def cycles(packages: Iterable[str]) -> list[list[str]]:
    return strongly_connected(import_graph(packages))


def main(argv: list[str] | None = None) -> int:
    packages = (argv if argv is not None else sys.argv[1:]) or ["app", "provisioning"]
    found = cycles(packages)
    for component in found:
        print("import cycle: " + " <-> ".join(component))
    if found:
        return 1
    print(f"no import cycle in {', '.join(packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
