"""improto.registry, improto.buddy and improto.transfer: the classes, the
checked encoders, and bad input to every decoder and parser of the four
protocols (random bytes, 1 MB of garbage) raising ProtocolError only."""

import random
import sys
import threading

import pytest

import improto
from improto import buddy, registry, relay, transfer

# ------------------------------------------------------------------ registry


def test_registry_request_fields_and_round_trip():
    r = registry.make_request("POST", "/", "127.0.0.1", b"REGISTER bob@1.2.3.4:5")
    assert (r.method, r.target, r.version) == ("POST", "/", 1)
    assert r.header("content-length") == "22" and r.header("nope") is None
    assert ("Host", "127.0.0.1") in r.headers
    assert r.keep_alive and r.body == b"REGISTER bob@1.2.3.4:5"
    data = registry.encode(r)
    assert data.startswith(b"POST / HTTP/1.1\r\n")
    d = registry.RequestDecoder()
    assert d.feed(data * 3) == [r, r, r]
    assert repr(r) == registry.describe(r)
    cmd = registry.parse_command(r.body)
    assert cmd == registry.Command(kind=registry.CommandKind.REGISTER,
                                   entry=registry.Entry(user="bob", host="1.2.3.4", port=5))
    assert registry.encode(cmd) == b"REGISTER bob@1.2.3.4:5"
    assert str(cmd.entry) == "bob@1.2.3.4:5"


def test_registry_response_and_status_errors():
    resp = registry.make_response(406, b"taken", keep_alive=False)
    assert resp.reason == registry.reason_phrase(406) == "Not Acceptable"
    assert not resp.keep_alive
    d = registry.ResponseDecoder()
    assert d.feed(registry.encode(resp)) == [resp]
    e = registry.error_from_status(406)
    assert isinstance(e, improto.NameTakenError) and e.code == 406
    assert isinstance(registry.error_from_status(404), improto.NotFoundError)
    assert registry.error_from_status(200) is None
    assert registry.status_for("line_too_long") == 431


def test_registry_lists_entries_and_peer_datagrams():
    lst = registry.UserList(entries=[registry.Entry(user="a", host="::1", port=4000),
                                     registry.Entry(user="b", host="10.0.0.1", port=1)])
    data = registry.encode(lst)
    assert data == b"a@[::1]:4000,b@10.0.0.1:1,"
    assert registry.parse_list(data) == lst
    p = registry.parse_peer_datagram("Defne: merhaba \u011f".encode())
    assert p.sender == "Defne" and p.text == "merhaba \u011f".encode()
    assert registry.encode(p) == "Defne: merhaba \u011f".encode()
    assert registry.parse_entry(b"\xc4\x9fx@1.2.3.4:5").user == "\u011fx"


@pytest.mark.parametrize("msg", [
    registry.Request(method="GET", target="/", headers=[("Host", "x\r\nX-Evil: 1")]),
    registry.Request(method="GET", target="/a b"),
    registry.Request(method="GE T", target="/"),
    registry.Request(method="POST", target="/", headers=[("Content-Length", "1")], body=b"xy"),
    registry.Response(status=200, reason="OK\r\nSet-Cookie: x"),
    registry.Response(status=99),
    registry.Entry(user="bo b", host="1.2.3.4", port=5),
    registry.Entry(user="bob", host="1.2.3.4\n", port=5),
    registry.Entry(user="bob", host="1.2.3.4", port=0),
    registry.PeerMessage(sender="a:b", text=b"x"),
])
def test_registry_encode_refuses_what_peers_misread(msg):
    with pytest.raises(improto.ProtocolError):
        registry.encode(msg)


