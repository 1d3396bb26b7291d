"""A faithful local fake of Binance's spot kline streams and REST klines, for tests and the
offline demo. See `server.FakeBinance`; `python -m fakes.binance --help` runs it standalone."""

from .exchange import Clock, stream_name
from .series import SeriesOptions
from .server import FakeBinance, FakeStats

__all__ = ["Clock", "FakeBinance", "FakeStats", "SeriesOptions", "stream_name"]
