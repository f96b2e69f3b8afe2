"""HTTP: health, metrics, the JSON API, the dashboard and inbound webhooks."""
