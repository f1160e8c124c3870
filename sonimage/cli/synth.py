"""`sonimage synth`: placeholder, filled in by its owner."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `synth` sub-command."""
    p = sub.add_parser("synth", help="(not yet implemented)")
    p.set_defaults(func=lambda args: 1)
