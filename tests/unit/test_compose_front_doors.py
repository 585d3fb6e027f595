"""docker-compose.yml runs the front doors: Mosquitto, the MQTT bridge and the CAP poller."""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.test_compose import (
    PROMETHEUS_CONFIG,
    REPO,
    _command,
    _depends_on,
    _env,
    _healthcheck_test,
    _ports,
    _volumes,
    compose,
    services,
)

__all__ = ["compose", "services"]


def _secrets(service: dict[str, Any]) -> dict[str, str]:
    """Secret name -> file name under /run/secrets."""
    out = {}
    for item in service.get("secrets", []):
        if isinstance(item, str):
            out[item] = item
        else:
            out[item["source"]] = item.get("target", item["source"])
    return out


def test_mosquitto_requires_a_password_and_keeps_sessions(
    services: dict[str, dict[str, Any]],
) -> None:
    mqtt = services["mosquitto"]
    assert mqtt["image"].startswith("eclipse-mosquitto:2")
    assert 1883 in {container for _, container in _ports(mqtt)}
    assert "mqtt_password" in _secrets(mqtt)  # a file under /run/secrets, not the environment
    mounts = {target: source for _, source, target in _volumes(mqtt)}
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto/mosquitto.conf"
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert "persistence true" in conf
    assert "mosquitto_sub" in _healthcheck_test(mqtt)


def test_bridge_reads_mosquitto_and_writes_kafka(services: dict[str, dict[str, Any]]) -> None:
    bridge = services["mqtt-bridge"]
    assert _command(bridge) == ["mqtt-bridge"]
    env = _env(bridge)
    assert env["ERIOP_MQTT__HOST"] == "mosquitto"
    assert env["ERIOP_MQTT__CLIENT_ID"]  # a stable id: the broker keeps the session under it
    assert "ERIOP_MQTT__PASSWORD" not in env
    assert _secrets(bridge)["mqtt_password"] == "eriop_mqtt__password"  # same secret as mosquitto
    assert env["ERIOP_KAFKA_BOOTSTRAP"].startswith("kafka:")
    assert _depends_on(bridge) == {"kafka": "service_healthy", "mosquitto": "service_healthy"}
    assert "9109" in _healthcheck_test(bridge)


def test_cap_poller_has_its_database_and_sources(services: dict[str, dict[str, Any]]) -> None:
    poller = services["cap-poller"]
    assert _command(poller) == ["cap-poller"]
    env = _env(poller)
    assert env["ERIOP_CAP_FEEDS__SOURCES"].startswith("${ERIOP_CAP_FEEDS__SOURCES")
    assert _secrets(poller)[next(iter(_secrets(poller)))] == "eriop_database_url"
    assert "service_completed_successfully" in set(_depends_on(poller).values())
    assert "9110" in _healthcheck_test(poller)


def test_prometheus_scrapes_the_front_doors() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"mqtt-bridge:9109", "cap-poller:9110"} <= targets
