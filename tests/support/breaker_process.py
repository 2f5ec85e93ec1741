"""A separate process acting on the shared breakers: ``python -m tests.support.breaker_process CMD [CMD ...]``.

Each CMD is ``verb:name[:arg]``; one line of output per command. Used by the shared-state tests.
``wait-until:<epoch>`` sleeps until then, so two processes can race on purpose.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> None:
    import django

    django.setup()
    import pybreaker

    from jobs import breakers
    from jobs.breakers import storage
    from jobs.exceptions import CircuitOpen, DependencyFailure
    from jobs.models import Breaker

    owner = f"proc-{__import__('os').getpid()}"
    for command in argv:
        verb, _, rest = command.partition(":")
        name, _, arg = rest.partition(":")
        if verb == "wait-until":
            time.sleep(max(0.0, float(name) - time.time()))
            print("ok", flush=True)
        elif verb == "fail":
            for _ in range(int(arg or 1)):
                breakers.breaker_record(name=name, outcome=breakers.Outcome.FAILURE, error="from " + owner, actor=owner)
            print("ok", flush=True)
        elif verb == "admit":
            try:
                admission = breakers.breaker_admit(name=name, owner=arg or owner)
                print(f"admitted trial={admission.trial}", flush=True)
            except CircuitOpen as exc:
                print(f"rejected {exc}", flush=True)
        elif verb in ("force-open", "force-closed", "release"):
            service = {"force-open": breakers.breaker_force_open, "force-closed": breakers.breaker_force_closed,
                       "release": breakers.breaker_release}[verb]
            service(name=name, actor=owner, reason=f"{verb} from another process")
            print("ok", flush=True)
        elif verb == "state":
            row = Breaker.objects.get(name=name)
            print(f"{row.state} {row.failures} {row.override or '-'}", flush=True)
        elif verb in ("pybreaker-fail", "pybreaker-call"):
            cb = storage.pybreaker_for(name, owner=owner)
            try:
                with cb.calling():
                    if verb == "pybreaker-fail":
                        raise DependencyFailure("HTTP 503")
                print("called", flush=True)
            except pybreaker.CircuitBreakerError as exc:
                print(f"rejected {exc}", flush=True)
            except DependencyFailure:
                print("failed", flush=True)
        else:
            raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
