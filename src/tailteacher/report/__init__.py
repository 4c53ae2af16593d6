"""The HTML report of a run or an ablation folder: one self-contained page with the paper's figures.

write_html_report(folder)      report.html in ``folder`` (a `tailteacher run` or `ablate` folder)
markdown.write_report(…)      report.md and report.json of a run, and the tables the CLI prints
"""

from __future__ import annotations

from pathlib import Path

from .html import REPORT_HTML


def write_html_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``folder`` (a finished `tailteacher run` folder, or the folder of
    `tailteacher ablate`) to ``out`` (default ``folder/report.html``) and return its path.

    Raises:
        InputError: ``folder`` is neither.
    """
    from .html import write_page

    root = Path(folder)
    target = Path(out) if out is not None else root / REPORT_HTML
    if (root / "ablation.json").is_file():
        from .ablation import ablation_context

        return write_page(ablation_context(root), target)
    from .run_data import load_run
    from .sections import run_context

    return write_page(run_context(load_run(root)), target)


__all__ = ["REPORT_HTML", "write_html_report"]
