"""S3 listing semantics on a sorted key list: prefix, delimiter, start-after, max-keys.

Pure, so every store shares one definition of how ``CommonPrefixes`` roll up and where a
page ends; stores only have to produce their keys in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    keys: list[str]
    common_prefixes: list[str]
    is_truncated: bool
    #: the last key or prefix on this page; the next page lists what sorts after it
    last: str | None


def paginate(
    sorted_keys: Iterable[str], prefix: str, delimiter: str, after: str, max_keys: int
) -> Page:
    """One page of a listing; a common prefix counts as one entry, as in S3."""
    keys: list[str] = []
    prefixes: list[str] = []
    last: str | None = None
    count = 0
    for key in sorted_keys:
        if not key.startswith(prefix) or key <= after:
            continue
        entry = key
        is_prefix = False
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                entry = key[: cut + len(delimiter)]
                is_prefix = True
        if is_prefix and (entry == last or entry <= after):
            # keys rolled up into a prefix already returned (or one a previous page ended on)
            continue
        if count >= max_keys:
            return Page(keys, prefixes, True, last)
        if is_prefix:
            prefixes.append(entry)
        else:
            keys.append(entry)
        last = entry
        count += 1
    return Page(keys, prefixes, False, last)
