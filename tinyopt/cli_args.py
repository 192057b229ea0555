"""What the `tinyopt` subcommands share for a user mistake: one line naming the fix, exit status 2.

`OneLineParser` raises `UsageError` instead of printing argparse's usage block; `whole` and
`positive_float` are argument types with messages that say what was expected."""
from __future__ import annotations

import argparse
import math
import sys

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake on the command line (the message names the fix)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (the usage block is available with --help)."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def whole(minimum: int):
    """An argument type: a whole number >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value
    parse.__name__ = f"whole number >= {minimum}"
    return parse


def positive_float(text: str) -> float:
    """An argument type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def usage_error(prog: str, message) -> int:
    """Print `prog: error: message` on one line to stderr; returns EXIT_USAGE."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_USAGE
