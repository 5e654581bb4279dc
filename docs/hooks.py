"""MkDocs hook: a list that follows a paragraph line directly starts a list, as on GitHub.

Python-Markdown needs a blank line before a list; the pages (moved from the README, where GitHub renders
them as lists) often have none. The hook adds that blank line outside code blocks, leaving the sources as
they are.
"""

import re

_ITEM = re.compile(r"^(?:[-*+]|\d+\.) ")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _separate_lists(markdown):
    lines, fenced, previous = [], False, ""
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _ITEM.match(line) and previous.strip() and not (
                _ITEM.match(previous) or previous.startswith((" ", "\t", "|"))):
            lines.append("")
        lines.append(line)
        previous = line
    return "\n".join(lines)


def on_page_markdown(markdown, **kwargs):
    return _separate_lists(markdown)
