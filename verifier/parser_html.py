"""Page bytes to UTF-8 and trees: charset choice, lxml documents, tag and entity helpers.

Every page is turned into UTF-8 bytes once (decode_page); the full parse builds an lxml tree
from them and the fast path searches them directly. The byte-level helpers here (start tags,
attributes, character references) follow the HTML tokenizer closely enough that a fragment
parsed alone reads like the same element in the page; parser_elements finds where elements
end.
"""

from __future__ import annotations

import codecs
import html.entities
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from lxml import etree as _etree

from verifier.parser_elements import ATTRIBUTE

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

_ASCII_WHITESPACE = " \t\n\f\r"

# Possessive quantifiers: the alternatives never overlap, and failing on an unclosed quote
# must not backtrack through every split of the text before it.
START_TAG = re.compile(rb"<([a-zA-Z][^\s/>]*+)((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>")
_ATTRIBUTE_TEXT = re.compile(ATTRIBUTE.pattern.decode("ascii"))
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
_HTML5_ENTITIES = html.entities.html5
# What templates escape, decoded by plain replacement when a value holds nothing else. They
# never overlap and only "&amp;" yields an '&', so replacing it last decodes in one pass.
_COMMON_REFERENCES = (
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&#x27;", "'"),
    ("&amp;", "&"),
)
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
    # False when the bytes came after a UTF-8 byte order mark, unchecked.
    checked: bool = True


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
        return DecodedPage(body[3:], "utf-8", checked=False)
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
    return decode_text(page.raw[start:end])


def fragment_utf8(page: DecodedPage, start: int, end: int) -> bytes:
    """decode_fragment(page, start, end) as UTF-8 bytes, for a parse of the fragment alone."""
    fragment = page.raw[start:end]
    if page.checked and b"\r" not in fragment and b"\x00" not in fragment:
        return fragment  # valid UTF-8 that the input-stream fixes leave as it is
    return decode_text(fragment).encode("utf-8")


def decode_text(utf8: bytes) -> str:
    """Decode UTF-8 page bytes and apply the input-stream fixes the HTML tokenizer applies."""
    text = utf8.decode("utf-8", "replace")
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


def _common_references(value: str) -> str | None:
    """`value` decoded when its every '&' starts one of _COMMON_REFERENCES, else None."""
    left = value.count("&")
    for reference, character in _COMMON_REFERENCES:
        count = value.count(reference)
        if count:
            value = value.replace(reference, character)
            left -= count
            if not left:
                return value
    return None


def unescape_attribute(value: str) -> str:
    """Decode character references the way the HTML tokenizer does inside attribute values."""
    if "&" not in value:
        return value
    common = _common_references(value)
    return common if common is not None else _CHARREF.sub(_attribute_reference, value)


def unescape_text(value: str) -> str:
    """Decode character references the way the HTML tokenizer does in text."""
    if "&" not in value:
        return value
    common = _common_references(value)
    return common if common is not None else _CHARREF.sub(_text_reference, value)


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
