"""Write docs/errors.md from the rows of tests/test_errors.py.

Run from anywhere after changing a row::

    .venv/bin/python tests/make_errors_doc.py

`tests/test_errors.py::test_doc_lists_every_row` renders the page in memory
with `render` and fails when the file differs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "errors.md"

INTRO = """\
# Error reference

Every public entry point of keras-lpc checks its arguments before doing any
work, and its error names the argument, says what was expected and shows
the value received:

    `<argument>` must be <what is expected>. Received: <argument>=<value>

Wrong types raise `TypeError`, wrong values `ValueError`. The table lists,
for each part of the API, bad inputs and the exact error each one raises.
Every row is a test (`tests/test_errors.py`), and this page is generated
from the same rows by `tests/make_errors_doc.py`, so it cannot drift from
the code.

The calls use these names:

```python
{setup}
```

A command line (`keras-lpc ...`) exits with status 2 and prints its usage,
then the message shown, on stderr.
"""


def _code(text: str) -> str:
    """``text`` as an inline code span that may itself contain backticks."""
    if "|" in text or "\n" in text:
        raise ValueError(f"`text` must fit in one table cell. Received: text={text!r}")
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


def render(rows: Iterable[Any], setup: Mapping[str, str]) -> str:
    """The Markdown page: an introduction, then one table per area, in row order.

    Args:
        rows: `Row` tuples ``(area, call, error, message)``.
        setup: code blocks defining the names the calls use.

    Returns:
        The page text, ending with a newline.
    """
    parts = [INTRO.format(setup="\n\n".join(setup.values()))]
    area = None
    for row in rows:
        if row.area != area:
            area = row.area
            parts.append(f"\n## {area}\n\n| Call | Error | Message |\n|---|---|---|\n")
        error = "exit status 2" if row.error is SystemExit else f"`{row.error.__name__}`"
        parts.append(f"| {_code(row.call)} | {error} | {_code(row.message)} |\n")
    return "".join(parts)


def _rows_and_setup() -> tuple[Any, Mapping[str, str]]:
    spec = importlib.util.spec_from_file_location("test_errors", HERE / "test_errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ROWS, module.SETUP


def main() -> None:
    """Regenerate docs/errors.md."""
    rows, setup = _rows_and_setup()
    DOC.write_text(render(rows, setup), encoding="utf-8")
    print(f"wrote {DOC} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
