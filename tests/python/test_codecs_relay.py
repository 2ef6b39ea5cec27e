"""improto.relay: the vectors of tests/vectors/relay replayed through the
Python decoder and encoder, the message classes, and bad input."""

import random

import pytest

import improto
from improto import relay

import vectors

CASES = vectors.load("relay")
DECODERS = {
    "relay.to_server": relay.Direction.TO_SERVER,
    "relay.to_client": relay.Direction.TO_CLIENT,
}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_vector(case):
    direction = DECODERS[case.decoder]
    vectors.check_stream_case(case, lambda: relay.Decoder(direction), relay.encode)


def test_every_vector_file_is_replayed():
    assert len(CASES) > 50
    assert {c.decoder for c in CASES} == set(DECODERS)


def test_messages_have_fields_keywords_eq_and_repr():
    s = relay.Send(to="bob", body=b"hi")
    assert (s.to, s.body) == ("bob", b"hi")
    assert s == relay.Send(to="bob", body=b"hi")
    assert s != relay.Send(to="bob", body=b"ho")
    assert s != relay.Sent(to="bob")
    assert repr(s) == 'send to="bob" body="hi"' == relay.describe(s)
    f = relay.Forward(from_="alice", body="caf\u00e9")  # str bodies are sent as UTF-8
    assert f.from_ == "alice" and f.body == "café".encode()
    assert relay.UserList(users=["a", "b"], more=True).users == ["a", "b"]
    fl = relay.FileList(files=[relay.FileEntry(name="a b.txt", size=5)])
    assert fl.files[0] == relay.FileEntry(name="a b.txt", size=5)
    assert repr(fl.files[0]) == "FileEntry(name='a b.txt', size=5)"
    r = relay.RegisterRequest(role=relay.Role.TO_RECV, user="bob")
    assert relay.encode(r) == b"REGISTER TORECV bob\n\n"
    assert relay.direction_of(r) == relay.Direction.TO_SERVER
    t = relay.Transfer(id=7, size=5, offset=0, sha256="0" * 64, udp_port=50001)
    assert relay.Decoder(relay.Direction.TO_CLIENT).feed(relay.encode(t)) == [t]
    with pytest.raises(TypeError):
        relay.Send(to=b"bob")  # names are str
    with pytest.raises(TypeError):
        hash(s)  # mutable: not hashable
    s.to = "eve"
    assert relay.encode(s) == b"SEND eve\nContent-length: 2\n\nhi"


def test_every_message_class_round_trips():
    samples = [
        relay.RegisterRequest(user="alice"), relay.Registered(role=relay.Role.TO_RECV, user="a"),
        relay.Send(to="ALL", body=b"\x00\xff"), relay.Sent(to="bob"),
        relay.Forward(from_="a", body=b"x"), relay.Received(from_="a"),
        relay.ErrorReply(code=102, text="Unable to send"), relay.ListUsers(after="bob"),
        relay.UserList(users=["a", "b"], more=True), relay.ListFiles(),
        relay.FileList(files=[relay.FileEntry(name="x", size=1)]), relay.Subscribe(),
        relay.Subscribed(), relay.Unsubscribe(), relay.Unsubscribed(), relay.Joined(user="a"),
        relay.Left(user="a"), relay.Download(file="song.mp3", udp_port=4000, offset=3),
        relay.Transfer(id=1, size=2, offset=1, sha256="ab" * 32, udp_port=9),
        relay.Pause(id=1), relay.Resume(id=2), relay.Cancel(id=3), relay.Paused(id=1),
        relay.Resumed(id=2), relay.Cancelled(id=3),
    ]
    assert {type(m) for m in samples} == set(relay.MESSAGE_TYPES)
    for m in samples:
        d = relay.Decoder(relay.direction_of(m))
        assert d.feed(relay.encode(m)) == [m], m


@pytest.mark.parametrize("msg", [
    relay.Send(to="bob\nContent-length: 1\n\nx"),
    relay.Send(to="bob\r"),
    relay.Send(to=" bob"),
    relay.Forward(from_="a\nb", body=b"x"),
    relay.RegisterRequest(user="a\n\nSEND b"),
    relay.ErrorReply(code=99, text="x"),
    relay.ErrorReply(code=102, text="x\nFORWARD a"),
    relay.ListUsers(after="a\nb"),
    relay.UserList(users=["a", ""]),
    relay.UserList(users=["a\nb"]),
    relay.Download(file="x", udp_port=0),
    relay.Transfer(id=1, size=1, sha256="nothex"),
    relay.Pause(id=0),
])
def test_encode_refuses_smuggling(msg):
    with pytest.raises(improto.ProtocolError) as info:
        relay.encode(msg)
    assert info.value.errc == "invalid_argument"


def test_encode_refuses_a_body_over_the_limit():
    with pytest.raises(improto.ProtocolError) as info:
        relay.encode(relay.Send(to="bob", body=b"x" * (64 * 1024 + 1)))
    assert info.value.errc == "body_too_large"


def test_grammar_error_keeps_earlier_messages_and_resumes():
    d = relay.Decoder(relay.Direction.TO_SERVER)
    with pytest.raises(improto.ProtocolError) as info:
        d.feed(b"SEND a\nContent-length: 1\n\nxBOGUS\n\nSEND b\nContent-length: 1\n\ny")
    e = info.value
    assert (e.errc, e.code) == ("unknown_command", 105)
    assert e.messages == [relay.Send(to="a", body=b"x")]
    assert not d.failed
    assert d.feed(b"") == [relay.Send(to="b", body=b"y")]


