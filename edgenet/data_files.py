"""The package's own data files (edgenet/data: the catalog, label lists, published figures), read by path.
importlib.resources would cost a few ms of imports (zipfile among them) at every start, and edgenet is never
run from a zip."""

from __future__ import annotations

import os

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def read_text(name: str) -> str:
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        return handle.read()
