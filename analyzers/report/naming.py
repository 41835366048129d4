"""File names for reports: a model's name made safe, so a report always lands inside ``--out``."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_LENGTH = 100  # well under the 255 bytes file systems allow, with room for the hash and suffix


def report_file_name(model: str) -> str:
    """``<model>.html`` when the name is a plain file name; otherwise the name with every character
    outside letters, digits, ``.``, ``_`` and ``-`` (path separators among them) replaced, no leading
    dot, dash or underscore, at most 100 characters, and a short hash of the real name so that two
    models never share a file."""
    safe = _UNSAFE.sub("_", model).lstrip("._-")[:_MAX_LENGTH]
    if safe and safe == model:
        return f"{model}.html"
    digest = hashlib.blake2b(model.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{safe or 'model'}-{digest}.html"
