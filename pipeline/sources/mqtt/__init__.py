"""The MQTT front door for Axis devices (``eriop mqtt-bridge``).

Each message on the subscribed topics is produced unchanged to ``alerts.axis``
(key = MQTT topic, header ``mqtt-retain`` for retained deliveries) and
acknowledged to the broker only after Kafka acknowledged it (docs/formats.md 2).
``connection`` holds the MQTT client, ``bridge`` the forwarding and its
acknowledgement order, ``service`` the reconnecting life of the process.
"""
