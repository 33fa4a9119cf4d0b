"""Closing a view: every widget it made leaves the kernel's widget registry, so its data can be freed.

ipywidgets keeps each widget it creates in a process-wide registry until the widget is closed, and closing a
container does not close its children (nor the ``Layout`` and ``Style`` widgets every widget carries). A
comparison view of a 10^5-call run holds about 130 MB and 530 widgets: replaced in a notebook without closing, it
stays for the life of the kernel (``benchmarks/store.py`` measured that growth when it opened one view per repeat).
"""

from __future__ import annotations

from typing import Any

__all__ = ["close_tree"]


def close_tree(root: Any) -> int:
    """Close ``root`` and every widget reachable from it: its traits (children, layout, style), and the widgets its
    attributes hold, directly or in lists, tuples, sets and dicts (a pool of widgets not on screen included).

    Returns the number of widgets closed. Objects that are not widgets or containers are not followed (a store, a
    DataFrame), so nothing outside the view is closed unless the view holds it as an attribute.
    """
    from ipywidgets import Widget

    seen: set[int] = set()
    found: list[Widget] = []
    todo: list[Any] = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Widget):
            found.append(obj)
            todo.extend(vars(obj).values())  # _trait_values holds children, layout, style
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend(obj)
    for widget in found:
        Widget.close(widget)  # ipywidgets' own close: a view's override (which calls this) is not re-entered
    return len(found)
