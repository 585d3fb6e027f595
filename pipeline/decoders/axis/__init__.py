"""Axis device events as the MQTT bridge forwards them."""
