#!/usr/bin/env python3
"""Independent generator for the hush-proto wire test vectors (docs/PROTOCOL.md Part II).

Written from the spec tables, not from the Rust code, so the replay test in
crates/proto/tests/vectors.rs cross-checks two implementations. Rerun to regenerate:
    python3 crates/proto/tests/vectors/generate.py
"""
import hashlib, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME_LEN, HEADER_LEN = 4160, 4

def frame(kind, body=b"", version=1, reserved=b"\0\0"):
    f = bytes([version, kind]) + reserved + body
    return f + b"\0" * (FRAME_LEN - len(f))

def sha(b): return hashlib.sha256(b).hexdigest()

def write(name, direction, data, expect, note):
    with open(os.path.join(HERE, name + ".txt"), "w") as fh:
        fh.write(f"# {note}\n")
        fh.write(f"direction: {direction}\n")
        if direction == "address":
            fh.write(f"address: {data}\n")
        else:
            fh.write(f"frame: {data.hex()}\n")
        fh.write(f"expect: {expect}\n")

mb = bytes(range(32))
secret0 = bytes([0x11]) * 32
secret1 = bytes([0x22]) * 32
envelope = bytes((i * 7 + 3) % 256 for i in range(4096))
u16 = lambda v: struct.pack(">H", v)
u32 = lambda v: struct.pack(">I", v)
u64 = lambda v: struct.pack(">Q", v)

# Requests.
write("request_ping", "request", frame(0x01), "ping", "Ping: empty body")
write("request_deposit", "request", frame(0x02, mb + envelope),
      f"deposit mailbox={mb.hex()} envelope_sha256={sha(envelope)}", "Deposit: mailbox_id then envelope")
write("request_fetch", "request", frame(0x03, u64(41) + u16(2) + u16(0) + secret0 + secret1),
      f"fetch after=41 secrets={secret0.hex()},{secret1.hex()}", "Fetch: cursor, count, reserved, secrets")
write("request_delete", "request", frame(0x04, secret0 + u16(3) + u16(0) + u64(1) + u64(2) + u64(2**64 - 1)),
      f"delete secret={secret0.hex()} ids=1,2,18446744073709551615", "Delete: secret, count, reserved, ids")
write("request_subscribe", "request", frame(0x05, u16(1) + u16(0) + secret1),
      f"subscribe secrets={secret1.hex()}", "Subscribe: count, reserved, secrets")

# Responses.
write("response_pong", "response", frame(0x81, bytes([1, 1, 0, 0]) + u32(256) + u64(604800)),
      "pong min=1 max=1 quota=256 expiry=604800", "Pong: version range, mailbox quota, expiry")
write("response_deposited", "response", frame(0x82, u64(7)), "deposited id=7", "Deposited: envelope id")
write("response_envelope", "response", frame(0x83, mb + u64(7) + envelope),
      f"envelope mailbox={mb.hex()} id=7 envelope_sha256={sha(envelope)}", "Envelope: mailbox, id, envelope")
write("response_fetch_done", "response", frame(0x84, u32(2) + b"\x01"), "fetch_done returned=2 more=true",
      "FetchDone: count returned, more flag")
write("response_deleted", "response", frame(0x85, u16(1) + u16(2) + u16(0)), "deleted deleted=1 expired=2 unknown=0",
      "Deleted: deleted, expired, unknown counts")
write("response_subscribed", "response", frame(0x86, u16(2)), "subscribed count=2", "Subscribed: count")
write("response_error_mailbox_full", "response", frame(0xff, u16(0x0100) + u16(0) + u32(0)),
      "error code=0x0100 arg=0", "Error: mailbox full")
write("response_error_version", "response", frame(0xff, u16(0x0010) + u16(0) + u32(0x0101)),
      "error code=0x0010 arg=257", "Error: unsupported version, arg = min<<8|max")
write("response_error_rate_limited", "response", frame(0xff, u16(0x0200) + u16(0) + u32(250)),
      "error code=0x0200 arg=250", "Error: rate limited, retry after 250 ms")
write("response_error_unrecognized", "response", frame(0xff, u16(0x7777) + u16(0) + u32(0)),
      "error code=0x7777 arg=0", "Error: a code this build does not know still decodes")

