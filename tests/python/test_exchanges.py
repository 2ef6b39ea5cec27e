"""improto._exchanges, the request/reply logic the blocking and asyncio
clients share, driven without I/O: scripted replies in, requests and
results (or exceptions) out."""

import asyncio

import pytest

import improto
from improto import _exchanges as ex
from improto import buddy, registry, relay

WHERE = "relay 127.0.0.1:1"


class Script:
    """A `one(request) -> reply` that records the requests and answers from a list."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return self.replies.pop(0)


def test_list_users_follows_the_pages_and_both_drivers_agree():
    pages = [relay.UserList(users=["a", "b"], more=True), relay.UserList(users=["c"], more=False)]
    script = Script(*pages)
    assert ex.run(ex.relay_list_users(WHERE), script) == ["a", "b", "c"]
    assert [r.data for r in script.requests] == [b"LIST USERS\n\n", b"LIST USERS\nAfter: b\n\n"]
    assert {r.doing for r in script.requests} == {"LIST USERS"}

    async def one(request, script=Script(*pages)):
        await asyncio.sleep(0)
        return script(request)
    assert asyncio.run(ex.run_async(ex.relay_list_users(WHERE), one)) == ["a", "b", "c"]


def test_relay_errors_and_unexpected_answers():
    with pytest.raises(improto.RejectedError) as info:
        ex.run(ex.relay_send("bob", "hi", WHERE), Script(relay.ErrorReply(code=102, text="Unable to send")))
    assert info.value.code == 102
    assert str(info.value) == f"{WHERE}: SEND to 'bob': the server answered ERROR 102 Unable to send"
    with pytest.raises(improto.NameTakenError):
        ex.run(ex.relay_register("bob", relay.Role.TO_SEND, WHERE),
               Script(relay.ErrorReply(code=104, text="Username taken")))
    with pytest.raises(improto.ProtocolError, match="unexpected answer"):
        ex.run(ex.relay_subscribe(WHERE), Script(relay.Sent(to="x")))
    # CANCEL of a transfer that ended already is not an error; another ERROR is.
    ex.run(ex.relay_cancel(7, WHERE), Script(relay.ErrorReply(code=107, text="No such transfer")))
    with pytest.raises(improto.OverloadedError):
        ex.run(ex.relay_cancel(7, WHERE), Script(relay.ErrorReply(code=109, text="Server busy")))
    with pytest.raises(TypeError):
        ex.run(ex.relay_send("bob", 5, WHERE), Script())


def test_relay_events_answer_forwards_only():
    ev, answer = ex.relay_event(relay.Forward(from_="bob", body=b"x"), WHERE)
    assert answer == b"RECEIVED bob\n\n"
    assert ex.relay_event(relay.Joined(user="bob"), WHERE)[1] == b""
    with pytest.raises(improto.ProtocolError):
        ex.relay_event(relay.Sent(to="x"), WHERE)


def test_registry_and_buddy_exchanges():
    ok = registry.Response(status=200, reason="OK")
    script = Script(ok)
    ex.run(ex.registry_command(registry.CommandKind.REGISTER, "ali", "127.0.0.1", 4000, "h", WHERE), script)
    assert script.requests[0].doing == "REGISTER ali@127.0.0.1:4000"
    assert b"REGISTER ali@127.0.0.1:4000" in script.requests[0].data
    # The registry's "no online users" is an empty list, other statuses raise.
    assert ex.run(ex.registry_users("h", WHERE), Script(registry.Response(status=400, reason="Bad Request"))) == []
    with pytest.raises(improto.NameTakenError) as info:
        ex.run(ex.registry_command(registry.CommandKind.REGISTER, "ali", "127.0.0.1", 4000, "h", WHERE),
               Script(registry.Response(status=406, reason="Not Acceptable")))
    assert info.value.code == 406
    with pytest.raises(improto.NotFoundError) as info:
        ex.run(ex.buddy_command(buddy.AddRequest(user="a", buddy="b"), WHERE),
               Script(buddy.Response(code=202, text="NO SUCH USER")))
    assert str(info.value).endswith("ADD a b: the server answered 202 NO SUCH USER")
    assert ex.buddy_statuses(b"bob 100 127.0.0.1 4000\n", WHERE, "GET a")[0].port == 4000
    with pytest.raises(improto.ProtocolError, match="GET a: bad reply"):
        ex.buddy_statuses(b"\x00garbage", WHERE, "GET a")
    with pytest.raises(ValueError):
        ex.buddy_get("a", 0)


def test_error_answers_name_the_line_and_keep_the_detail():
    err = ex.relay_error(relay.ErrorReply(code=106, text="No such file"), WHERE, "DOWNLOAD 'x'")
    assert isinstance(err, improto.NotFoundError) and err.errc == "not_found" and err.code == 106
    assert err.detail == "ERROR 106 No such file"
    # HTTP: the body is the detail (empty when there is none) and ends the message.
    err = ex.http_error(registry.Response(status=403, reason="Forbidden", body=b"not yours\n"), WHERE, "GET /")
    assert isinstance(err, improto.RejectedError) and err.code == 403 and err.detail == "not yours"
    assert str(err) == f"{WHERE}: GET /: the server answered 403 Forbidden: not yours"
    err = ex.http_error(registry.Response(status=418, reason="Teapot"), WHERE, "GET /")
    assert type(err) is improto.RejectedError and err.errc == "rejected" and err.detail == ""
    assert str(err) == f"{WHERE}: GET /: the server answered 418 Teapot"
    err = ex.buddy_error(buddy.Response(code=203, text="USER EXISTS"), WHERE, "REG a")
    assert isinstance(err, improto.NameTakenError) and err.detail == "203 USER EXISTS"


def test_events_end_on_a_timeout_or_the_clients_own_close():
    closed = improto.ConnectionClosedError("closed", errc="connection_closed")
    assert ex.ends_events(closed, True) and not ex.ends_events(closed, False)
    assert ex.ends_events(improto.TimeoutError("slow", errc="timeout"), False)
    assert not ex.ends_events(improto.ProtocolError("bad", errc="invalid_argument"), True)
