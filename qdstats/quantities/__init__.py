"""The quantity registry: every measured quantity has a name, a unit, a description and a direction.

Quantities are declared in TSV tables next to this file, one per domain (``eval.tsv``, ``weights.tsv``,
``tokenization.tsv``...), with columns ``name``, ``unit``, ``higher_is_worse`` (``true``/``false``/``na``)
and ``description``. :class:`~qdstats.records.Measurement` validates its ``quantity`` against this registry
and copies the unit from it, so a record can never carry an unknown quantity or a wrong unit.

Examples
--------
>>> from qdstats.quantities import get_quantity
>>> get_quantity("eval.bits_per_byte").unit
'bit/byte'
>>> get_quantity("eval.bits_per_bite")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
UnknownNameError: unknown quantity 'eval.bits_per_bite'. Did you mean 'eval.bits_per_byte'? ...
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from qdstats.validation import UnknownNameError, did_you_mean

__all__ = ["Quantity", "get_quantity", "list_quantities", "register_quantity"]


@dataclass(frozen=True)
class Quantity:
    """A registered quantity."""

    name: str
    unit: str
    higher_is_worse: bool | None
    description: str
    domain: str


_EXTRA: dict[str, Quantity] = {}


def _parse_bool(text: str, where: str) -> bool | None:
    t = text.strip().lower()
    if t in {"true", "yes", "1"}:
        return True
    if t in {"false", "no", "0"}:
        return False
    if t in {"na", "", "none"}:
        return None
    raise ValueError(f"{where}: `higher_is_worse` must be true/false/na; got {text!r}.")


@lru_cache(maxsize=1)
def _load_tables() -> dict[str, Quantity]:
    table: dict[str, Quantity] = {}
    pkg = resources.files(__name__)
    for entry in sorted(pkg.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".tsv"):
            continue
        domain = entry.name[: -len(".tsv")]
        lines = entry.read_text(encoding="utf-8").splitlines()
        rows = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
        reader = csv.DictReader(rows, delimiter="\t")
        for i, row in enumerate(reader, start=2):
            where = f"{entry.name}:{i}"
            name = (row.get("name") or "").strip()
            if not name:
                raise ValueError(f"{where}: empty quantity name")
            if name in table:
                raise ValueError(f"{where}: quantity {name!r} declared twice")
            table[name] = Quantity(
                name=name,
                unit=(row.get("unit") or "").strip(),
                higher_is_worse=_parse_bool(row.get("higher_is_worse") or "", where),
                description=(row.get("description") or "").strip(),
                domain=domain,
            )
    return table


def list_quantities() -> dict[str, Quantity]:
    """All registered quantities, by name (tables plus any registered at run time)."""
    out = dict(_load_tables())
    out.update(_EXTRA)
    return out


def get_quantity(name: str) -> Quantity:
    """Look up a quantity; unknown names raise :class:`UnknownNameError` with suggestions."""
    table = list_quantities()
    try:
        return table[name]
    except KeyError:
        names = sorted(table)
        raise UnknownNameError(
            f"unknown quantity {name!r}.{did_you_mean(name, names)} "
            f"Registered quantities ({len(names)}): {', '.join(names[:30])}{' ...' if len(names) > 30 else ''}. "
            "Declare new quantities in qdstats/quantities/<domain>.tsv or with register_quantity()."
        ) from None


def register_quantity(
    name: str, *, unit: str, description: str, higher_is_worse: bool | None = None, domain: str = "user"
) -> Quantity:
    """Register a quantity at run time (for user scripts; the package's own live in the TSV tables).

    Re-registering an identical quantity is a no-op; a conflicting one raises ``ValueError``.
    """
    q = Quantity(name=name, unit=unit, higher_is_worse=higher_is_worse, description=description, domain=domain)
    existing = list_quantities().get(name)
    if existing is not None:
        if (existing.unit, existing.higher_is_worse) != (q.unit, q.higher_is_worse):
            raise ValueError(f"quantity {name!r} is already registered with unit {existing.unit!r}; got {unit!r}.")
        return existing
    _EXTRA[name] = q
    return q