def test_framing_error_is_sticky():
    d = relay.Decoder(relay.Direction.TO_SERVER)
    with pytest.raises(improto.ProtocolError) as info:
        d.feed(b"SEND a\n\n")
    assert (info.value.errc, info.value.code) == ("missing_content_length", 103)
    assert d.failed
    for _ in range(2):
        with pytest.raises(improto.ProtocolError) as again:
            d.feed(b"SENT a\n\n")
        assert again.value.errc == "missing_content_length"


def test_non_utf8_names_are_protocol_errors():
    d = relay.Decoder(relay.Direction.TO_SERVER)
    with pytest.raises(improto.ProtocolError) as info:
        d.feed(b"REGISTER TOSEND ok\n\nREGISTER TOSEND a\xffb\n\nREGISTER TORECV c\n\n")
    assert info.value.errc == "invalid_argument"
    assert info.value.messages == [relay.RegisterRequest(user="ok")]
    assert d.feed(b"") == [relay.RegisterRequest(role=relay.Role.TO_RECV, user="c")]
    d = relay.Decoder(relay.Direction.TO_CLIENT)
    with pytest.raises(improto.ProtocolError):
        d.feed(b"USERS\nContent-length: 5\n\na\nb\xc0\n")


def test_truncated_stream():
    d = relay.Decoder(relay.Direction.TO_CLIENT)
    assert d.feed(b"FORWARD a\nContent-length: 5\n\nhel") == []
    with pytest.raises(improto.ProtocolError) as info:
        d.finish()
    assert info.value.errc == "truncated"


def test_accepts_bytes_like_input():
    d = relay.Decoder(relay.Direction.TO_CLIENT)
    assert d.feed(bytearray(b"SENT a\n\n")) == [relay.Sent(to="a")]
    assert d.feed(memoryview(b"xxSENT b\n\n")[2:]) == [relay.Sent(to="b")]
    with pytest.raises(TypeError):
        d.feed("SENT c\n\n")


def test_limits_are_configurable():
    d = relay.Decoder(relay.Direction.TO_SERVER, max_body=4)
    with pytest.raises(improto.ProtocolError) as info:
        d.feed(b"SEND a\nContent-length: 5\n\nhello")
    assert info.value.errc == "body_too_large"
    with pytest.raises(improto.ConfigError):
        relay.Decoder(relay.Direction.TO_SERVER, max_line=0)


def test_large_input_in_one_feed():
    one = relay.encode(relay.Send(to="bob", body=b"x" * 100))
    d = relay.Decoder(relay.Direction.TO_SERVER)
    got = d.feed(one * 5000)  # 600 kB: decoded without the GIL
    assert len(got) == 5000 and got[-1] == relay.Send(to="bob", body=b"x" * 100)


@pytest.mark.parametrize("direction", list(DECODERS.values()))
def test_random_bytes_raise_protocol_errors_only(direction):
    rng = random.Random(20261129)
    alphabet = b"SEND FORWARD USERS FILES ERROR 102 \n\r:Content-length: 0123456789\x00\xff"
    for _ in range(300):
        d = relay.Decoder(direction)
        for _ in range(rng.randrange(1, 8)):
            if rng.random() < 0.5:
                chunk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
            else:
                chunk = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 200)))
            try:
                for m in d.feed(chunk):
                    repr(m)
                    relay.describe(m)
            except improto.ProtocolError as e:
                assert isinstance(e.messages, list) and e.errc and e.code >= 100
        try:
            d.finish()
        except improto.ProtocolError:
            pass


def test_one_megabyte_of_garbage():
    rng = random.Random(7)
    garbage = rng.randbytes(1 << 20)
    for direction in DECODERS.values():
        d = relay.Decoder(direction)
        with pytest.raises(improto.ProtocolError) as info:
            d.feed(garbage)
        assert info.value.errc in ("line_too_long", "malformed_header", "unknown_command",
                                   "malformed_start_line", "invalid_argument")
    # The interpreter is healthy: decoding goes on as usual.
    assert relay.Decoder(relay.Direction.TO_CLIENT).feed(b"SENT a\n\n") == [relay.Sent(to="a")]


def test_error_replies_and_codes():
    assert relay.CODES["UNABLE_TO_SEND"] == 102
    reply = relay.error_reply(104)
    assert reply == relay.ErrorReply(code=104, text=relay.wire_text(104))
    e = relay.error_from_reply(reply)
    assert isinstance(e, improto.NameTakenError) and e.code == 104
    assert isinstance(relay.error_from_reply(relay.error_reply(102)), improto.RejectedError)
    assert relay.closes_connection(103) and not relay.closes_connection(102)
    assert relay.valid_user("alice") and not relay.valid_user("ALL")
    assert relay.is_broadcast(relay.BROADCAST)


def test_help_shows_documented_classes():
    assert "Protocol 3" in relay.__doc__
    for name in relay.__all__:
        obj = getattr(relay, name)
        if isinstance(obj, type):
            assert obj.__doc__, name
            assert obj.__module__ == "improto.relay"
