"""Axis devices for the simulator: events published to an MQTT broker with QoS 1,
under ``axis/<SERIAL>/event/...`` as the devices' MQTT event publication does."""

from __future__ import annotations

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class MqttDevices:
    """One paho-mqtt connection publishing for all simulated devices."""

    def __init__(self, target: str, client_id: str = "eriop-simulated-axis") -> None:
        host, _, port = target.rpartition(":")
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.connect(host or "127.0.0.1", int(port))
        self.client.loop_start()
        self.published = 0

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queue one event; paho sends it and retries it until the broker's PUBACK."""
        self.client.publish(topic, payload, qos=1, retain=retain)
        self.published += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
