"""ECGAN / SPADE networks and losses in Jittor.

Importing this package imports jittor through `pipeline.jt_env.setup_jittor` (device "auto")
unless jittor is already imported, so the environment Jittor needs is always set first.
"""

import sys

if "jittor" not in sys.modules:
    from ..jt_env import setup_jittor

    setup_jittor("auto")
