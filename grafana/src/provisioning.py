"""The Prometheus config and Grafana provisioning files that wire the supervisor in.

Plain data in the formats of Prometheus (``prometheus.yml``) and of Grafana's
provisioning (datasources, dashboard providers): they hold addresses and
paths an operator may have to edit, so they are kept apart from the
dashboard and the alert rules.
"""

from __future__ import annotations

from typing import Any

from alert_rules import FOLDER, JOB

__all__ = [
    "ALERTMANAGER_TARGET",
    "DASHBOARDS_PATH",
    "METRICS_TARGET",
    "PROMETHEUS_URL",
    "SCRAPE_INTERVAL",
    "dashboard_provider",
    "datasource",
    "prometheus_config",
]

#: The daemon's default metrics address (supervisor.metrics.DEFAULT_PORT).
METRICS_TARGET = "127.0.0.1:9108"
ALERTMANAGER_TARGET = "127.0.0.1:9093"
PROMETHEUS_URL = "http://127.0.0.1:9090"
SCRAPE_INTERVAL = "15s"
#: Where the dashboard provider expects the dashboards folder to be copied.
DASHBOARDS_PATH = "/var/lib/grafana/dashboards/risk-supervisor"


def prometheus_config(
    target: str = METRICS_TARGET,
    scrape_interval: str = SCRAPE_INTERVAL,
    evaluation_interval: str | None = None,
    rule_files: tuple[str, ...] = ("alerts.yml",),
    alertmanager: str | None = ALERTMANAGER_TARGET,
) -> dict[str, Any]:
    """A Prometheus config that scrapes one supervisor and evaluates its alert rules.

    The committed example uses the defaults; a test that runs a real
    Prometheus passes its own target, short intervals and an absolute rule
    file path (relative paths resolve against the config file's directory).
    """
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval or scrape_interval,
        },
        "rule_files": list(rule_files),
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config["scrape_configs"] = [
        {
            "job_name": JOB,
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [target]}],
        }
    ]
    return config


def datasource(uid: str) -> dict[str, Any]:
    """The Prometheus datasource the Grafana alert rules query, by its ``uid``.

    ``timeInterval`` is the scrape interval, so ``$__rate_interval`` is right.
    """
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus (risk supervisor)",
                "type": "prometheus",
                "uid": uid,
                "access": "proxy",
                "url": PROMETHEUS_URL,
                "isDefault": False,
                "editable": True,
                "jsonData": {"httpMethod": "POST", "timeInterval": SCRAPE_INTERVAL},
            }
        ],
    }


def dashboard_provider() -> dict[str, Any]:
    """A file provider that loads the dashboards copied into :data:`DASHBOARDS_PATH`."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "risk-supervisor",
                "orgId": 1,
                "folder": FOLDER,
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": DASHBOARDS_PATH, "foldersFromFilesStructure": False},
            }
        ],
    }
