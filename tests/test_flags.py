"""Boolean settings read as text the same way everywhere (`cumpair.flags`)."""

import pytest

from cumpair.alerts.options import AlertOptions
from cumpair.flags import parse_count, parse_flag
from cumpair.index.records import StoreOptions
from cumpair.stored_images import ImageStoreOptions


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("1", True), (" Yes ", True), ("ON", True),
     ("true", True), ("0", False), ("no", False), ("Off", False), ("FALSE", False),
     ("", None), ("maybe", None), ("2", None), (None, None)],
)  # fmt: skip
def test_parse_flag_reads_words_and_bools(value, expected):
    assert parse_flag(value) is expected


def test_settings_readers_share_the_words():
    alerts = AlertOptions.from_settings({"CUMPAIR_ALERTS_SMTP_STARTTLS": "off"})
    assert alerts.smtp_starttls is False
    assert ImageStoreOptions.from_settings({"AWS_USE_SSL": "on"}).aws_use_ssl is True
    store = StoreOptions.from_settings(
        {"CUMPAIR_INDEX_FAST_SCAN": " Off ", "CUMPAIR_INDEX_USE_OPQ": "yes"}
    )
    assert (store.fast_scan, store.use_opq) == (False, True)
    with pytest.raises(ValueError, match="CUMPAIR_INDEX_FAST_SCAN"):
        StoreOptions.from_settings({"CUMPAIR_INDEX_FAST_SCAN": "maybe"})
    with pytest.raises(ValueError, match="CUMPAIR_ALERTS_ENABLED"):
        AlertOptions.from_settings({"CUMPAIR_ALERTS_ENABLED": "maybe"})
    with pytest.raises(ValueError, match="AWS_USE_SSL"):
        ImageStoreOptions.from_settings({"AWS_USE_SSL": "maybe"})


@pytest.mark.parametrize(("value", "count"), [(None, 7), ("", 7), (" 3 ", 3), (0, 0), ("12", 12)])
def test_counts_read_blank_as_the_default(value, count):
    assert parse_count("N", value, 7) == count


@pytest.mark.parametrize("value", ["x", "1.5", "-1", -2])
def test_a_count_that_is_no_whole_number_of_0_or_more_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"^N must be"):
        parse_count("N", value, 7)
