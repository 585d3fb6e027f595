"""CAP 1.2 alert documents."""