def test_registry_errors_are_sticky_with_status_codes():
    d = registry.RequestDecoder()
    with pytest.raises(improto.ProtocolError) as info:
        d.feed(b"GET / HTTP/2.0\r\n\r\n")
    assert (info.value.errc, info.value.code) == ("unsupported_version", 505)
    assert d.failed
    with pytest.raises(improto.ProtocolError):
        d.feed(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(improto.ProtocolError) as info:
        registry.parse_entry(b"bob@1.2.3.4")
    assert info.value.errc == "invalid_argument" and info.value.code == 400


def test_registry_non_utf8_header_is_a_protocol_error():
    d = registry.RequestDecoder()
    with pytest.raises(improto.ProtocolError) as info:
        d.feed(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX: \xff\r\n\r\n")
    assert len(info.value.messages) == 1
    assert info.value.errc == "malformed_header"

# --------------------------------------------------------------------- buddy


def test_buddy_messages_round_trip():
    samples = [
        buddy.RegisterRequest(user="alice"), buddy.AddRequest(user="alice", buddy="bob"),
        buddy.DeleteRequest(user="alice", buddy="bob"), buddy.Response(code=202, text="NO SUCH USER"),
    ]
    assert buddy.RequestDecoder().feed(b"".join(buddy.encode(m) for m in samples[:3])) == samples[:3]
    assert buddy.ResponseDecoder().feed(buddy.encode(samples[3])) == [samples[3]]
    s = buddy.SetRequest(user="alice", status=buddy.Presence.OFFLINE, msgport=0)
    assert buddy.parse_udp_request(buddy.encode(s)) == s
    assert buddy.parse_udp_request(b"GET alice") == buddy.GetRequest(user="alice")
    assert buddy.udp_verb_of(b"  set x") == "SET" and buddy.udp_verb_of(b"") is None
    lst = buddy.BuddyList(buddies=[buddy.BuddyEntry(user="bob", status=buddy.Presence.ONLINE,
                                                    ip="1.2.3.4", port=4000)])
    assert buddy.encode(lst) == b"bob 100 1.2.3.4 4000\n"
    assert buddy.parse_status_reply(buddy.encode(lst)) == lst
    assert buddy.parse_status_reply(b"202 NO SUCH USER\n") == buddy.Response(code=202, text="NO SUCH USER")
    assert buddy.parse_request_line(b"ADD a b") == buddy.AddRequest(user="a", buddy="b")
    assert buddy.parse_response_line(b"200 OK").ok


def test_buddy_chat():
    d = buddy.ChatDecoder()
    assert d.phase == "opening"
    got = d.feed(b"CHAT alice\nhello \xe2\x98\x95\nCHAT x\nq\n")
    assert got == [buddy.ChatHello(user="alice"), buddy.ChatText(line="hello \u2615"),
                   buddy.ChatText(line=b"CHAT x"), buddy.ChatQuit()]
    assert d.phase == "ended"
    assert buddy.encode(buddy.ChatText(line=b"hi")) == b"hi\n"
    with pytest.raises(improto.ProtocolError):
        buddy.encode(buddy.ChatText(line=b"q"))
    with pytest.raises(improto.ProtocolError):
        buddy.encode(buddy.ChatText(line=b"a\nq"))


def test_buddy_errors_and_codes():
    d = buddy.RequestDecoder()
    with pytest.raises(improto.ProtocolError) as info:
        d.feed(b"REG alice\nFOO x\nREG bob\n")
    assert info.value.messages == [buddy.RegisterRequest(user="alice")]
    assert info.value.code == buddy.code_for(info.value.errc)  # unknown_command: None, not answered
    assert d.feed(b"") == [buddy.RegisterRequest(user="bob")]
    assert isinstance(buddy.error_from_response(buddy.Response(code=203, text="USER EXISTS")),
                      improto.NameTakenError)
    assert buddy.error_from_response(buddy.Response()) is None
    assert buddy.code_for("not_found") == 202
    for bad in (buddy.RegisterRequest(user="a b"), buddy.AddRequest(user="a", buddy="b\nREG c"),
                buddy.Response(code=200, text="OK\n200 OK"),
                buddy.SetRequest(user="a", status=buddy.Presence.ONLINE, msgport=0)):
        with pytest.raises(improto.ProtocolError):
            buddy.encode(bad)
    with pytest.raises(improto.ProtocolError):
        buddy.ResponseDecoder().feed(b"200 \xff\xfe\n")

# ------------------------------------------------------------------ transfer


def test_transfer_datagrams_round_trip():
    samples = [
        transfer.Data(id=7, key=0x0123456789ABCDEF, offset=10, payload=b"\x00\xffdata"),
        transfer.Ack(id=7, key=1, cumulative=10, window=65536, delay_us=5, fin=False,
                     sack=[(20, 30), (40, 41)]),
        transfer.Fin(id=7, key=1, end=5, last_byte=0x6F),
        transfer.Abort(id=7, key=1, reason=transfer.AbortReason.IO_ERROR),
    ]
    for m in samples:
        data = transfer.encode(m)
        assert transfer.parse_datagram(data) == m
        assert transfer.peek_header(data) == transfer.Header(id=m.id, key=m.key)
        assert repr(m) == transfer.describe(m)
    assert samples[1].sack == [(20, 30), (40, 41)]
    assert transfer.peek_header(b"\x01\x01") is None
    e = transfer.error_from_abort(transfer.AbortReason.IO_ERROR)
    assert isinstance(e, improto.TransportError)


@pytest.mark.parametrize("msg", [
    transfer.Data(id=0, key=1, payload=b"x"),
    transfer.Data(id=1, key=0, payload=b"x"),
    transfer.Data(id=1, key=1, payload=b""),
    transfer.Ack(id=1, key=1, cumulative=10, sack=[(30, 40), (20, 25)]),
    transfer.Fin(id=1, key=1, end=0, last_byte=1),
])
def test_transfer_encode_refuses_invalid(msg):
    with pytest.raises(improto.ProtocolError) as info:
        transfer.encode(msg)
    assert info.value.errc == "invalid_argument"


def test_transfer_too_large():
    with pytest.raises(improto.ProtocolError) as info:
        transfer.encode(transfer.Data(id=1, key=1, payload=b"x" * transfer.MAX_DATAGRAM))
    assert info.value.errc == "datagram_too_large"

# ------------------------------------------------------- bad input, all codecs

STREAM_DECODERS = [
    ("relay.to_server", lambda: relay.Decoder(relay.Direction.TO_SERVER)),
    ("relay.to_client", lambda: relay.Decoder(relay.Direction.TO_CLIENT)),
    ("http.request", registry.RequestDecoder),
    ("http.response", registry.ResponseDecoder),
    ("buddy.request", buddy.RequestDecoder),
    ("buddy.response", buddy.ResponseDecoder),
    ("buddy.chat", buddy.ChatDecoder),
]
PARSERS = [
    registry.parse_entry, registry.parse_command, registry.parse_list,
    registry.parse_peer_message, buddy.parse_udp_request, buddy.parse_status_reply,
    buddy.parse_request_line, buddy.parse_response_line, transfer.parse_datagram,
]
MODULES = (registry, buddy, relay, transfer)
ALPHABET = (b"GET POST HTTP/1.1\r\nContent-Length: 12 REG ADD SET 100 CHAT q BUSY SEND "
            b"FORWARD USERS\n:@,.\x00\x01\xff\xc3\xa9")


def random_chunk(rng):
    n = rng.randrange(0, 300)
    if rng.random() < 0.5:
        return rng.randbytes(n)
    return bytes(rng.choice(ALPHABET) for _ in range(n))


def use(messages):
    for m in messages:  # every decoded object works as an object
        text = repr(m)
        assert text
        module = sys.modules[type(m).__module__]
        assert module.describe(m) == text
        try:
            module.encode(m)
        except improto.ProtocolError:
            pass


@pytest.mark.parametrize("name,make", STREAM_DECODERS, ids=[n for n, _ in STREAM_DECODERS])
def test_random_bytes_to_feed(name, make):
    rng = random.Random(hash(name) % 1000 + 42)
    for _ in range(200):
        d = make()
        for _ in range(rng.randrange(1, 6)):
            try:
                use(d.feed(random_chunk(rng)))
            except improto.ProtocolError as e:
                assert type(e) is improto.error_class(e.errc)
                use(e.messages)
        try:
            use(d.finish())
        except improto.ProtocolError as e:
            use(e.messages)


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
def test_random_bytes_to_parsers(parse):
    rng = random.Random(parse.__name__)
    for _ in range(500):
        try:
            use([parse(random_chunk(rng))])
        except improto.ProtocolError:
            pass


@pytest.mark.parametrize("name,make", STREAM_DECODERS, ids=[n for n, _ in STREAM_DECODERS])
def test_one_megabyte_of_garbage(name, make):
    garbage = random.Random(1).randbytes(1 << 20)
    d = make()
    with pytest.raises(improto.ProtocolError):
        for _ in range(3):  # non-sticky errors: go on until a sticky one
            try:
                d.feed(garbage)
            except improto.ProtocolError:
                if d.failed:
                    raise
                for _ in range(10000):
                    try:
                        d.feed(b"")
                        break
                    except improto.ProtocolError:
                        if d.failed:
                            raise
                raise
    for parse in PARSERS:
        with pytest.raises(improto.ProtocolError):
            parse(garbage)


def test_wrong_types_raise_type_errors():
    for module in MODULES:
        with pytest.raises(TypeError):
            module.encode(object())
        with pytest.raises(TypeError):
            module.describe("SEND bob")
    with pytest.raises(TypeError):
        relay.encode(buddy.RegisterRequest(user="a"))
    with pytest.raises(TypeError):
        registry.RequestDecoder().feed(None)
    with pytest.raises(TypeError):
        registry.Request(headers=[("a",)])


def test_decoders_in_threads():
    """Each thread its own decoder; big feeds run without the GIL."""
    one = registry.encode(registry.make_request("GET", "/userlist.txt", "h"))
    results = []

    def work():
        d = registry.RequestDecoder()
        results.append(len(d.feed(one * 4000)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [4000] * 4


def test_package_exports_the_codec_modules():
    for name in ("registry", "buddy", "relay", "transfer"):
        assert name in improto.__all__
        module = getattr(improto, name)
        assert module.__doc__
        for export in module.__all__:
            obj = getattr(module, export)
            if isinstance(obj, type):
                assert obj.__doc__ and obj.__module__ == module.__name__, export


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    import doctest
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_help_renders():
    import pydoc
    text = pydoc.render_doc(relay, renderer=pydoc.plaintext)
    assert "class Send" in text and "feed(" in text and "Protocol 3" in text
    assert "improto.registry" in pydoc.render_doc(improto, renderer=pydoc.plaintext)


def test_attribute_assignment_is_checked():
    s = relay.Send(to="bob", body=b"x")
    s.body = bytearray(b"yz")
    s.to = "\u00e9ve"
    assert (s.to, s.body) == ("\u00e9ve", b"yz")
    with pytest.raises(TypeError):
        s.to = 5
    with pytest.raises(TypeError):
        s.body = None
    with pytest.raises(AttributeError):
        del s.to
    with pytest.raises(UnicodeEncodeError):
        s.to = "\udcff"  # a lone surrogate has no UTF-8 form
    r = registry.Request()
    r.headers = [("Host", "x")]
    assert r.headers == [("Host", "x")] and r.header("HOST") == "x"
    with pytest.raises(TypeError):
        r.headers = [("Host",)]
    u = relay.UserList()
    u.users = ["a", "b"]
    assert u.users == ["a", "b"]
    with pytest.raises(TypeError):
        u.users = [b"a"]
    assert "Recipient" in relay.Send.to.__doc__
