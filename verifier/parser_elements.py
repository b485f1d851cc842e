"""Where things end in page bytes: comments, end tags, elements, as libxml2 builds them.

The fast path parses an element from its own bytes (a tag block, a microdata Product), so it
must know where the element ends in the page the way libxml2's tree builder would close it,
and answer None where it cannot be sure. The bytes are lower-cased page bytes throughout.
"""

from __future__ import annotations

import re

from verifier.parser_bytes import find

RAW_TEXT_TAGS = (
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
    b"plaintext",
)
_RAW_TEXT_NAMES = frozenset(RAW_TEXT_TAGS)
VOID_TAGS = frozenset(
    b"area base br col embed hr img input keygen link meta param source track wbr".split()
)
TAG_NAME_END = b" \t\n\r\f/>"
# libxml2's end-tag priorities (htmlEndPriority): which open elements an end tag may close.
_END_PRIORITY = {
    b"div": 150,
    b"td": 160,
    b"th": 160,
    b"tr": 170,
    b"thead": 180,
    b"tbody": 180,
    b"tfoot": 180,
    b"table": 190,
    b"head": 200,
    b"body": 200,
    b"html": 220,
}
_DEFAULT_END_PRIORITY = 100
_MAX_OPEN_ELEMENTS = 256
ATTRIBUTE = re.compile(
    rb"([^\t\n\f\r \"'>/=]+)"
    rb"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?:\"([^\"]*)\"|'([^']*)'|([^\t\n\f\r >]+)))?"
)
# The last alternative is markup the tokenizer reads as a bogus comment ("<?x ...>", "<!x ...>",
# "</ ...>", CDATA): an end tag inside it is no end tag, which this scan does not model.
_TOKEN = re.compile(
    rb"<!--|<(/?)([a-z][^\s/>]*+)((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>|(<[!?]|</(?![a-z]))"
)
# Markup that leaves the open elements as they were: text, void elements, and elements
# that close with their own end tag around such markup, nested up to _NEUTRAL_DEPTH deep,
# in the shapes templates write (plain attributes, `</name>` end tags). find_element_end
# lets the regex engine walk runs of it; each element there is a push and a pop of _TOKENs.
_NEUTRAL_DEPTH = 12
# Bytes a limited scan may read again (runs cut short by its limit) before it gives up.
_REREAD_FACTOR = 1
_REREAD_ALLOWANCE = 32 * 1024
_SPACE = rb"[\t\n\f\r\v ]"
_PLAIN_ATTRIBUTES = (
    rb"(?:" + _SPACE + rb"++[^\t\n\f\r\v \"'>/=]++"
    rb"(?:=(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r\v \"'=<>`/]++))?+)*+" + _SPACE + rb"*+>"
)


def _neutral_run(depth: int) -> re.Pattern[bytes]:
    not_element = b"|".join((*RAW_TEXT_TAGS, *sorted(VOID_TAGS)))
    flat = (
        rb"[^<]++|<(?![!?/a-z])|<(?:"
        + b"|".join(sorted(VOID_TAGS))
        + rb")(?=[\s/>])(?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+>"
    )
    markup = flat
    for level in range(depth):
        markup = (
            flat
            + rb"|<(?!(?:"
            + not_element
            + rb")[\s/>])(?P<n%d>[a-z][^\s/>]*+)" % level
            + _PLAIN_ATTRIBUTES
            + rb"(?:"
            + markup
            + rb")*+</(?P=n%d)>" % level
        )
    return re.compile(rb"(?:" + markup + rb")*+")


_NEUTRAL_RUN = _neutral_run(_NEUTRAL_DEPTH)


def comment_end(low: bytes, start: int) -> int:
    """End offset of the comment opened at `start` ('<!-->' included), or -1 if unclosed."""
    end = find(low, b"-->", start + 2)
    # "--!>" also closes a comment; only look for it before the first "-->".
    bang = find(low, b"--!>", start + 4, end if end != -1 else len(low))
    if bang != -1:
        return bang + 4
    return end + 3 if end != -1 else -1


def find_close_tag(low: bytes, name: bytes, start: int) -> tuple[int, int] | None:
    """(start, end) of the first '</name' end tag at or after `start`, or None."""
    needle = b"</" + name
    position = find(low, needle, start)
    while position != -1:
        after = position + len(needle)
        if after >= len(low) or low[after] in TAG_NAME_END:
            close = find(low, b">", after)
            return (position, close + 1 if close != -1 else len(low))
        position = find(low, needle, after)
    return None


