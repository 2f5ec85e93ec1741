"""What the tests share: a real HTTP downstream, child processes on the test database, and
readers of the dashboard socket and the channel layer.

- ``downstream``: the HTTP stub on 127.0.0.1 (per-path behaviour, fail/hang/heal, a control API).
- ``processes``: the one child-process environment; workers, ``serve``, ``manage.py`` and snippets.
- ``breaker_process``, ``claim_process``: ``python -m`` entry points that race the test process.
- ``dashboard_socket``: opening ``/ws/dashboard/`` against the ASGI application and reading replies.
- ``channel_layer``: counting what arrives on a channel.
- ``hashers``: a cheap PBKDF2 for the test settings.
"""
