"""One timestamp format for the whole spine: ISO-8601 UTC with microseconds, the year
always 4 digits (`0999-…`), so that text order is time order."""

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("spine timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    # the year zero-padded by hand: strftime's %Y gives "999" for 999 on glibc, and the
    # spine compares these texts as text (`created_at <= :at`), so every one is 4 digits
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S.%fZ")


def from_text(text: str) -> datetime:
    year = text.find("-")
    if 0 < year < 4:  # written unpadded before to_text padded it
        text = text.zfill(len(text) + 4 - year)
    # fromisoformat reads the `Z` as UTC (Python 3.11) at a fraction of strptime's cost
    return datetime.fromisoformat(text).astimezone(UTC)
