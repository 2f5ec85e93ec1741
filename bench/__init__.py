"""Resilient's benchmark harness: ``python -m bench [NAME...] [--quick]`` (``make bench``).

Every benchmark talks only to 127.0.0.1, starts its own processes and stops only those (by PID),
uses its own scratch SQLite files under ``var/bench/`` and its own PostgreSQL database, and
reports its numbers beside a baseline measured in the same run, because the machine is shared.
"""
