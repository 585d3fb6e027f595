"""Steps between decoding and storing: enrich, geofence, plausibility, resolve, Axis edges."""