# Frames that must be rejected, with the specific code.
ping = frame(0x01)
write("fail_truncated", "request", ping[:4159], "error truncated", "one byte short")
write("fail_empty", "request", b"", "error truncated", "no bytes at all")
write("fail_oversized", "request", ping + b"\0", "error oversized", "one byte too many")
write("fail_version_0", "request", frame(0x01, version=0), "error unsupported_version", "version 0")
write("fail_version_2", "request", frame(0x01, version=2), "error unsupported_version", "version 2 (future)")
write("fail_unknown_kind", "request", frame(0x42), "error unknown_kind", "kind 0x42 is not assigned")
write("fail_response_as_request", "request", frame(0x82, u64(7)), "error unexpected_kind", "Deposited sent to a relay")
write("fail_request_as_response", "response", frame(0x01), "error unexpected_kind", "Ping sent to a client")
write("fail_reserved_header", "request", frame(0x01, reserved=b"\0\1"), "error reserved_not_zero", "header reserved byte set")
write("fail_padding", "request", ping[:-1] + b"\x01", "error padding_not_zero", "last padding byte set")
write("fail_fetch_count_zero", "request", frame(0x03, u64(0) + u16(0) + u16(0)), "error bad_count", "Fetch with no secrets")
write("fail_fetch_count_129", "request", frame(0x03, u64(0) + u16(129) + u16(0) + secret0 * 129), "error bad_count",
      "Fetch with 129 secrets (max 128)")
write("fail_fetch_reserved", "request", frame(0x03, u64(0) + u16(1) + u16(1) + secret0), "error reserved_not_zero",
      "Fetch reserved field set")
write("fail_fetch_extra_secret", "request", frame(0x03, u64(0) + u16(1) + u16(0) + secret0 + secret1),
      "error padding_not_zero", "count says 1 but 2 secrets present")
write("fail_delete_count_513", "request", frame(0x04, secret0 + u16(513) + u16(0)), "error bad_count",
      "Delete with 513 ids (max 512)")
write("fail_subscribe_count_zero", "request", frame(0x05, u16(0) + u16(0)), "error bad_count", "Subscribe with no secrets")
write("fail_fetch_done_more_2", "response", frame(0x84, u32(0) + b"\x02"), "error bad_field", "more flag must be 0 or 1")
write("fail_error_reserved", "response", frame(0xff, u16(1) + u16(1) + u32(0)), "error reserved_not_zero",
      "Error frame reserved set")
write("fail_garbage", "request", bytes((i * 131 + 17) % 256 for i in range(FRAME_LEN)), "error unsupported_version",
      "pseudo-random bytes (first byte 0x11)")

# Addresses.
pin = bytes(range(32))
import base64
pin_txt = base64.urlsafe_b64encode(pin).decode().rstrip("=")
write("address_name", "address", f"hush://{pin_txt}@relay.example.org:4433",
      f"address pin={pin.hex()} host=relay.example.org port=4433", "DNS host")
write("address_ipv4", "address", f"hush://{pin_txt}@192.0.2.1:443", f"address pin={pin.hex()} host=192.0.2.1 port=443", "IPv4")
write("address_ipv6", "address", f"hush://{pin_txt}@[2001:db8::1]:4433",
      f"address pin={pin.hex()} host=[2001:db8::1] port=4433", "IPv6 in brackets")
for name, addr, note in [
    ("fail_address_scheme", f"https://{pin_txt}@a.example:1", "wrong scheme"),
    ("fail_address_padded_pin", f"hush://{pin_txt}=@a.example:1", "padding not allowed"),
    ("fail_address_short_pin", f"hush://{pin_txt[:-1]}@a.example:1", "42-character pin"),
    ("fail_address_std_alphabet", f"hush://{pin_txt[:-2]}+/@a.example:1", "standard base64 alphabet"),
    ("fail_address_noncanonical_pin", f"hush://{pin_txt[:-1]}9@a.example:1", "unused low bits set in the last character"),
    ("fail_address_no_port", f"hush://{pin_txt}@a.example", "missing port"),
    ("fail_address_port_zero", f"hush://{pin_txt}@a.example:0", "port 0"),
    ("fail_address_port_big", f"hush://{pin_txt}@a.example:70000", "port above 65535"),
    ("fail_address_ipv6_unbracketed", f"hush://{pin_txt}@2001:db8::1:4433", "IPv6 without brackets"),
    ("fail_address_path", f"hush://{pin_txt}@a.example:1/x", "trailing path"),
]:
    write(name, "address", addr, "error bad_address", note)

