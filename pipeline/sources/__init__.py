"""Where records come in: the Kafka batch consumer and the devices' front doors."""
