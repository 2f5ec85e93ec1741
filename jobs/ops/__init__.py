"""Operations endpoints: liveness and readiness (``health``), Prometheus metrics (``metrics``)."""