# Cells of the TCP transport's stream layer (PROTOCOL.md II.1.2): a 12-byte header (kind,
# flags, length u16, stream u32, code u32) and a FRAME_LEN payload, zero after `length`.
CELL_HEADER_LEN = 12
CELL_LEN = CELL_HEADER_LEN + FRAME_LEN

def cell(kind, flags=0, stream=0, code=0, data=b"", length=None):
    n = len(data) if length is None else length
    c = bytes([kind, flags]) + u16(n) + u32(stream) + u32(code) + data
    return c + b"\0" * (CELL_LEN - len(c))

def write_cell(name, data, expect, note):
    with open(os.path.join(HERE, name + ".txt"), "w") as fh:
        fh.write(f"# {note}\n")
        fh.write("direction: cell\n")
        fh.write(f"cell: {data.hex()}\n")
        fh.write(f"expect: {expect}\n")

ping_frame = frame(0x01)
hello = "مرحبا 你好 🕵️".encode()
write_cell("cell_pad", cell(0x00), "pad", "PAD: keep-alive, all zero")
write_cell("cell_data_request", cell(0x01, flags=1, stream=1, data=ping_frame),
           f"data stream=1 fin=true len=4160 sha256={sha(ping_frame)}",
           "DATA: a whole Ping request and FIN on stream 1 (how a client sends every request)")
write_cell("cell_data_partial", cell(0x01, stream=7, data=hello),
           f"data stream=7 fin=false len={len(hello)} sha256={sha(hello)}",
           "DATA: the first bytes of a stream, no FIN (stream data is opaque to the layer)")
write_cell("cell_data_fin_only", cell(0x01, flags=1, stream=7),
           f"data stream=7 fin=true len=0 sha256={sha(b'')}", "DATA: an empty cell that only ends the stream")
write_cell("cell_reset_refused", cell(0x02, stream=3, code=1), "reset stream=3 code=1",
           "RESET: relay refuses stream 3 (too many open)")
write_cell("cell_stop_cancel", cell(0x03, stream=4294967295), "stop stream=4294967295 code=0",
           "STOP: the client stops reading its last possible stream")
write_cell("cell_close_shutting_down", cell(0x04, code=2), "close code=2", "CLOSE: relay shutting down")
for name, data, note in [
    ("fail_cell_truncated", cell(0x00)[:-1], "one byte short"),
    ("fail_cell_oversized", cell(0x00) + b"\0", "one byte too many"),
    ("fail_cell_unknown_kind", cell(0x05), "kind 0x05 is not assigned"),
    ("fail_cell_unknown_flag", cell(0x01, flags=3, stream=1, data=b"x"), "DATA flag 0x02 is not assigned"),
    ("fail_cell_flags_on_reset", cell(0x02, flags=1, stream=1), "FIN flag on a RESET"),
    ("fail_cell_length_above_frame", cell(0x01, stream=1, length=FRAME_LEN + 1), "length 4161"),
    ("fail_cell_length_on_stop", cell(0x03, stream=1, length=1, data=b"\0"), "STOP with a length"),
    ("fail_cell_data_stream_0", cell(0x01, flags=1, stream=0, data=b"x"), "DATA on stream 0"),
    ("fail_cell_close_with_stream", cell(0x04, stream=1), "CLOSE naming a stream"),
    ("fail_cell_empty_without_fin", cell(0x01, stream=1), "empty DATA without FIN"),
    ("fail_cell_code_on_data", cell(0x01, flags=1, stream=1, code=1, data=b"x"), "DATA with a code"),
    ("fail_cell_code_on_pad", cell(0x00, code=1), "PAD with a code"),
    ("fail_cell_padding", cell(0x01, stream=1, data=b"x")[:-1] + b"\x01", "a byte after the data is not zero"),
]:
    write_cell(name, data, "error bad_cell", note)
