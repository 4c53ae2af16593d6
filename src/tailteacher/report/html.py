"""Render the report's context with the packaged Jinja2 template into one self-contained file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import atomic_write_bytes

TEMPLATE = "report.html.j2"
#: The page's file name in the run (or ablation) folder.
REPORT_HTML = "report.html"


def render(context: Mapping[str, Any]) -> str:
    """The page's HTML (autoescaped; images are data URIs already in ``context``)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("tailteacher.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE).render(**context)


def write_page(context: Mapping[str, Any], path: Path) -> Path:
    """Render ``context`` and write it atomically to ``path``."""
    atomic_write_bytes(path, render(context).encode("utf-8"))
    return path
