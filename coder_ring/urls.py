"""One helper for every URL coder_ring prints or logs: passwords never show."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# scheme (with or without ':' and slashes), user, password up to the last '@', rest.
_CREDENTIALS = re.compile(
    r"^(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*:?/*)?(?P<user>[^:@/]*):(?P<secret>.*)@(?P<rest>[^@]*)$",
    re.DOTALL,
)
# A password passed as a query parameter (libpq and redis-py both read ``?password=``).
_QUERY_SECRET = re.compile(r"([?&;](?:password|passwd|pwd)=)[^&#;]*", re.IGNORECASE)
# Between two URLs of a list (kombu's and Celery's ``sentinel://h1;sentinel://h2``).
_NEXT_URL = re.compile(r";(?=[A-Za-z][A-Za-z0-9+.\-]*://)")


def redact_url(url: object) -> str:
    """``url`` as text with its password (and a ``password=`` query parameter) replaced
    by ``***``.

    Works on malformed URLs too (``postgresql//user:pw@host``, a bad port): when the
    text does not parse, anything between the user's ``:`` and the last ``@`` is masked.
    A list of URLs separated by ``;`` (Sentinel's) is redacted URL by URL.
    """
    urls = _NEXT_URL.split(str(url))
    if len(urls) > 1:
        return ";".join(redact_url(one) for one in urls)
    text = _QUERY_SECRET.sub(rf"\g<1>{MASK}", str(url))
    try:
        parts = urlsplit(text)
        if parts.scheme and parts.netloc and "@" in parts.netloc:
            userinfo, _, hostport = parts.netloc.rpartition("@")
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:{MASK}@{hostport}"
                return urlunsplit(parts._replace(netloc=netloc))
            return text
    except ValueError:
        pass
    match = _CREDENTIALS.match(text)
    if match is None:
        return text
    return f"{match['pre'] or ''}{match['user']}:{MASK}@{match['rest']}"
