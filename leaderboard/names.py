"""Display names that cannot impersonate each other: NFC, no control characters, one script,
and a unique *skeleton*.

The skeleton (after Unicode TR39's idea) folds case, compatibility forms (NFKC: full-width,
ligatures) and a small table of Cyrillic and Greek letters and digits that look like Latin
letters, so ``аlice`` (Cyrillic ``а``), ``ALICE`` and ``ａｌｉｃｅ`` all have the skeleton of
``alice``. The database keeps skeletons unique: a look-alike of a taken name is a 409.
Names may be written in any script, but letters of Latin, Cyrillic and Greek are not mixed
within one name, the usual shape of a homograph.

This module is imported by a migration: change the table only with a new migration that
recomputes the stored skeletons.
"""

from __future__ import annotations

import unicodedata

NAME_MAX = 64

# Lower-case letters (after casefold) that render like a Latin letter in common fonts.
CONFUSABLES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "г": "r", "д": "d", "е": "e", "ё": "e", "з": "3", "і": "i", "ї": "i",
    "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b",
    "ү": "y", "ѵ": "v", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "σ": "o", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin and digits that read as other Latin letters
    "ı": "i", "ȷ": "j", "ℓ": "l", "0": "o", "1": "l", "|": "l",
})
_CHECKED_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    first = unicodedata.name(ch, "").split(" ", 1)[0]
    return first if first in _CHECKED_SCRIPTS else None


def normalize_name(value: str) -> str:
    """NFC-normalise, trim and check a display name; raise ValueError naming the problem."""
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise ValueError("name must not be empty")
    if len(name) > NAME_MAX:
        raise ValueError(f"name is longer than {NAME_MAX} characters")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise ValueError("name must not contain control or invisible formatting characters")
    scripts = {s for ch in name if (s := _script(ch))}
    if len(scripts) > 1:
        raise ValueError(f"name mixes {' and '.join(sorted(s.title() for s in scripts))} "
                         "letters (a look-alike of another name)")
    return name


def skeleton(name: str) -> str:
    """The form two names share when they look alike; unique among participants."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(CONFUSABLES)
    return " ".join(unicodedata.normalize("NFC", folded).split())
