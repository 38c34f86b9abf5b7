"""Who is acting: `MLSTACK_USER`, else the operating-system user."""

from __future__ import annotations

import getpass
import os


def current_actor() -> str:
    explicit = os.environ.get("MLSTACK_USER", "").strip()
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"
