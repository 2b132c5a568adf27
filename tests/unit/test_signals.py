"""runtime/linux/signals.py: the ``signal`` module's numbers and names, without its enums."""

import signal
import subprocess
import sys

from rootlet.runtime.linux import signals


def test_every_signal_name_has_the_number_signal_gives_it() -> None:
    expected = {name: int(member) for name, member in signal.Signals.__members__.items()}
    assert signals.NUMBERS == expected


def test_each_number_is_named_as_signal_names_it() -> None:
    for number in range(0, 70):
        try:
            expected = signal.Signals(number).name
        except ValueError:
            expected = str(number)
        assert signals.signal_name(number) == expected, number
    assert signals.signal_name(6) == "SIGABRT" and signals.signal_name(17) == "SIGCHLD"  # not SIGIOT, SIGCLD


def test_functions_and_handlers_are_the_c_module_ones() -> None:
    assert signals.SIGKILL == 9 and signals.SIG_SETMASK == signal.SIG_SETMASK
    assert signals.getsignal(signals.SIGWINCH) is signals.SIG_DFL
    previous = signals.signal(signals.SIGUSR2, signals.SIG_IGN)
    try:
        assert signals.getsignal(signals.SIGUSR2) is signals.SIG_IGN
    finally:
        signals.signal(signals.SIGUSR2, previous)


def test_importing_it_does_not_import_enum() -> None:
    code = ("import sys; ns = {}; exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'), ns); "
            "ns['signal_name'](15); print(sorted(m for m in ('enum', 'signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, signals.__file__],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
