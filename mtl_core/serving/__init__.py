"""Serving: the Predictor (sentences in, records out), the one input reader, output records, the maps and
similarity views' data, and the Service the app and the API call."""
