"""Per-topic decoders: raw Kafka records in, intents or canonical records out."""
