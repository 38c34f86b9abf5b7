"""What mlstack tells the platform's own tools: monitoring checks as Prometheus metrics
(`checks.py`), the shipped alerting rules and dashboards, alerts routed through Alertmanager
or sent with Apprise once per breach (`alerts.py`), and what each endpoint costs
(`cost.py`). prometheus_client and apprise (the `observability` extra) are imported only
when used."""
