"""Signals: the ``signal`` module's numbers and functions, without its enums.

``import signal`` costs about 2 ms on every command: it wraps ``_signal``, the C module that does
the work, in three IntEnum classes, which imports ``enum`` (and through it ``functools`` and
``operator``). rootlet needs the numbers and the functions, plus signal names for a few messages;
so it uses the C module, and keeps its own name table here.

All of rootlet goes through this module, not ``signal``: the two differ only in types (a plain
``int`` here, where ``signal`` returns enum members, which compare equal), but a handler from
``getsignal`` is only identical (``is``) to the SIG_DFL/SIG_IGN of the module that returned it.
"""

from __future__ import annotations

try:
    from _signal import *  # noqa: F403 - the public names of the C module, as ``signal`` has them
    import _signal as _impl
except ImportError:  # an interpreter without the C module under that name
    from signal import *  # noqa: F403
    import signal as _impl


def _numbers() -> dict[str, int]:
    # The names ``signal.Signals`` has: SIG* but not SIG_* (SIG_DFL, SIG_BLOCK, …), aliases included.
    return {name: int(getattr(_impl, name)) for name in dir(_impl)
            if name.isupper() and name.startswith("SIG") and not name.startswith("SIG_")}


#: Signal name → number, aliases (SIGIOT, SIGCLD, SIGPOLL) included.
NUMBERS = _numbers()
#: Number → name; where names share a number, the first in alphabetical order (SIGABRT, not SIGIOT),
#: which is the name ``signal.Signals(number).name`` gives.
NAMES = {number: name for name, number in sorted(NUMBERS.items(), reverse=True)}


def signal_name(number: int) -> str:
    """``SIGTERM`` for 15; the number as text when no signal has it (what inspect and errors show)."""
    return NAMES.get(number, str(number))
