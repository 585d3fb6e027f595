"""Alarm receiver messages: SIA DC-09 framing, SIA DCS and Contact ID data, alarm codes."""
