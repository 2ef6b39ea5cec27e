"""Every case of tests/vectors/{registry,buddy,transfer} replayed through the
Python decoders, parsers and encoders (relay: test_codecs_relay.py): the
same describe() lines and errors as the C++ vector tests, whole and at every
split, and every message re-encoded and decoded again."""

import pytest

from improto import buddy, registry, transfer

import vectors

STREAMS = {
    "http.request": (registry.RequestDecoder, registry.encode),
    "http.response": (registry.ResponseDecoder, registry.encode),
    "buddy.request": (buddy.RequestDecoder, buddy.encode),
    "buddy.response": (buddy.ResponseDecoder, buddy.encode),
    "buddy.chat": (buddy.ChatDecoder, buddy.encode),
}
DATAGRAMS = {
    "registry.entry": (registry.parse_entry, registry.encode),
    "registry.command": (registry.parse_command, registry.encode),
    "registry.list": (registry.parse_list, registry.encode),
    "registry.peer": (registry.parse_peer_message, registry.encode),
    "buddy.udp_request": (buddy.parse_udp_request, buddy.encode),
    "buddy.status_reply": (buddy.parse_status_reply, buddy.encode),
    "transfer.datagram": (transfer.parse_datagram, transfer.encode),
}
CASES = [c for p in ("registry", "buddy", "transfer") for c in vectors.load(p)]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_vector(case):
    if case.decoder in STREAMS:
        make, reencode = STREAMS[case.decoder]
        vectors.check_stream_case(case, make, reencode)
    else:
        parse, reencode = DATAGRAMS[case.decoder]
        vectors.check_datagram_case(case, parse, reencode)


def test_every_decoder_is_covered():
    assert {c.decoder for c in CASES} == set(STREAMS) | set(DATAGRAMS)
