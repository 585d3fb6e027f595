"""One SIA or Contact ID event in the terms the alert and activity columns are
built from (docs/formats.md 1.7-1.9): codes, area, zone or user, the event part
of ``external_id`` and the ``match_key`` parts that pair an alarm with its restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pipeline.decoders.alarm.codes import cid_is_user_code, cid_text, sia_is_user_code, sia_text
from pipeline.decoders.alarm.dc09_data import ContactId, SiaEvent

_MISSING: Final = "x"


@dataclass(frozen=True, slots=True)
class Event:
    """One SIA or Contact ID event, in the terms the columns are built from."""

    scheme: Literal["sia", "cid"]
    code: str
    qualifier: int | None
    area: int | None
    number: int | None
    user: int | None
    user_code: bool
    #: the event part of external_id, e.g. "cid-1110-01-004" or "sia-BA-17-a2"
    id_event: str
    metric_text: str
    texts: tuple[str, ...]
    details: dict[str, Any]
    match_a: str
    match_b: str

    def match_key(self, site: str, code: str | None = None) -> str:
        return f"{site}|{self.scheme}:{code or self.code}|{self.match_a}|{self.match_b}"

    @property
    def subject(self) -> int | None:
        """The zone or user number a row is about."""
        if self.number is None and self.user_code:
            return self.user
        return self.number


def _part(v: int | None) -> str:
    return _MISSING if v is None else str(v)


def _nonzero(digits: str) -> int | None:
    """A Contact ID number field; all zeros means none."""
    return int(digits) if digits.isdigit() and int(digits) else None


def cid_event(cid: ContactId, *, id_prefix: str = "cid-") -> Event:
    q = cid.qualifier
    return Event(
        scheme="cid",
        code=cid.code,
        qualifier=q,
        area=_nonzero(cid.partition),
        number=_nonzero(cid.zone),
        user=None,
        user_code=cid_is_user_code(cid.code),
        id_event=f"{id_prefix}{q}{cid.code}-{cid.partition}-{cid.zone}",
        metric_text=f"cid:{q}{cid.code}",
        texts=(cid_text(cid.code),),
        details={"qualifier": q, "code": cid.code, "partition": cid.partition, "zone": cid.zone},
        match_a=cid.partition,
        match_b=cid.zone,
    )


def sia_event(sia: SiaEvent, code: str) -> Event:
    texts = [sia_text(code)]
    details: dict[str, Any] = {
        "code": code,
        "ri": sia.ri,
        "id": sia.user,
        "ti": sia.ti,
        "number": sia.number,
        "text": sia.text,
    }
    if sia.ri_text:
        texts.append(f"Area {sia.ri}: {sia.ri_text}")
        details["ri_text"] = sia.ri_text
    if sia.user_text:
        texts.append(f"User {sia.user}: {sia.user_text}")
        details["id_text"] = sia.user_text
    if sia.text:
        texts.append(sia.text)
    if sia.tail:
        details["tail"] = sia.tail
    user_part = "" if sia.user is None else f"-u{sia.user}"
    return Event(
        scheme="sia",
        code=code,
        qualifier=None,
        area=sia.ri,
        number=sia.number,
        user=sia.user,
        user_code=sia_is_user_code(code),
        id_event=f"sia-{code}-{_part(sia.number)}-a{_part(sia.ri)}{user_part}",
        metric_text=f"sia:{code}",
        texts=tuple(texts),
        details=details,
        match_a=_part(sia.ri),
        match_b=_part(sia.number),
    )
