"""One pass over a page's lower-cased bytes: where comments, raw-text elements and tags are.

The fast path locates everything else relative to this scan. A `<script` inside a comment or
a quoted attribute, a `<meta` inside a script string: the scan tells them from real elements
the way the HTML tokenizer does, and answers None (or UNSURE) where it cannot be sure.
"""

from __future__ import annotations

import bisect
import enum
import re
from dataclasses import dataclass

from verifier.parser_html import START_TAG, DecodedPage, comment_end

# A literal '<' first and factored alternatives keep this on the fast path of `re`.
_RAW_TEXT_NAMES = rb"s(?:cript|tyle)|t(?:extarea|itle)|xmp|iframe|no(?:embed|frames)|plaintext"
_MARKUP = re.compile(rb"<(?:(!--|" + _RAW_TEXT_NAMES + rb"|meta)|/(" + _RAW_TEXT_NAMES + rb"))")
_TAG_NAME_END = b" \t\n\r\f/>"
# A start tag longer than this is left to the full parse (and keeps the scans linear).
_MAX_TAG_BYTES = 64 * 1024
_TYPE_ATTRIBUTE_VALUE = re.compile(rb"[\t\n\f\r ]*=[\t\n\f\r ]*(\"[^\"]*\"|'[^']*'|[^\t\n\f\r >]*)")


@dataclass(frozen=True, slots=True)
class PageScan:
    """Where the page's comments, raw-text elements, scripts and meta tags are."""

    page: DecodedPage
    low: bytes
    region_starts: list[int]
    region_ends: list[int]
    scripts: list[tuple[int, int, int, int]]  # attribute text start/end, content start/end
    metas: list[int]  # start offsets of <meta tags

    def in_raw_region(self, position: int) -> bool:
        """Whether `position` lies inside a comment or a raw-text element."""
        index = bisect.bisect_right(self.region_starts, position) - 1
        return index >= 0 and position < self.region_ends[index]


def inside_tag(low: bytes, start: int) -> bool:
    """Whether `start` follows an unclosed '<': "<script" there is an attribute, no element."""
    window = max(0, start - _MAX_TAG_BYTES)
    return low.rfind(b"<", window, start) > low.rfind(b">", window, start)


class Unsure(enum.Enum):
    """A start tag that may extend beyond what the scan looks at."""

    UNSURE = "unsure"


UNSURE = Unsure.UNSURE
TagLookup = re.Match[bytes] | Unsure | None


def start_tag_at(data: bytes, start: int) -> TagLookup:
    """The start tag at `start`, None if there is none, UNSURE if it may be too long to see."""
    end = start + _MAX_TAG_BYTES
    tag = START_TAG.match(data, start, end)
    if tag is None and end < len(data) and data.find(b">", start, end) == -1:
        return UNSURE
    return tag


class EnclosingTags:
    """Start tags around increasing offsets, each '<' searched for and matched only once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._searched_to = 0
        self._last_open = -1
        self._tag: TagLookup = None

    def at(self, position: int) -> tuple[int, TagLookup]:
        """(offset of the last '<' before `position`, its start tag or None or UNSURE)."""
        found = self._data.rfind(b"<", self._searched_to, position)
        self._searched_to = position
        if found != -1:
            self._last_open = found
            self._tag = start_tag_at(self._data, found)
        if self._last_open == -1:
            return -1, UNSURE if position >= _MAX_TAG_BYTES else None
        if position - self._last_open > _MAX_TAG_BYTES:
            return self._last_open, UNSURE
        tag = self._tag
        if isinstance(tag, re.Match) and tag.end() <= position:
            return self._last_open, None
        return self._last_open, tag


def scan_page(page: DecodedPage, low: bytes) -> PageScan | None:
    """Locate comments, raw-text elements, scripts and metas; None if one is left open.

    `low` is page.raw lower-cased (same offsets: only ASCII letters change).
    """
    starts: list[int] = []
    ends: list[int] = []
    scripts: list[tuple[int, int, int, int]] = []
    metas: list[int] = []
    skip_until = 0
    open_name: bytes | None = None
    open_tag: re.Match[bytes] | None = None
    # One pass: the end tag of an open raw-text element is among the matches too, so its
    # content is never searched twice.
    for match in _MARKUP.finditer(low):
        start = match.start()
        if start < skip_until:
            continue
        name, closing = match.group(1), match.group(2)
        after = match.end()
        delimited = after >= len(low) or low[after] in _TAG_NAME_END
        if open_tag is not None:
            if closing == open_name and delimited:
                close = low.find(b">", after)
                skip_until = close + 1 if close != -1 else len(low)
                if open_name == b"script":
                    scripts.append((open_tag.start(2), open_tag.end(2), open_tag.end(), start))
                starts.append(open_tag.start())
                ends.append(skip_until)
                open_name = open_tag = None
            continue
        if closing:
            continue
        if name == b"!--":
            if inside_tag(low, start):
                return None
            skip_until = comment_end(low, start)
            if skip_until == -1:
                return None
            starts.append(start)
            ends.append(skip_until)
        elif not delimited:
            continue
        elif name == b"meta":
            metas.append(start)
        elif name == b"plaintext" or inside_tag(low, start):
            return None
        else:
            tag = start_tag_at(low, start)
            if tag is UNSURE:
                return None
            if isinstance(tag, re.Match):
                open_name, open_tag = name, tag
                skip_until = tag.end()
    if open_tag is not None:
        return None
    return PageScan(page, low, starts, ends, scripts, metas)


def product_markup(low: bytes) -> tuple[list[int], bool]:
    """Offsets of itemtype attributes naming a product, and whether a typeof names one.

    A superset test on the lower-cased bytes: every Product type name contains "product".
    """
    itemtypes: list[int] = []
    rdfa = False
    position = low.find(b"type")
    while position != -1:
        after = position + 4
        if low.startswith(b"of", after):
            attribute, after = b"typeof", after + 2
        elif low.startswith(b"item", position - 4):
            attribute = b"itemtype"
        else:
            position = low.find(b"type", after)
            continue
        value = _TYPE_ATTRIBUTE_VALUE.match(low, after)
        if value is not None and b"product" in value.group(1):
            if attribute == b"typeof":
                rdfa = True
            else:
                itemtypes.append(position - 4)
        position = low.find(b"type", after)
    return itemtypes, rdfa
