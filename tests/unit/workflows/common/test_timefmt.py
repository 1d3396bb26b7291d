from datetime import UTC, datetime

from workflows.common.timefmt import MAX_MS, datetime_to_ms, iso_text, ms_to_datetime, utc_text


def test_utc_text_of_ms_datetime_and_none():
    ms = 1764068400000  # 2025-11-25 11:00 UTC
    assert utc_text(ms) == "2025-11-25 11:00 UTC"
    assert utc_text(datetime(2025, 11, 25, 11, 0, 5, tzinfo=UTC), seconds=True) == "2025-11-25 11:00:05 UTC"
    assert utc_text(None) == "signal"
    assert utc_text(None, none="-") == "-"


def test_out_of_range_ms_never_raises():
    assert utc_text(300_000_000_000_000).startswith("out-of-range time")
    assert ms_to_datetime(MAX_MS + 1) is None
    assert iso_text(MAX_MS + 1) is None
    assert ms_to_datetime(MAX_MS) is not None


def test_iso_text():
    assert iso_text(1764068400000) == "2025-11-25T11:00:00Z"
    assert iso_text(1764068400123) == "2025-11-25T11:00:00.123Z"
    assert iso_text(None) is None
    assert datetime_to_ms(datetime(2025, 11, 25, 11, tzinfo=UTC)) == 1764068400000
