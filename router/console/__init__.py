"""The ops console: one static HTML page (`page.html`) that asks for an admin key,
keeps it in the tab's session storage and reads `/admin/status`, `/admin/traffic`
and `/admin/usage` every few seconds. No build step and nothing loaded from
elsewhere: the router is often offline.

Its Content-Security-Policy allows exactly its own inline script and style (by
hash), and requests to the router itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True)
class Page:
    body: bytes
    policy: str   # the Content-Security-Policy header


def page() -> Page:
    body = files(__package__).joinpath("page.html").read_bytes()

    def hashes(tag: bytes) -> str:
        found = re.findall(rb"<" + tag + rb">(.*?)</" + tag + rb">", body, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in found)

    policy = (f"default-src 'none'; script-src {hashes(b'script')}; style-src {hashes(b'style')}; "
              "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return Page(body, policy)
