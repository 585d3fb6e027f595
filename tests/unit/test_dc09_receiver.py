"""The receiver's pure parts: stream framing, the verdict, the replies, the key ring."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from my_dc09_spt.msg.dc09_msg import dc09_msg  # type: ignore[import-untyped]

from pipeline.decoders.alarm.dc09 import crc16_arc, decrypt_rest
from pipeline.decoders.alarm.reply import ack, duh, nak, read_header, wrap
from pipeline.errors import BrokerUnavailable
from pipeline.settings import AlarmAccount
from pipeline.settings.front_doors import ReceiverSettings
from pipeline.sources.dc09.framing import FrameReader, Oversize
from pipeline.sources.dc09.keys import KeyRing
from pipeline.sources.dc09.receiver import Receiver
from pipeline.sources.dc09.verdict import Window, judge

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY = "000102030405060708090A0B0C0D0E0F"


def stamp(at: datetime) -> str:
    return f"_{at:%H:%M:%S,%m-%d-%Y}"


def clear(
    seq: str = "0001", address: str = "L1#1234", data: str = "#1234|NBA012]", tail: str = ""
) -> bytes:
    return wrap(f'"SIA-DCS"{seq}{address}[{data}{tail}')


class Keys:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    def key_for(self, line: str | None, account: str | None) -> str | None:
        return self.keys.get(account or "")


# ---------------------------------------------------------------- framing


def test_two_frames_in_one_read_and_one_frame_over_many() -> None:
    a, b = clear("0001"), clear("0002")
    reader = FrameReader(4096)
    assert reader.feed(a + b) == [a, b]
    out: list[bytes | Oversize] = []
    for i in range(len(a)):
        out += reader.feed(a[i : i + 1])
    assert out == [a]
    assert reader.pending == 0


def test_bytes_between_frames_are_dropped_and_the_frame_keeps_its_lf() -> None:
    a = clear()
    reader = FrameReader(4096)
    assert reader.feed(b"\r\n" + a + b"\n" + a) == [a, a]


def test_a_frame_over_the_limit_is_reported_once() -> None:
    reader = FrameReader(64)
    assert reader.feed(b"\n" + b"0" * 100) == [Oversize(100)]
    assert reader.feed(b"0" * 10) == []


# ---------------------------------------------------------------- verdict and replies


def test_clear_frame_in_window_is_accepted_and_acked_with_its_own_address() -> None:
    frame = clear(address="R1L1#1234", tail=stamp(NOW - timedelta(seconds=5)))
    v = judge(frame, Keys({}), NOW, Window())
    assert (v.kind, v.reason) == ("accept", "ok")
    assert v.header is not None
    reply = ack(v.header, NOW)
    assert reply == wrap(f'"ACK"0001R1L1#1234[]{stamp(NOW)}')


def test_reply_omits_what_the_frame_omitted_and_keeps_hex_sequence() -> None:
    frame = clear(seq="000A", address="#1234")
    v = judge(frame, Keys({}), NOW, Window())
    assert v.kind == "accept"
    assert v.header is not None
    text = ack(v.header, NOW).decode()
    assert '"ACK"000A#1234[]' in text
    assert "None" not in text
    assert "L" not in text.split("[")[0][9:]


@pytest.mark.parametrize(
    ("offset", "kind"), [(-41, "NAK"), (-40, "accept"), (20, "accept"), (21, "NAK")]
)
def test_stamp_window_is_minus_40_plus_20(offset: int, kind: str) -> None:
    frame = clear(tail=stamp(NOW + timedelta(seconds=offset)))
    assert judge(frame, Keys({}), NOW, Window()).kind == kind


def test_nak_carries_the_receivers_time() -> None:
    assert nak(NOW) == wrap(f'"NAK"0000R0L0A0[]{stamp(NOW)}')


def test_bad_crc_is_duh_echoing_the_header() -> None:
    frame = bytearray(clear())
    frame[-3] = ord("3")  # inside the data block
    v = judge(bytes(frame), Keys({}), NOW, Window())
    assert (v.kind, v.reason) == ("DUH", "bad_checksum")
    assert duh(v.header, NOW) == wrap(f'"DUH"0001L1#1234[]{stamp(NOW)}')


def test_garbage_is_duh_with_zeros() -> None:
    v = judge(b"\nhello\r", Keys({}), NOW, Window())
    assert (v.kind, v.reason) == ("DUH", "unknown_format")
    assert duh(v.header, NOW) == wrap(f'"DUH"0000R0L0A0[]{stamp(NOW)}')


def third_party_encrypted(account: str, key: str, at: datetime) -> bytes:
    msg = dc09_msg(account, bytes.fromhex(key), None, 1, (at - datetime.now(UTC)).total_seconds())
    return str(msg.dc09block(7, "SIA-DCS", "#" + account + "|NBA012]")).encode()


def test_encrypted_frame_needs_the_accounts_key() -> None:
    frame = third_party_encrypted("6C02", KEY, NOW)
    assert judge(frame, Keys({}), NOW, Window()).reason == "encrypted_no_key"
    wrong = "F" * 32
    assert judge(frame, Keys({"6C02": wrong}), NOW, Window()).reason == "decrypt_failed"
    v = judge(frame, Keys({"6C02": KEY}), NOW, Window())
    assert (v.kind, v.key) == ("accept", KEY)


def test_encrypted_ack_is_read_by_the_third_party_library() -> None:
    frame = third_party_encrypted("6C02", KEY, NOW)
    v = judge(frame, Keys({"6C02": KEY}), NOW, Window())
    assert v.header is not None
    reply = ack(v.header, NOW, KEY)
    header = read_header(reply)
    assert header is not None
    assert header.encrypted
    assert header.token == "ACK"
    assert header.crc_ok
    assert decrypt_rest(header.rest, KEY) == "]" + stamp(NOW)
    msg = dc09_msg("6C02", bytes.fromhex(KEY), None, 1)
    answer, _offset = msg.dc09answer(7, reply.decode())
    assert answer == "ACK"


def test_wrap_is_lf_crc_length_body_cr() -> None:
    body = '"ACK"0001#1234[]'
    assert wrap(body) == f"\n{crc16_arc(body.encode()):04X}{len(body):04X}{body}\r".encode()


# ---------------------------------------------------------------- keys


def test_key_ring_prefers_line_entry_and_reloads_its_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"L2#6C02": {"key": "1" * 32}}))
    ring = KeyRing({"6c02": AlarmAccount(key=KEY)}, str(path))
    assert ring.key_for("2", "6C02") == "1" * 32
    assert ring.key_for("1", "6C02") == KEY
    assert ring.key_for(None, "9999") is None
    path.write_text(json.dumps({"9999": {"key": "2" * 64}}))
    assert ring.reload()
    assert ring.key_for(None, "9999") == "2" * 64
    assert ring.key_for("2", "6C02") == KEY


def test_a_broken_accounts_file_keeps_the_keys_and_never_logs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"9999": {"key": "2" * 64}}))
    ring = KeyRing({}, str(path))
    path.write_text(json.dumps({"9999": {"key": "ABCDEF0123"}}))  # not an AES key length
    assert not ring.reload()
    assert ring.key_for(None, "9999") == "2" * 64
    assert "ABCDEF0123" not in caplog.text
    assert "2" * 64 not in caplog.text
    assert "9999" in caplog.text


# ---------------------------------------------------------------- the receiver's promise


class FakePublisher:
    """Publishes when ``release`` is set; raises when ``fail`` is."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.release = asyncio.Event()
        self.fail = fail
        self.published: list[tuple[bytes | None, bytes]] = []

    async def publish(self, key: bytes | None, value: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        await self.release.wait()
        self.published.append((key, value))


class FakeSupervisor:
    def __init__(self) -> None:
        self.check_ins: list[tuple[str, str | None, datetime]] = []

    def check_in(self, account: str, line: str | None, at: datetime) -> None:
        self.check_ins.append((account, line, at))


def make_receiver(publisher: FakePublisher, supervisor: FakeSupervisor | None = None) -> Receiver:
    settings = ReceiverSettings(ack_timeout_s=0.2, receiver_id="rcv-1")
    return Receiver(
        settings, keys=Keys({}), publisher=publisher, supervisor=supervisor, clock=lambda: NOW
    )


async def test_ack_comes_only_after_kafka_took_the_envelope() -> None:
    publisher, supervisor = FakePublisher(), FakeSupervisor()
    receiver = make_receiver(publisher, supervisor)
    frame = clear()
    answering = asyncio.create_task(receiver.answer(frame, "tcp"))
    await asyncio.sleep(0)
    assert not answering.done()
    assert publisher.published == []
    publisher.release.set()
    reply = await answering
    assert reply is not None
    assert reply.startswith(b"\n")
    assert b'"ACK"0001L1#1234[]' in reply
    [(key, value)] = publisher.published
    assert key == b"1234"
    assert json.loads(value) == {
        "receiver": "rcv-1", "received_at": "2026-03-01T12:00:00.000000Z",
        "frame": frame.decode(), "transport": "tcp",
    }  # fmt: skip
    assert supervisor.check_ins == [("1234", "1", NOW)]


async def test_kafka_slow_or_down_means_no_answer_at_all() -> None:
    slow = make_receiver(FakePublisher())
    assert await slow.answer(clear(), "udp") is None
    down = make_receiver(FakePublisher(fail=BrokerUnavailable("down")))
    assert await down.answer(clear(), "tcp") is None


async def test_duh_and_nak_are_answered_without_kafka() -> None:
    publisher, supervisor = FakePublisher(fail=BrokerUnavailable("down")), FakeSupervisor()
    receiver = make_receiver(publisher, supervisor)
    assert (await receiver.answer(b"\nnonsense\r", "tcp") or b"").find(b'"DUH"') > 0
    late = clear(tail=stamp(NOW - timedelta(minutes=5)))
    assert (await receiver.answer(late, "tcp") or b"").find(b'"NAK"') > 0
    # the NAKed frame was authentic: the panel is alive; the garbage was not
    assert [c[0] for c in supervisor.check_ins] == ["1234"]


def test_frames_ending_in_crlf_or_lf_alone_or_without_their_lf() -> None:
    a = clear()
    body = a[1:-1]
    assert FrameReader(4096).feed(a + b"\n" + a + b"\n") == [a, a]
    assert FrameReader(4096).feed(body + b"\n" + body + b"\r") == [body + b"\n", body + b"\r"]
    reader = FrameReader(4096)
    assert reader.feed(b"\n\n" + body[:10]) == []
    assert reader.feed(body[10:] + b"\r") == [a]


async def test_account_from_the_data_block_when_the_header_has_none() -> None:
    publisher, supervisor = FakePublisher(), FakeSupervisor()
    publisher.release.set()
    receiver = make_receiver(publisher, supervisor)
    assert await receiver.answer(clear(address="L2", data="#5a01|NBA012]"), "tcp") is not None
    # a placeholder account counts for nobody
    assert await receiver.answer(clear(address="L2", data="#0000|NBA012]"), "tcp") is not None
    assert [k for k, _ in publisher.published] == [b"5A01", None]
    assert supervisor.check_ins == [("5A01", "2", NOW)]
