"""CDKTF constructs for the safe-release stack; one concern per file, composed in `stack.py`.

AWS provider classes are imported inside `modules/` and nowhere else, from their submodules
only: the provider's top-level package costs seconds and gigabytes to import, and keeping the
imports in one place makes a move to the CDK Terrain fork a rename.
"""

import os
from pathlib import Path

PROJECT_NODE = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "node"


def use_project_node() -> None:
    """Run jsii on the project's Node 22 (npm package `node`, installed by scripts/setup) unless
    the caller chose one with JSII_NODE: on the machine's Node 20, jsii prints an end-of-life
    banner on every synth. Call it before the first cdktf import, which starts jsii."""
    if PROJECT_NODE.exists():
        os.environ.setdefault("JSII_NODE", str(PROJECT_NODE))
        # cdktf's bundled dependencies trip a Node 22 deprecation warning (util.isArray) that
        # says nothing about this project.
        os.environ.setdefault("NODE_OPTIONS", "--no-deprecation")
