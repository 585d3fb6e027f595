"""``eriop decode``: what a message would become, without Kafka or a database."""
