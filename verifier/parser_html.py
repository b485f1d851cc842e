"""Page bytes to UTF-8 and trees: charset choice, lxml documents, tag and entity helpers.

Every page is turned into UTF-8 bytes once (decode_page); the full parse builds an lxml tree
from them and the fast path searches them directly. The byte-level helpers here (start tags,
attributes, element ends, character references) follow the HTML tokenizer and libxml2's tree
builder closely enough that a fragment parsed alone reads like the same element in the page,
and answer None where they cannot be sure.
"""

from __future__ import annotations

import codecs
import html.entities
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from lxml import etree as _etree

# lxml ships no type information (mypy treats it as Any): trees are typed by this alias.
Element: TypeAlias = Any

_SNIFF_BYTES = 4096
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([a-z0-9_.:-]+)")

_SINGLE_BYTE_CODECS = frozenset(
    {f"cp{n}" for n in (*range(1250, 1259), 874, 866, 437, 850)}
    | {f"iso8859-{n}" for n in (*range(2, 12), *range(13, 17))}
    | {"koi8-r", "koi8-u", "mac-roman", "mac-cyrillic"}
)
_MULTI_BYTE_CODECS = frozenset(
    {"shift_jis", "cp932", "euc_jp", "iso2022_jp", "gbk", "gb2312", "gb18030", "big5"}
    | {"big5hkscs", "euc_kr", "cp949"}
)
# As browsers do, a label of Latin-1 or ASCII means windows-1252.
_CODEC_ALIASES = {"iso8859-1": "cp1252", "latin-1": "cp1252", "ascii": "cp1252"}
FALLBACK_CODEC = "cp1252"

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
_VOID_TAGS = frozenset(
    b"area base br col embed hr img input keygen link meta param source track wbr".split()
)
_TAG_NAME_END = b" \t\n\r\f/>"
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
_ASCII_WHITESPACE = " \t\n\f\r"

