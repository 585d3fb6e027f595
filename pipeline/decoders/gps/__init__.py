"""GPS fixes: JSON and NMEA sentences."""
