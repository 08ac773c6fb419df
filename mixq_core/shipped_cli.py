"""``python -m mixq_core.shipped_cli``: fetch, check or list MixQ's shipped data (see :mod:`mixq_core.shipped`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MixQError
from .shipped import (
    MANIFEST,
    checkout,
    data_home,
    fetch,
    how_to_fetch,
    manifest_mismatch,
    manifest_text,
    problems,
    read_manifest,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixq_core.shipped_cli",
                                     description="MixQ's shipped data: the mini models and the published records")
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("fetch", help="copy the shipped data from a clone (or git URL), checking sha256")
    get.add_argument("--from", dest="source", required=True, help="a clone of the repository, or its git URL")
    get.add_argument("--branch", help="the branch to clone when --from is a URL")
    get.add_argument("--home", help="where to put them (default: $MIXQ_HOME or ~/.local/share/mixq)")
    check = commands.add_parser("verify", help="check the shipped data where this MixQ reads them")
    check.add_argument("--home", help="the folder to check (default: the checkout, else the data home)")
    listing = commands.add_parser("manifest", help="in a checkout: compare (or --write) mixq_core/shipped.sha256")
    listing.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            home = fetch(args.source, args.home, args.branch)
            print(f"{len(read_manifest())} shipped files, sha256 checked, in {home}")
        elif args.command == "verify":
            folder = Path(args.home) if args.home else checkout() or data_home()
            found = problems(folder)
            if found:
                remedy = "restore them with `git checkout -- assets results`" if checkout() else how_to_fetch()
                raise manifest_mismatch(folder, found, remedy)
            print(f"{len(read_manifest())} shipped files, sha256 checked, in {folder}")
        else:
            root = checkout()
            if root is None:
                raise MixQError("`manifest` runs in a checkout of the repository, where git tracks the shipped files")
            text = manifest_text(root)
            if args.write:
                MANIFEST.write_text(text)
            elif text != MANIFEST.read_text():
                print(f"{MANIFEST} is out of date: run `python -m mixq_core.shipped_cli manifest --write`")
                return 1
    except MixQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
