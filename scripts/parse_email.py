#!/usr/bin/env python3
"""Parses a raw RFC 5322 message with Python's `email` package and prints JSON.

Usage: parse_email.py MESSAGE.eml

Output:
    {
      "headers": [[name, decoded value], ...],      # in order, RFC 2047 decoded
      "raw_headers": [[name, raw value], ...],      # as on the wire (unfolded)
      "content_type": "multipart/alternative",
      "is_multipart": true,
      "parts": [{"content_type", "charset", "transfer_encoding", "content",
                 "disposition", "filename", "content_base64"}, ...],
      "defects": ["..."],                           # parser defects anywhere
      "raw_max_line_octets": 76,                    # longest line, excluding CRLF
      "raw_bare_lf": false,                         # an LF not preceded by CR
      "raw_bare_cr": false,                         # a CR not followed by LF
      "raw_8bit": false                             # any byte >= 0x80
    }

The content of each text part is decoded (transfer encoding and charset) and has
its line endings normalised to "\n". Every part also gives its Content-Disposition
("attachment", "inline" or null), its filename as the package reads it (RFC 2231 and
2047 decoded) and its decoded bytes in base64 ("content_base64"), for binary files.
"""

import base64
import json
import sys
from email import policy
from email.parser import BytesParser


def analyse(raw: bytes):
    longest = 0
    current = 0
    bare_lf = bare_cr = False
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b == 0x0D:
            if i + 1 < n and raw[i + 1] == 0x0A:
                longest = max(longest, current)
                current = 0
                i += 2
                continue
            bare_cr = True
        elif b == 0x0A:
            bare_lf = True
            longest = max(longest, current)
            current = 0
            i += 1
            continue
        current += 1
        i += 1
    longest = max(longest, current)
    return longest, bare_lf, bare_cr


def main() -> None:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: parse_email.py MESSAGE.eml\n")
        sys.exit(2)
    raw = open(sys.argv[1], "rb").read()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    raw_message = BytesParser(policy=policy.compat32).parsebytes(raw)

    defects = [repr(d) for d in message.defects]
    parts = []
    for part in message.walk():
        defects.extend(repr(d) for d in part.defects)
        if part.is_multipart():
            continue
        content = part.get_content()
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        parts.append({
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "transfer_encoding": part.get("Content-Transfer-Encoding"),
            "content": content.replace("\r\n", "\n"),
            "disposition": part.get_content_disposition(),
            "filename": part.get_filename(),
            "content_base64": base64.b64encode(part.get_payload(decode=True) or b"").decode("ascii"),
        })

    longest, bare_lf, bare_cr = analyse(raw)
    result = {
        "headers": [[name, str(value)] for name, value in message.items()],
        "raw_headers": [[name, str(value).replace("\r\n", "").replace("\n", "")]
                        for name, value in raw_message.items()],
        "content_type": message.get_content_type(),
        "is_multipart": message.is_multipart(),
        "parts": parts,
        "defects": defects,
        "raw_max_line_octets": longest,
        "raw_bare_lf": bare_lf,
        "raw_bare_cr": bare_cr,
        "raw_8bit": any(b >= 0x80 for b in raw),
    }
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
