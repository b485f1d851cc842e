"""A front-to-back read of a page's bytes: where comments, raw-text elements and tags are.

The fast path locates everything else relative to this scan. A `<script` inside a comment or
a quoted attribute, a `<meta` inside a script string: the scan tells them from real elements
the way the HTML tokenizer does, and answers None (or UNSURE) where it cannot be sure.

The scan visits only what can open a comment or a raw-text element ("<!--", "<script",
"<title"...), found by substring search in the lower-cased bytes, in page order; the text of
each comment or raw-text element is skipped whole.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import re

from verifier.parser_bytes import find, lower, rfind, translate
from verifier.parser_elements import TAG_NAME_END, comment_end, find_close_tag
from verifier.parser_html import START_TAG, DecodedPage
from verifier.parser_jsonld import ESCAPED_PRODUCT_LETTER

_COMMENT_START = b"<!--"
_META_START = b"<meta"
# What opens a comment or a raw-text element. Each common opening is searched for on its own.
_OPENINGS = (_COMMENT_START, b"<script", b"<style", b"<title", b"<xmp")
# The seldom ones are searched for together, as one needle in a copy of the page whose
# bytes say only what those openings begin with: '<', one of "tinp", one of "efol". The few
# other tags that begin so ("<tfoot", "<noscript", "<template"...) are passed over.
_SELDOM_OPENINGS = (b"<textarea", b"<iframe", b"<noembed", b"<noframes", b"<plaintext")
_SELDOM_TABLE = bytes(
    0x3C if byte == 0x3C else 1 if byte in b"tinp" else 2 if byte in b"efol" else 0
    for byte in range(256)
)
_SELDOM_NEEDLE = b"<\x01\x02"
# A start tag longer than this is left to the full parse (and keeps the scans linear).
_MAX_TAG_BYTES = 64 * 1024
_TYPE_ATTRIBUTE_VALUE = re.compile(rb"[\t\n\f\r ]*=[\t\n\f\r ]*(\"[^\"]*\"|'[^']*'|[^\t\n\f\r >]*)")
# Every Product type name (Product, IndividualProduct, ProductGroup...) holds the word.
_PRODUCT_WORD = b"Product"

_ESCAPE = b"\\u00"
_ESCAPED_PRODUCT_LETTER = re.compile(ESCAPED_PRODUCT_LETTER.encode("ascii"))


def _mentions_product(raw: bytes, start: int, end: int) -> bool:
    if find(raw, _PRODUCT_WORD, start, end) != -1:
        return True
    return find(raw, _ESCAPE, start, end) != -1 and (
        _ESCAPED_PRODUCT_LETTER.search(raw, start, end) is not None
    )


# attribute text start/end, content start/end (of a script element)
ScriptSpans = tuple[int, int, int, int]


class PageScan:
    """Where the page's comments, raw-text elements, JSON-LD scripts and meta tags are.

    The page is read front to back only as far as a question needs: a tag block near the
    end of the page asks about all before it, but not about the scripts after it. What
    follows cannot change how the tree builder read what came before. Each question
    answers None when the page reads ambiguously before that point (a region left open, a
    "<script" inside a tag...): the parser then builds the whole tree.
    """

    __slots__ = (
        "_ends",
        "_jsonld",
        "_metas",
        "_pending",
        "_reached",
        "_scanned",
        "_seldom",
        "_starts",
        "_unsure",
        "low",
        "page",
    )

    def __init__(self, page: DecodedPage) -> None:
        self.page = page
        # page.raw lower-cased (same offsets: only ASCII letters change)
        self.low = lower(page.raw)
        self._starts: list[int] = []
        self._ends: list[int] = []
        # The scripts whose start tag says "ld+json" (in any case), in page order.
        self._jsonld: list[ScriptSpans] = []
        self._metas: list[int] | None = None
        self._seldom = translate(self.low, _SELDOM_TABLE)
        # The next occurrence of each opening, earliest first: a merge of sorted streams.
        self._pending = [
            (position, opening)
            for opening in _OPENINGS
            if (position := find(self.low, opening)) != -1
        ]
        if (position := find(self._seldom, _SELDOM_NEEDLE)) != -1:
            self._pending.append((position, _SELDOM_NEEDLE))
        heapq.heapify(self._pending)
        self._scanned = 0  # openings before this lie inside a region already found
        self._reached = 0  # every opening before this has been read
        self._unsure = False

    def reach(self, position: int) -> bool:
        """Read every opening before `position`; False if the page reads ambiguously."""
        if position > self._reached and not self._unsure:
            self._unsure = not self._read(position)
        return not self._unsure

    def in_raw_region(self, position: int) -> bool:
        """Whether `position` lies inside a comment or a raw-text element (after reach)."""
        index = bisect.bisect_right(self._starts, position) - 1
        return index >= 0 and position < self._ends[index]

    def jsonld_scripts(self) -> list[ScriptSpans] | None:
        """The ld+json scripts (start tag saying so in any case) that mention "Product".

        JSON may spell the word with escapes ("\\u0050roduct"): a script holding an escaped
        letter of it counts too.
        """
        raw = self.page.raw
        # A script holding the word starts before its last occurrence.
        last = max(rfind(raw, _PRODUCT_WORD), rfind(raw, _ESCAPE))
        if not self.reach(last + 1):
            return None
        return [s for s in self._jsonld if _mentions_product(raw, s[2], s[3])]

    def metas(self) -> list[int] | None:
        """Start offsets of the `<meta` tags outside comments and raw-text elements."""
        if self._metas is None:
            low = self.low
            if not self.reach(rfind(low, _META_START) + 1):
                return None
            metas: list[int] = []
            starts, ends = self._starts, self._ends
            region = 0  # the first region that does not end before `position`
            position = find(low, _META_START)
            while position != -1:
                after = position + len(_META_START)
                while region < len(ends) and ends[region] <= position:
                    region += 1
                inside = region < len(ends) and starts[region] <= position
                if not inside and (after >= len(low) or low[after] in TAG_NAME_END):
                    metas.append(position)
                position = find(low, _META_START, after)
            self._metas = metas
        return self._metas

    def mentions_product_outside_regions(self) -> bool | None:
        """Whether "Product" occurs in the bytes outside comments and raw-text elements."""
        raw = self.page.raw
        if not self.reach(rfind(raw, _PRODUCT_WORD) + 1):
            return None
        position = find(raw, _PRODUCT_WORD)
        while position != -1:
            index = bisect.bisect_right(self._starts, position) - 1
            if index < 0 or position >= self._ends[index]:
                return True
            position = find(raw, _PRODUCT_WORD, self._ends[index])
        return False

    def _read(self, limit: int) -> bool:
        low = self.low
        length = len(low)
        pending = self._pending
        scanned = self._scanned
        while pending and pending[0][0] < limit:
            start, needle = pending[0]
            if needle is _SELDOM_NEEDLE:
                following = find(self._seldom, needle, max(start + len(needle), scanned))
                opening = next((o for o in _SELDOM_OPENINGS if low.startswith(o, start)), b"")
            else:
                following = find(low, needle, max(start + len(needle), scanned))
                opening = needle
            if following == -1:
                heapq.heappop(pending)
            else:
                heapq.heapreplace(pending, (following, needle))
            after = start + len(opening)
            if (
                not opening
                or start < scanned
                or (
                    opening is not _COMMENT_START
                    and after < length
                    and low[after] not in TAG_NAME_END
                )
            ):
                continue  # inside a region; or "<scripts", "<tfoot": another name
            # Right after a region (it ends with '>') and only text between: not in a tag.
            if (not scanned or find(low, b"<", scanned, start) != -1) and inside_tag(low, start):
                return False  # an attribute value, not markup
            if opening is _COMMENT_START:
                end = comment_end(low, start)
                if end == -1:
                    return False  # never closed
            elif opening == b"<plaintext":
                return False  # plain text to the end
            else:
                tag = _tag_end(low, start, after)
                if tag is UNSURE:
                    return False
                if not isinstance(tag, tuple):
                    continue
                # Raw text: the element ends at the first end tag of its own name, whatever
                # is between (a "<!--" or "<meta" in a script string is text).
                close = find_close_tag(low, opening[1:], tag[1])
                if close is None:
                    return False  # never closed
                end = close[1]
                if opening == b"<script" and find(low, b"ld+json", after, tag[0]) != -1:
                    self._jsonld.append((after, tag[0], tag[1], close[0]))
            self._starts.append(start)
            self._ends.append(end)
            scanned = self._scanned = end
        self._reached = limit if pending else length + 1
        return True


def inside_tag(data: bytes, start: int) -> bool:
    """Whether `start` follows an unclosed '<': "<script" there is an attribute, no element."""
    window = max(0, start - _MAX_TAG_BYTES)
    return data.rfind(b"<", window, start) > data.rfind(b">", window, start)


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


def _tag_end(low: bytes, start: int, name_end: int) -> TagLookup | tuple[int, int]:
    """(attribute text end, tag end) of the start tag at `start`, or what start_tag_at says.

    Most start tags hold no quote or only double-quoted values and end at their first '>':
    that is found without the regex.
    """
    close = find(low, b">", name_end)
    if (
        close != -1
        and close - start < _MAX_TAG_BYTES
        and find(low, b"'", name_end, close) == -1
        and low.count(b'"', name_end, close) % 2 == 0
    ):
        return close, close + 1
    tag = start_tag_at(low, start)
    return (tag.end(2), tag.end()) if isinstance(tag, re.Match) else tag


def product_markup(low: bytes) -> tuple[list[int], bool]:
    """Offsets of itemtype attributes naming a product, and whether a typeof names one.

    A superset test on the lower-cased bytes: every Product type name contains "product".
    "type" followed by "of" is a typeof (also in "itemtypeof"), else after "item" an
    itemtype.
    """
    # Each search resumes after the value just read: no attribute starts inside a value, and
    # values never overlap, so hostile runs such as "typeof=typeof=..." stay linear.
    rdfa = False
    position = find(low, b"typeof")
    while position != -1 and not rdfa:
        value = _TYPE_ATTRIBUTE_VALUE.match(low, position + 6)
        rdfa = value is not None and b"product" in value.group(1)
        position = find(low, b"typeof", value.end() if value is not None else position + 6)
    itemtypes: list[int] = []
    position = find(low, b"itemtype")
    while position != -1:
        after = position + 8
        if not low.startswith(b"of", after):
            value = _TYPE_ATTRIBUTE_VALUE.match(low, after)
            if value is not None:
                if b"product" in value.group(1):
                    itemtypes.append(position)
                after = value.end()
        position = find(low, b"itemtype", after)
    return itemtypes, rdfa
