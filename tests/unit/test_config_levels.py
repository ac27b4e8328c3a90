"""log.error / log.audit level syntax (config.md §4.5)."""

import pytest

from kes_flask.config import ConfigError, parse_log_level


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("", 0),
        ("  ", 0),
        ("on", 0),
        ("ON", 0),
        ("off", 9),
        (" Off ", 9),
        ("debug", -4),
        ("INFO", 0),
        ("warn", 4),
        ("error", 8),
        ("INFO+2", 2),
        ("debug+4", 0),
        ("ERROR+1", 9),
        ("INFO +2", 2),
        ("info+-2", -2),
        ("4", 4),
        ("-4", -4),
        ("+3", 3),
    ],
)
def test_valid_levels(text, level):
    assert parse_log_level(text) == level


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DEBUG-4", "kesconf: invalid log level 'DEBUG-4'"),
        ("warning", "kesconf: invalid log level 'WARNING'"),
        ("infox", "kesconf: invalid log level 'INFOX'"),
        (
            "INFO+",
            "kesconf: invalid log level suffix '': strconv.Atoi: parsing \"\": invalid syntax",
        ),
        (
            "info+x",
            "kesconf: invalid log level suffix 'X': strconv.Atoi: parsing \"X\": invalid syntax",
        ),
        ("xyz", 'strconv.Atoi: parsing "XYZ": invalid syntax'),
        ("1.5", 'strconv.Atoi: parsing "1.5": invalid syntax'),
        (
            "99999999999999999999",
            'strconv.Atoi: parsing "99999999999999999999": value out of range',
        ),
    ],
)
def test_invalid_levels(text, message):
    with pytest.raises(ConfigError) as info:
        parse_log_level(text)
    assert str(info.value) == message
