"""PostgreSQL outputs: alerts, time-series rows and the consumed offsets stored with them."""
