"""rootlet's version: the one place it is written.

pyproject.toml reads it (``dynamic = ["version"]``), and ``rootlet --version`` and ``info`` print
it without ``importlib.metadata``, whose import alone costs ~20 ms.
"""

VERSION = "0.1.0"
