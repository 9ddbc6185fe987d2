"""What an operator sees of the service: traces (``tracing``), Prometheus metrics (``metrics``, ``labels``) and one
log line per request and per batch item (``logs``), all fed by the account of one extraction (``report``)."""
