"""``python -m factory.docgen [--check]``: regenerate (or check) every generated page."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from factory.docgen.yamldoc import COMMAND, DOCS, ROOT

log = logging.getLogger("factory.docgen")


def generated() -> dict[Path, str]:
    """Every generated page's current text re-rendered: ``{path: text}``."""
    from factory.docgen import configuration, models
    from factory.features import describe as features

    pages = {p: p.read_text() for p in configuration.pages()}
    out = configuration.regenerate(pages)
    out[models.PAGE] = models.regenerate(models.PAGE.read_text())
    out[DOCS / "features.md"] = features.markdown()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m factory.docgen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="list stale pages, exit 1 if any")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stale = {p: text for p, text in generated().items() if p.read_text() != text}
    for path, text in stale.items():
        if args.check:
            log.info("stale: %s (regenerate: %s)", path.relative_to(ROOT), COMMAND)
        else:
            path.write_text(text)
            log.info("regenerated %s", path.relative_to(ROOT))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
