"""Operations: the access log, Prometheus metrics and the admin endpoints."""
