"""The `model` decision backend (docs/model-backend.md): what a model is shown (candles, indicators,
the signal's history), what it must answer (a strict schema and checks in code), and the client that
asks an OpenAI-compatible endpoint. Pure modules, except `client.py` (one HTTP call)."""
