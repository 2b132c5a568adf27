"""The parts of scripts/bench (its one entry point): measure.py measures and prints, the other
modules hold the cases of issue 16 as mix-ins of scripts/bench's Bench class."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
MAKE_IMAGE = REPO / "scripts" / "make-image"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rootlet-bench"

# One target per figure: a ratio rootlet/podman of medians unless said otherwise. Issue 16's
# ("speed, round two") where it set one, the earlier issues' otherwise.
TARGETS = {
    # issue 16
    "run": 0.15, "exec": 0.15, "run -d": 0.4, "stop": 0.4, "rm -f": 0.4, "pull": 0.3,
    "pull20": 0.5, "concurrent": 0.5,
    "--version": 0.5, "ps -a": 0.5, "images": 0.5, "inspect IMAGE": 0.5, "inspect CTR": 0.5, "logs CTR": 0.5,
    # earlier issues
    "api-run": 0.5, "api-ps": 0.5, "netrun": 0.4, "commit": 0.6, "push": 0.6, "save": 0.6, "load": 0.6,
    "build": 0.6, "rebuild": 0.3,
}
RSS_TARGET_MB = 80       # peak RSS of rootlet where a case measures it ...
PULL_RSS_TARGET_MB = 40  # ... except pulls (issue 16): the bench image, and the 1 GB layer
PS_500_TARGET_S = 0.3    # `ps -a` with 500 containers, absolute
