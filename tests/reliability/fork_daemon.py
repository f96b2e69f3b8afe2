"""A warm launcher for the crash harness: imports okrsync once, forks a fresh daemon per start.

The harness kills the daemon more than a hundred times; a cold ``python -m okrsync run`` spends
about a second and a half importing before it does anything worth killing. This process imports
the CLI, the daemon, the HTTP API and every connector plugin once, then forks a child per start.
Each child runs exactly what ``python -m okrsync`` runs (``okrsync.cli.main``) with this module's
arguments, in a process of its own that reads settings, config and store only after the fork, so
a SIGKILL of the child is a real crash of a real daemon process.

Protocol on stdin/stdout, one line per message::

    start LOGFILE  ->  pid N     fork a daemon; its stdout and stderr go to LOGFILE
    reap N         ->  exit S    wait for that daemon; S is its exit code, or -SIGNAL
    (end of input)               exit
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from typing import NoReturn


def _child(log: str, args: list[str]) -> NoReturn:
    code = 1
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        import okrsync.cli

        sys.argv = ["okrsync", *args]
        try:
            okrsync.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    from okrsync.plugins import load_registry

    # what `okrsync run` imports only after parsing its arguments (the HTTP side may be absent)
    for module in ("okrsync.engine.daemon", "okrsync.api.app", "okrsync.api.server"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    load_registry()  # imports every connector plugin
    args = sys.argv[1:]
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        if command == "start":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(rest, args)
            print(f"pid {pid}", flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(rest), 0)
            print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)
        else:
            print(f"error unknown command {command!r}", flush=True)


if __name__ == "__main__":
    main()
