"""``eriop watch``: the dispatcher's view of alerts as they are stored."""
