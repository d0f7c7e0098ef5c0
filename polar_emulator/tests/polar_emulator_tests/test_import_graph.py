"""The emulator's import graph: no cycles at all, and a domain layer that imports nothing above it.

Every import counts, ``TYPE_CHECKING`` ones and imports inside functions included.
"""

from __future__ import annotations

from functools import cache

import grimp

PACKAGE = "polar_emulator"
# What the domain layer may import of the emulator: itself and the foundations below it.
BELOW_DOMAIN = ("config", "clock", "tokens", "errors")


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def import_cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a cycle in them (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in imports[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in imports[module]:
                cycles.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_finds_cycles() -> None:
    imports = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": set()}
    assert import_cycles(imports) == [["a", "b", "c"], ["d"]]


def test_no_module_imports_itself_back() -> None:
    g = graph()
    imports = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    assert import_cycles(imports) == []


def test_the_domain_imports_nothing_above_it() -> None:
    g = graph()
    domain = {f"{PACKAGE}.domain", *g.find_descendants(f"{PACKAGE}.domain")}
    allowed = domain | {f"{PACKAGE}.{name}" for name in BELOW_DOMAIN}
    wrong = sorted(
        (module, imported)
        for module in domain
        for imported in g.find_modules_directly_imported_by(module)
        if imported not in allowed
    )
    assert wrong == []
