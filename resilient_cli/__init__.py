"""``resilient``: a command-line client of Resilient's REST API (``RESILIENT_URL``, ``RESILIENT_TOKEN``).

Parts: ``api`` (the HTTP client and its errors), ``load`` (JSON Lines sent in batches, resumable),
``render`` (human output), ``main`` (the commands). It imports nothing of the server: it speaks HTTP only.
"""
