"""MLflow metric keys for names of any characters (class names in ``recall.<class>``).

MLflow accepts letters, digits, ``_ - . / :`` and spaces in a key, at most 250 characters, and
refuses a key that a path would normalise to another (``a//b``, ``./a``). Every other
character becomes ``_``; a key that would then repeat another gets ``-2``, ``-3``, ... The
run's ``result.json`` keeps the map back to the real names (``metric_names``).
"""

from __future__ import annotations

import posixpath
import re

MAX_KEY = 250  # MLflow's limit on a metric key
_REFUSED = re.compile(r"[^\w.\- /]")  # colons too: Windows stores refuse them


def _clean(name: str) -> str:
    key = _REFUSED.sub("_", name)
    if posixpath.normpath(key) != key or key.startswith((".", "/")):
        # "a//b", "a/./b", "a/", "/a": keep the characters, drop the path meaning
        key = key.replace("/", "_")
        key = "_" + key[1:] if key.startswith(".") else key
    return key


def metric_keys(prefix: str, names) -> dict[str, str]:
    """``{key: name}`` for each of `names`: ``prefix + name`` made a valid, unique MLflow key.

    Example: ``metric_keys("recall.", ["dog (bark)"])`` -> ``{"recall.dog _bark_": "dog (bark)"}``.
    """
    keys: dict[str, str] = {}
    for name in names:
        base = (prefix + _clean(str(name)))[:MAX_KEY]
        key, n = base, 1
        while key in keys:
            n += 1
            key = f"{base[:MAX_KEY - len(str(n)) - 1]}-{n}"
        keys[key] = name
    return keys
