"""Stopping a run cleanly on a signal, alone or as one rank of an mpirun job.

SIGINT (Ctrl-C), SIGTERM (schedulers, `kill`) and SIGUSR1 (what OpenMPI's mpirun forwards to
every rank; it answers SIGINT/SIGTERM itself by killing the ranks a second later, unless its
odls_base_sigkill_timeout gives them longer) set a flag; the loop saves and stops after the
current step.

A terminal's Ctrl-C and mpirun's signals reach the whole process group, which holds Jittor's
kernel-compiler pool: a worker killed mid-compile would leave the step waiting forever, and the
pool's clean-up at exit waiting on a lock the dead worker held. `protect_compiler_pool` moves
the pool's workers into a process group of their own: signals to the group pass them by, while
the pool's own clean-up (a signal to each worker) and a dead parent (their pipe closes) still
end them.
"""

from __future__ import annotations

import atexit
import os
import signal

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1")
                     if hasattr(signal, name))


class StopFlag:
    """Within `with`: a stop signal sets `signum`; a second one raises KeyboardInterrupt."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for s in STOP_SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
                # restart interrupted system calls (a lock wait inside Jittor fails on EINTR)
                signal.siginterrupt(s, False)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)


def _own_process_group() -> None:
    os.setpgid(0, 0)


def protect_compiler_pool() -> None:
    """Start Jittor's compiler-pool workers in their own process group (call after importing
    jittor). A pool already started (by the import's own compilation) is closed while healthy;
    Jittor starts a new one, guarded, at its next compilation."""
    import jittor_utils as ju

    original = ju.pool_initializer
    if getattr(original, "own_process_group", False):
        return

    def initializer():
        _own_process_group()
        original()

    initializer.own_process_group = True
    initializer.original = original
    ju.pool_initializer = initializer
    if ju.pool_size and getattr(ju, "p", None) is not None:
        atexit.unregister(ju.pool_cleanup)  # Jittor registers it again with the new pool
        ju.pool_cleanup()
        ju.pool_size = 0
