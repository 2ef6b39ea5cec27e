"""improto.Error and its subclasses, and the C++ -> Python translation."""

import builtins
import pickle

import pytest

import improto
from improto import _core


def test_every_errc_has_a_class():
    assert set(_core.ERRC) == set(improto._errors._CLASS_FOR)
    assert len(_core.ERRC) == 27


@pytest.mark.parametrize("errc", sorted(_core.ERRC))
def test_cpp_error_is_raised_as_its_class(errc):
    cls = improto.error_class(errc)
    with pytest.raises(improto.Error) as info:
        _core._raise(errc, "some detail", 102)
    e = info.value
    assert type(e) is cls
    assert e.errc == errc
    assert e.detail == "some detail"
    assert e.code == 102
    # improto::error::message(): "<describe(errc)>: <detail>"
    assert str(e) == f"{_core.ERRC[errc]}: some detail"
    assert e.message == str(e)


def test_without_detail_or_code():
    with pytest.raises(improto.ProtocolError) as info:
        _core._raise("line_too_long")
    assert info.value.detail == ""
    assert info.value.code is None
    assert str(info.value) == "line too long"


def test_classes_by_kind():
    framing = ["line_too_long", "too_many_headers", "malformed_header", "bad_content_length",
               "missing_content_length", "body_too_large", "truncated"]
    grammar = ["malformed_start_line", "unknown_command", "invalid_name", "invalid_argument",
               "unsupported_version", "unsupported_encoding", "datagram_too_large"]
    for errc in framing + grammar:
        assert improto.error_class(errc) is improto.ProtocolError
    assert improto.error_class("rejected") is improto.RejectedError
    assert improto.error_class("name_taken") is improto.NameTakenError
    assert improto.error_class("not_found") is improto.NotFoundError
    for errc in ["connection_refused", "io_error"]:
        assert improto.error_class(errc) is improto.TransportError
    assert improto.error_class("address_in_use") is improto.AddressInUseError
    assert improto.error_class("connection_closed") is improto.ConnectionClosedError
    assert improto.error_class("timeout") is improto.TimeoutError
    assert improto.error_class("overloaded") is improto.OverloadedError
    assert improto.error_class("storage_error") is improto.StorageError
    assert improto.error_class("invalid_config") is improto.ConfigError
    assert improto.error_class("cancelled") is improto.CancelledError
    assert improto.error_class("hash_mismatch") is improto.IntegrityError
    assert improto.error_class("no_such_errc") is improto.Error


def test_hierarchy_matches_the_builtins():
    for cls in improto._errors._CLASS_FOR.values():
        assert issubclass(cls, improto.Error)
    assert issubclass(improto.NameTakenError, improto.RejectedError)
    assert issubclass(improto.RejectedError, improto.ProtocolError)
    assert issubclass(improto.ProtocolError, ValueError)
    assert issubclass(improto.ConfigError, ValueError)
    assert issubclass(improto.TransportError, OSError)
    assert issubclass(improto.TimeoutError, improto.TransportError)
    assert issubclass(improto.TimeoutError, builtins.TimeoutError)
    assert improto.TimeoutError is not builtins.TimeoutError
    with pytest.raises(builtins.TimeoutError):
        _core._raise("timeout", "no answer")
    with pytest.raises(OSError):
        _core._raise("connection_refused", "127.0.0.1:1")


def test_raised_from_python_and_pickled():
    e = improto.NameTakenError("name taken: alice", errc="name_taken", detail="alice", code=104)
    assert repr(e) == "NameTakenError('name taken: alice', errc='name_taken', code=104)"
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is improto.NameTakenError
    assert (back.message, back.errc, back.detail, back.code) == ("name taken: alice", "name_taken", "alice", 104)
    plain = improto.Error("oops")
    assert (plain.errc, plain.detail, plain.code) == (None, "", None)
    t = pickle.loads(pickle.dumps(improto.TimeoutError("timed out", errc="timeout")))
    assert isinstance(t, builtins.TimeoutError) and t.errc == "timeout"


def test_unknown_errc_name_is_a_value_error():
    with pytest.raises(ValueError, match="no errc named"):
        _core._raise("bogus")


def test_documented():
    for name in improto.__all__:
        assert getattr(improto, name).__doc__, name


def test_public_methods_documented():
    for cls in (improto.RegistryServer, improto.BuddyServer, improto.RelayServer):
        for name in dir(cls):
            if not name.startswith("_"):
                assert getattr(cls, name).__doc__, f"{cls.__name__}.{name}"


def test_stub_matches_the_module_and_is_installed():
    import ast
    from pathlib import Path
    package = Path(improto.__file__).parent
    assert (package / "py.typed").exists()
    tree = ast.parse((package / "_core.pyi").read_text())
    names = 0
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes = ([_core._RegistryServer, _core._BuddyServer, _core._RelayServer]
                       if node.name == "_ServerCore" else [getattr(_core, node.name)])
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    for cls in classes:
                        assert hasattr(cls, item.name), f"{cls.__name__}.{item.name}"
                    names += 1
        elif isinstance(node, ast.FunctionDef):
            assert hasattr(_core, node.name), node.name
            names += 1
        elif isinstance(node, ast.AnnAssign) and not node.target.id.startswith("_"):
            assert hasattr(_core, node.target.id), node.target.id
            names += 1
    assert names >= 8
    # Every member of the core classes is in the stub (its own or _ServerCore's).
    stubbed = {item.name for node in tree.body if isinstance(node, ast.ClassDef)
               for item in node.body if isinstance(item, ast.FunctionDef)}
    for cls in (_core._RegistryServer, _core._BuddyServer, _core._RelayServer):
        for name in vars(cls):
            if not name.startswith("_"):
                assert name in stubbed, f"{cls.__name__}.{name} missing from _core.pyi"
