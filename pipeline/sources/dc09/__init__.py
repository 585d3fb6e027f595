"""The SIA DC-09 receiver: the front door for alarm panels (``eriop dc09-receiver``).

Panels send frames over TCP or UDP; each frame is answered once, ``ACK`` only
after Kafka has acknowledged its envelope on ``alerts.alarm``
(docs/formats.md 1.1 b and 1.13).

- :mod:`.framing`: LF ... CR frames out of a TCP byte stream.
- :mod:`.keys`: the accounts' AES keys, reloadable without a restart.
- :mod:`.verdict`: what a frame deserves (pure).
- :mod:`.publisher`: the Kafka producer (``acks=all``).
- :mod:`.receiver`: one frame in, one reply (or none) out.
- :mod:`.server`: the asyncio TCP and UDP listeners and their caps.
- :mod:`.service`: composition, signals, the status server.
"""
