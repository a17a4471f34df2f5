"""``carepath meds --med``: each medication is ``NAME|DOSE|ROUTE|FREQUENCY|RXNORM``; nothing is dropped silently."""

from __future__ import annotations

import pytest

from engine.cli.safety import parse_medication
from engine.errors import CarepathError


def test_a_medication_takes_up_to_five_fields_trailing_ones_optional() -> None:
    assert parse_medication("buprenorphine|16 mg|sublingual|daily|1819") == {
        "name": "buprenorphine",
        "dose": "16 mg",
        "route": "sublingual",
        "frequency": "daily",
        "rxnorm": "1819",
    }
    assert parse_medication(" sertraline | 50 mg ") == {"name": "sertraline", "dose": "50 mg"}
    assert parse_medication("naltrexone||IM") == {"name": "naltrexone", "route": "IM"}


@pytest.mark.parametrize("text", ["a|b|c|d|e|f", "buprenorphine|16 mg|SL|daily|1819|", "|16 mg"])
def test_a_sixth_field_or_no_name_is_refused_in_one_line_naming_the_format(text: str) -> None:
    with pytest.raises(CarepathError) as refused:
        parse_medication(text)
    message = str(refused.value)
    assert "NAME|DOSE|ROUTE|FREQUENCY|RXNORM" in message and "\n" not in message
