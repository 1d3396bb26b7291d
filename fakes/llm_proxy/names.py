"""The fake llm-proxy's fixed names: where it listens and how its answers are labelled (so nobody
mistakes them for a model's)."""

from __future__ import annotations

DEFAULT_PATH = "/functions/v1/llm-proxy"
DEFAULT_API_KEY = "fake-llm-proxy-key"
FAKE_MODEL_NAME = "fake-llm-proxy"
REASONING_PREFIX = "[fake llm-proxy] "
DEFAULT_TOKENS = 1100
