"""Redis outputs: live state, pub/sub channels and the alert stream."""