# Possessive quantifiers: the alternatives never overlap, and failing on an unclosed quote
# must not backtrack through every split of the text before it.
START_TAG = re.compile(rb"<([a-zA-Z][^\s/>]*+)((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>")
_ATTRIBUTE = re.compile(
    rb"([^\t\n\f\r \"'>/=]+)"
    rb"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?:\"([^\"]*)\"|'([^']*)'|([^\t\n\f\r >]+)))?"
)
_ATTRIBUTE_TEXT = re.compile(_ATTRIBUTE.pattern.decode("ascii"))
_TOKEN = re.compile(rb"<!--|<(/?)([a-z][^\s/>]*+)((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>")
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
_HTML5_ENTITIES = html.entities.html5
# What numeric references to 0x80-0x9F mean: windows-1252 characters, where it has them.
_C1_REPLACEMENTS = {
    n: bytes([n]).decode("cp1252")
    for n in range(0x80, 0xA0)
    if n not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


@dataclass(frozen=True, slots=True)
class DecodedPage:
    """Page bytes as UTF-8 (transcoded if the page used another charset) and that charset."""

    raw: bytes
    codec: str


def _codec_for_label(label: str) -> str | None:
    try:
        name = codecs.lookup(label.strip().lower()).name
    except (LookupError, ValueError):
        return None
    name = _CODEC_ALIASES.get(name, name)
    if name in _SINGLE_BYTE_CODECS or name in _MULTI_BYTE_CODECS or name == "cp1252":
        return name
    return None


def _declared_codec(raw: bytes, content_type: str | None) -> str | None:
    if content_type:
        match = _HEADER_CHARSET.search(content_type[:1000])
        if match is not None and (codec := _codec_for_label(match.group(1))) is not None:
            return codec
    meta = _META_CHARSET.search(raw[:_SNIFF_BYTES].lower())
    if meta is not None:
        return _codec_for_label(meta.group(1).decode("ascii"))
    return None


def decode_page(body: bytes, content_type: str | None) -> DecodedPage:
    """Choose the charset (BOM, valid UTF-8, declared, windows-1252) and get UTF-8 bytes."""
    if body.startswith(b"\xef\xbb\xbf"):
        return DecodedPage(body[3:], "utf-8")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _transcoded(body, "utf-16")
    if body.isascii():
        return DecodedPage(body, "utf-8")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        # Valid UTF-8 with non-ASCII bytes is almost never text in another charset, so it wins
        # over a wrong declaration (a page saved as UTF-8 under a stale latin-1 meta tag).
        return DecodedPage(body, "utf-8")
    return _transcoded(body, _declared_codec(body, content_type) or FALLBACK_CODEC)


def _transcoded(body: bytes, codec: str) -> DecodedPage:
    # One charset downstream: tag and attribute searches work on UTF-8 bytes only.
    return DecodedPage(body.decode(codec, "replace").encode("utf-8"), codec)


def decode_fragment(page: DecodedPage, start: int, end: int) -> str:
    """Decode raw[start:end] and apply the input-stream fixes the HTML tokenizer applies."""
    text = page.raw[start:end].decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


def parse_document(utf8: bytes) -> Element | None:
    """Build an lxml tree from UTF-8 bytes; None when libxml2 finds no document at all."""
    # lxml.etree rather than lxml.html: the latter looks up a Python element class for
    # every element touched, which costs more than the parse of a tag block itself.
    parser = _etree.HTMLParser(encoding="utf-8")
    try:
        return _etree.fromstring(utf8, parser=parser)
    except (_etree.XMLSyntaxError, ValueError):
        return None


def element_text(element: Element) -> str:
    """The DOM textContent of an element: its descendant text, comments excluded."""
    if len(element) == 0:
        return str(element.text or "")
    return "".join(element.itertext())


def page_document(page: DecodedPage) -> Element | None:
    """The whole page as an lxml tree."""
    return parse_document(page.raw)


def class_tokens(value: str | None) -> list[str]:
    """Class attribute tokens, split on ASCII whitespace only as the DOM does."""
    if not value:
        return []
    return value.translate(_CLASS_SEPARATORS).split(" ")


_CLASS_SEPARATORS = str.maketrans("\t\n\f\r", "    ")


def _numeric_reference(reference: str) -> str:
    digits = reference[1:].rstrip(";")
    base = 16 if digits[:1] in ("x", "X") else 10
    digits = (digits[1:] if base == 16 else digits).lstrip("0") or "0"
    if len(digits) > 8:
        return "\ufffd"
    number = int(digits, base)
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return "\ufffd"
    # Unlike html.unescape, keep noncharacters and controls: the tree builder keeps them.
    return _C1_REPLACEMENTS.get(number, chr(number))


def _named_reference(match: re.Match[str], in_attribute: bool) -> str:
    reference = match.group(1)
    if reference.endswith(";") and reference in _HTML5_ENTITIES:
        return _HTML5_ENTITIES[reference]
    # Legacy references without ';' decode, except inside attribute values when followed by
    # '=' or an alphanumeric ("?a=1&copy=2" stays as written).
    for length in range(min(len(reference), 6), 1, -1):
        name = reference[:length]
        if name in _HTML5_ENTITIES:
            rest = reference[length:]
            if (
                in_attribute
                and rest
                and (rest[0] == "=" or (rest[0].isascii() and rest[0].isalnum()))
            ):
                return match.group(0)
            return _HTML5_ENTITIES[name] + rest
    return match.group(0)


def _attribute_reference(match: re.Match[str]) -> str:
    if match.group(1).startswith("#"):
        return _numeric_reference(match.group(1))
    return _named_reference(match, True)


def _text_reference(match: re.Match[str]) -> str:
    if match.group(1).startswith("#"):
        return _numeric_reference(match.group(1))
    return _named_reference(match, False)


def unescape_attribute(value: str) -> str:
    """Decode character references the way the HTML tokenizer does inside attribute values."""
    if "&" not in value:
        return value
    return _CHARREF.sub(_attribute_reference, value)


def unescape_text(value: str) -> str:
    """Decode character references the way the HTML tokenizer does in text."""
    if "&" not in value:
        return value
    return _CHARREF.sub(_text_reference, value)


def parse_attributes(page: DecodedPage, start: int, end: int) -> dict[str, str]:
    """Attributes of the start tag whose attribute text spans raw[start:end]; first one wins."""
    attributes: dict[str, str] = {}
    region = decode_fragment(page, start, end)
    for match in _ATTRIBUTE_TEXT.finditer(region):
        name = match.group(1).lower()
        if name not in attributes:
            value = match.group(2) or match.group(3) or match.group(4) or ""
            attributes[name] = unescape_attribute(value)
    return attributes


def attribute_value(attributes: dict[str, str], name: str) -> str | None:
    """An attribute stripped of ASCII whitespace, or None when absent."""
    value = attributes.get(name)
    return value.strip(_ASCII_WHITESPACE) if value is not None else None


def comment_end(low: bytes, start: int) -> int:
    """End offset of the comment opened at `start` ('<!-->' included), or -1 if unclosed."""
    end = low.find(b"-->", start + 2)
    # "--!>" also closes a comment; only look for it before the first "-->".
    bang = low.find(b"--!>", start + 4, end if end != -1 else len(low))
    if bang != -1:
        return bang + 4
    return end + 3 if end != -1 else -1


def find_close_tag(low: bytes, name: bytes, start: int) -> tuple[int, int] | None:
    """(start, end) of the first '</name' end tag at or after `start`, or None."""
    needle = b"</" + name
    position = low.find(needle, start)
    while position != -1:
        after = position + len(needle)
        if after >= len(low) or low[after] in _TAG_NAME_END:
            close = low.find(b">", after)
            return (position, close + 1 if close != -1 else len(low))
        position = low.find(needle, after)
    return None


def is_self_closing(attribute_text: bytes) -> bool:
    """Whether a start tag's attribute text ends in a '/' that is not part of a value."""
    last_end = 0
    for match in _ATTRIBUTE.finditer(attribute_text):
        last_end = match.end()
    return attribute_text[last_end:].strip() == b"/"


def find_element_end(low: bytes, name: bytes, content_start: int) -> int | None:
    """End offset of the element whose start tag ends at `content_start`, or None if unsure.

    Unsure means: never closed, or closed by an end tag for something opened before it (the
    tree builder would have closed the element there, in a way this scan does not model).
    """
    open_names: list[bytes] = [name]
    skip_until = content_start
    for match in _TOKEN.finditer(low, content_start):
        start = match.start()
        if start < skip_until:
            continue
        closing, tag, attribute_text = match.groups()
        if tag is None:
            skip_until = comment_end(low, start)
            if skip_until == -1:
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
                return match.end()
        elif tag in _RAW_TEXT_NAMES:
            closed = find_close_tag(low, tag, match.end())
            if closed is None:
                return None
            skip_until = closed[1]
        elif tag not in _VOID_TAGS and not (
            attribute_text.rstrip().endswith(b"/") and is_self_closing(attribute_text)
        ):
            if len(open_names) >= _MAX_OPEN_ELEMENTS:
                return None  # deeper than libxml2 nests by default; and keeps this linear
            open_names.append(tag)
    return None