def is_self_closing(attribute_text: bytes) -> bool:
    """Whether a start tag's attribute text ends in a '/' that is not part of a value."""
    if not attribute_text.rstrip().endswith(b"/"):
        return False
    last_end = 0
    for match in ATTRIBUTE.finditer(attribute_text):
        last_end = match.end()
    return attribute_text[last_end:].strip() == b"/"


def find_element_end(low: bytes, name: bytes, content_start: int) -> int | None:
    """End offset of the element whose start tag ends at `content_start`, or None if unsure.

    Unsure means: never closed, or closed by an end tag for something opened before it (the
    tree builder would have closed the element there, in a way this scan does not model).
    Comments and raw-text elements inside are skipped whole, as the tokenizer skips them.
    """
    scanned = _scan_element(low, name, content_start, None)
    return scanned[1] if scanned is not None else None


def element_open_past(low: bytes, name: bytes, content_start: int, limit: int) -> int | None:
    """An offset at or past `limit` where the element is still open, or None.

    The reading of find_element_end, stopped once past `limit` and past the end of every
    element that the token crossing `limit` opened (text may be cut there). None: the
    element closes before that point, or the scan is unsure.
    """
    scanned = _scan_element(low, name, content_start, limit)
    return scanned[1] if scanned is not None and not scanned[0] else None


def _scan_element(
    low: bytes, name: bytes, content_start: int, limit: int | None
) -> tuple[bool, int] | None:
    """(closed, offset): where the element ends, or where the scan stopped past `limit`."""
    open_names: list[bytes] = [name]
    position = content_start
    stop = len(low) + 1 if limit is None else limit
    depth = 1  # open elements when the scan reached `stop`
    reread = 0
    budget = _REREAD_FACTOR * (stop - content_start) + _REREAD_ALLOWANCE
    while True:
        if position < stop:
            depth = len(open_names)
        elif len(open_names) <= depth:
            return False, position
        if len(open_names) + _NEUTRAL_DEPTH <= _MAX_OPEN_ELEMENTS:
            # It always matches (maybe nothing); within the depth limit, its pushes are too.
            # Not past `stop`: that would skip the point where the scan has to stop.
            run_start = position
            neutral = _NEUTRAL_RUN.match(low, position, stop if position < stop else len(low))
            position = neutral.end() if neutral is not None else position
            if limit is not None and run_start < stop and position < stop:
                # A run cut short by the limit backs out of the elements still open there,
                # and the next one reads their content again one level deeper: past a budget
                # of such re-reading, leave it to the unlimited scan, which reads bytes once.
                reread += stop - run_start
                if reread > budget:
                    return None
            if position >= stop and len(open_names) <= depth:
                # A '<' read as text just before `stop` may open a tag or a comment that
                # goes on past it: the token search reads it whole.
                cut = find(low, b"<", max(run_start, stop - 3), stop)
                if position > stop or cut == -1 or find(low, b">", cut, stop) != -1:
                    return False, position
                position = cut
        match = _TOKEN.search(low, position)
        if match is None:
            return None
        position = match.end()
        closing, tag, attribute_text, bogus = match.groups()
        if bogus is not None:
            return None
        if tag is None:
            position = comment_end(low, match.start())
            if position == -1:
                return None
        elif closing:
            if tag not in open_names:
                return None
            index = len(open_names) - 1 - open_names[::-1].index(tag)
            # libxml2 ignores an end tag that would implicitly close an element of higher
            # end priority (</span> inside an open <div>).
            priority = _END_PRIORITY.get(tag, _DEFAULT_END_PRIORITY)
            if any(
                _END_PRIORITY.get(name, _DEFAULT_END_PRIORITY) > priority
                for name in open_names[index + 1 :]
            ):
                continue
            del open_names[index:]
            if not open_names:
                return True, match.end()
        elif tag in _RAW_TEXT_NAMES:
            if tag == b"plaintext":
                return None  # never closed: the rest of the page is its text
            closed = find_close_tag(low, tag, match.end())
            if closed is None:
                return None
            position = closed[1]
        elif tag not in VOID_TAGS and not is_self_closing(attribute_text):
            if len(open_names) >= _MAX_OPEN_ELEMENTS:
                return None  # deeper than libxml2 nests by default; and keeps this linear
            open_names.append(tag)
