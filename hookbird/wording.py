"""How hookbird words a count in what it tells people.

Both the command line and the doctor's judgements (:mod:`hookbird.doctor`, which are
pure and part of the core) say "1 push", "2 pushes"; the core never imports the
command line, so the rule lives here.
"""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 push``, ``2 pushes``: the count with the word in the right number."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {many or word + 's'}"
