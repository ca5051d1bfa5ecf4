"""Channel-supplied text made safe to store and to use in a key (DynamoDB keys, attribute values)."""

from __future__ import annotations

import hashlib


def storable_text(text: str, max_chars: int) -> str:
    """Channel-supplied text made safe to store, and as a key: UTF-8-encodable and at most `max_chars`.

    A lone surrogate (JSON can spell one, `"\\ud800"`) cannot be UTF-8 encoded, so boto3 could not
    send it: it is written as its escape, `\\ud800`. A longer text keeps its start and ends with
    `…#` and 16 hex digits of its SHA-256, so two long texts that share a start stay apart.
    (`max_chars` >= 40; 4 bytes a character at most: 200 characters fit a 1,024-byte sort key.)
    """
    original = text
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode()
    if len(text) <= max_chars:
        return text
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[:max_chars - 18]}…#{digest}"
