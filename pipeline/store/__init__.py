"""The database itself: migrations, retention, durability checks."""
