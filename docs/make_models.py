"""Write the parameter tables of ``docs/models.md`` from the model families themselves.

Each family's parameters, defaults and allowed ranges come from its ``ModelSpec`` (the values
``--set`` checks), so the page cannot drift from the code. Only the text between the
``<!-- params:begin -->`` and ``<!-- params:end -->`` markers is rewritten.

    python docs/make_models.py            # rewrite the tables in docs/models.md
    python docs/make_models.py --check    # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "models.md"
BEGIN, END = "<!-- params:begin -->", "<!-- params:end -->"


def tables() -> str:
    """One Markdown table per family: parameter, default, allowed values."""
    from usbench.models import MODELS, get_model

    parts = []
    for name in MODELS:
        spec = get_model(name)
        rows = [f"| `{key}` | `{default}` | {allowed} |"
                for key, default, allowed in spec.describe_params()]
        parts.append("\n".join([f"`{name}`:", "", "| parameter | default | allowed |",
                                "|---|---|---|", *rows]))
    return "\n\n".join(parts)


def render(page: str) -> str:
    """`page` with the text between the markers replaced by today's tables."""
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{tables()}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/models.md is out of date; write nothing")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    page = PAGE.read_text(encoding="utf-8")
    new = render(page)
    if args.check:
        if new != page:
            sys.exit("docs/models.md is out of date: run python docs/make_models.py")
        return
    PAGE.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
