#!/usr/bin/env python3
"""Independent generator for the hush-proto wire test vectors (docs/PROTOCOL.md Part II).

Written from the spec tables, not from the Rust code, so the replay test in
crates/proto/tests/vectors.rs cross-checks two implementations. Rerun to regenerate:
    python3 crates/proto/tests/vectors/generate.py
"""
import hashlib, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER_LEN = 4
# Private routing (section II.4.2) sizes the frame: a Forward carries the longest binary
# destination address, an ephemeral key and a sealed DepositStamped body with its id.
DESTINATION_LEN = 32 + 2 + 1 + 253
INNER_BODY_LEN = 32 + 1 + 16 + 4096
INNER_REQUEST_LEN = 16 + 4 + INNER_BODY_LEN
SEALED_REQUEST_LEN = INNER_REQUEST_LEN + 16
FRAME_LEN = HEADER_LEN + DESTINATION_LEN + 32 + SEALED_REQUEST_LEN
assert FRAME_LEN == 4505

def frame(kind, body=b"", version=2, reserved=b"\0\0"):
    f = bytes([version, kind]) + reserved + body
    return f + b"\0" * (FRAME_LEN - len(f))

def sha(b): return hashlib.sha256(b).hexdigest()

def write(name, direction, data, expect, note, extra=()):
    with open(os.path.join(HERE, name + ".txt"), "w") as fh:
        fh.write(f"# {note}\n")
        fh.write(f"direction: {direction}\n")
        if direction == "address":
            fh.write(f"address: {data}\n")
        elif direction == "binary_address":
            fh.write(f"binary: {data.hex()}\n")
        else:
            fh.write(f"frame: {data.hex()}\n")
        for line in extra:
            fh.write(line + "\n")
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

# Drops (section II.4, "Drops"): the owner's secret F has the difficulty in its first byte.
drop_secret = bytes([12]) + bytes(range(100, 131))
drop_id = hashlib.sha256(drop_secret).digest()
drop_bits = drop_secret[0]
drop_key = hashlib.sha256(b"hush/v2/drop" + bytes([drop_bits]) + drop_id).digest()

def stamp_work(key, env, stamp):
    d = hashlib.sha256(b"hush/v2/stamp" + key + hashlib.sha256(env).digest() + stamp).digest()
    n = int.from_bytes(d, "big")
    return 256 - n.bit_length()

def mint(key, env, bits, prefix):
    c = 0
    while True:
        st = prefix + u64(c)
        if stamp_work(key, env, st) >= bits:
            return st
        c += 1

drop_stamp = mint(drop_key, envelope, drop_bits, bytes.fromhex("e4b8ade69687f09f"))
write("request_deposit_stamped", "request", frame(0x06, drop_id + bytes([drop_bits]) + drop_stamp + envelope),
      f"deposit_stamped drop={drop_id.hex()} bits={drop_bits} stamp={drop_stamp.hex()} envelope_sha256={sha(envelope)}",
      "DepositStamped: drop id, bits, stamp, envelope")
write("fail_deposit_stamped_bits_41", "request", frame(0x06, drop_id + bytes([41]) + drop_stamp + envelope),
      "error bad_field", "a stamp difficulty above 40 bits")
with open(os.path.join(HERE, "drop_stamp.txt"), "w") as fh:
    fh.write("# a drop's id and storage key from the owner's secret, and the work a minted stamp shows\n")
    fh.write("direction: drop\n")
    fh.write(f"secret: {drop_secret.hex()}\n")
    fh.write(f"stamp: {drop_stamp.hex()}\n")
    fh.write(f"envelope: {envelope.hex()}\n")
    fh.write(f"expect: drop id={drop_id.hex()} bits={drop_bits} key={drop_key.hex()} work={stamp_work(drop_key, envelope, drop_stamp)}\n")

# Responses.
write("response_pong", "response", frame(0x81, bytes([2, 2, 0, 0]) + u32(256) + u64(604800)),
      "pong min=2 max=2 quota=256 expiry=604800", "Pong: version range, mailbox quota, expiry")
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
write("response_error_version", "response", frame(0xff, u16(0x0010) + u16(0) + u32(0x0202)),
      "error code=0x0010 arg=514", "Error: unsupported version, arg = min<<8|max")
write("response_error_stamp_too_weak", "response", frame(0xff, u16(0x0102) + u16(0) + u32(13)),
      "error code=0x0102 arg=13", "Error: stamp too weak, 13 bits required now")
write("response_error_rate_limited", "response", frame(0xff, u16(0x0200) + u16(0) + u32(250)),
      "error code=0x0200 arg=250", "Error: rate limited, retry after 250 ms")
write("response_error_unrecognized", "response", frame(0xff, u16(0x7777) + u16(0) + u32(0)),
      "error code=0x7777 arg=0", "Error: a code this build does not know still decodes")

# Frames that must be rejected, with the specific code.
ping = frame(0x01)
write("fail_truncated", "request", ping[:FRAME_LEN - 1], "error truncated", "one byte short")
write("fail_empty", "request", b"", "error truncated", "no bytes at all")
write("fail_oversized", "request", ping + b"\0", "error oversized", "one byte too many")
write("fail_version_0", "request", frame(0x01, version=0), "error unsupported_version", "version 0")
write("fail_version_1", "request", frame(0x01, version=1), "error unsupported_version", "a version 1 frame")
write("fail_version_3", "request", frame(0x01, version=3), "error unsupported_version", "version 3 (future)")
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

# File chunks (section II.4.3): kinds 0x10-0x12 and 0x90-0x92, codes 0x0600-0x0603. A chunk's
# CHUNK_LEN bytes follow the PutChunk and Chunk frames on their streams; the vectors hold the
# frames, and chunk_names the id and storage key a secret gives.
CHUNK_LEN = 256 * 1024
chunk_secret = hashlib.sha256("分块 ملف 📄".encode()).digest()
chunk_id = hashlib.sha256(chunk_secret).digest()
chunk_key = hashlib.sha256(b"hush/v2/chunk-key" + chunk_id).digest()
write("request_put_chunk", "request", frame(0x10, chunk_id), f"put_chunk id={chunk_id.hex()}",
      "PutChunk: the chunk id; CHUNK_LEN bytes of chunk follow the frame on its stream")
write("request_get_chunk", "request", frame(0x11, chunk_secret), f"get_chunk secret={chunk_secret.hex()}",
      "GetChunk: the chunk secret")
write("request_delete_chunk", "request", frame(0x12, chunk_secret), f"delete_chunk secret={chunk_secret.hex()}",
      "DeleteChunk: the chunk secret")
write("response_chunk_stored", "response", frame(0x90, b"\x01"), "chunk_stored fresh=true",
      "ChunkStored: stored by this put")
write("response_chunk_stored_again", "response", frame(0x90, b"\x00"), "chunk_stored fresh=false",
      "ChunkStored: that id was already stored (idempotent put)")
write("response_chunk", "response", frame(0x91), "chunk",
      "Chunk: empty body; CHUNK_LEN bytes of chunk follow the frame on its stream")
write("response_chunk_deleted", "response", frame(0x92), "chunk_deleted", "ChunkDeleted: empty body")
write("response_error_chunk_not_found", "response", frame(0xff, u16(0x0600) + u16(0) + u32(0)),
      "error code=0x0600 arg=0", "Error: no chunk under that secret's id")
write("response_error_chunk_busy", "response", frame(0xff, u16(0x0603) + u16(0) + u32(200)),
      "error code=0x0603 arg=200", "Error: too many chunk requests in flight, retry after 200 ms")
write("fail_chunk_stored_fresh_2", "response", frame(0x90, b"\x02"), "error bad_field", "fresh must be 0 or 1")
write("fail_chunk_padding", "response", frame(0x91, b"\x00" * 100 + b"\x01"), "error padding_not_zero",
      "a Chunk frame's body is all zero (the chunk is not inside the frame)")
write("fail_put_chunk_padding", "request", frame(0x10, chunk_id + b"\x01"), "error padding_not_zero",
      "PutChunk with a byte after the id")
write("fail_chunk_kind_0x15", "request", frame(0x15, chunk_id), "error unknown_kind",
      "0x15 is in the chunk range but not assigned")
write("fail_chunk_as_request", "request", frame(0x91), "error unexpected_kind", "Chunk sent to a relay")
with open(os.path.join(HERE, "chunk_names.txt"), "w") as fh:
    fh.write("# a chunk's id and the relay's storage key for it, from its secret\n")
    fh.write("direction: chunk\n")
    fh.write(f"secret: {chunk_secret.hex()}\n")
    fh.write(f"expect: chunk id={chunk_id.hex()} key={chunk_key.hex()} len={CHUNK_LEN}\n")

# Files (Part I section 7a): the descriptor a file message carries, and chunk names from a
# file secret. Replayed by hush-crypto (crates/crypto/tests/file_vectors.rs), which owns them.
import hmac
def hkdf(salt, ikm, info, n):
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]
PAYLOAD = CHUNK_LEN - 40
def chunks_for(size): return max(1, -(-size // PAYLOAD))
file_secret = hashlib.sha256("文件 ملف 🗂".encode()).digest()
file_digest = hashlib.sha256(b"the file").digest()
relay_bin = pin_bytes = bytes(range(32)) + u16(4433) + bytes([17]) + b"relay.example.org"
def descriptor(size, name, count=None, chunk_len=CHUNK_LEN, version=1, relay=relay_bin, tail=b""):
    n = name.encode() if isinstance(name, str) else name
    c = chunks_for(size) if count is None else count
    return (bytes([version]) + u64(size) + u32(chunk_len) + u32(c) + file_digest + file_secret
            + bytes([len(n)]) + n + relay + tail)
def write_desc(name, data, expect, note):
    with open(os.path.join(HERE, name + ".txt"), "w") as fh:
        fh.write(f"# {note}\n")
        fh.write("direction: file_descriptor\n")
        fh.write(f"descriptor: {data.hex()}\n")
        fh.write(f"expect: {expect}\n")
for vname, size, fname in [("file_descriptor", 50_000_000, "报告 تقرير 📄.pdf"), ("file_descriptor_empty", 0, "x")]:
    write_desc(vname, descriptor(size, fname),
               f"file size={size} chunks={chunks_for(size)} digest={file_digest.hex()} name_hex={fname.encode().hex()} relay=hush://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@relay.example.org:4433",
               f"a descriptor of {size} bytes")
write_desc("fail_file_descriptor_count", descriptor(1_000_000, "a", count=2**32 - 1), "error file_chunk_count_mismatch",
           "a chunk count far above the size")
write_desc("fail_file_descriptor_count_short", descriptor(1_000_000, "a", count=1), "error file_chunk_count_mismatch",
           "a chunk count below the size")
write_desc("fail_file_descriptor_chunk_len", descriptor(1, "a", chunk_len=65536), "error file_chunk_size", "another chunk size")
write_desc("fail_file_descriptor_oversized", descriptor(2**36 + 1, "a"), "error file_oversized", "above 64 GiB")
write_desc("fail_file_descriptor_empty_name", descriptor(1, ""), "error file_bad_name", "an empty name")
write_desc("fail_file_descriptor_not_utf8", descriptor(1, b"\xff\xfe"), "error file_bad_name", "a name that is not UTF-8")
write_desc("fail_file_descriptor_trailing", descriptor(1, "a", tail=b"\0"), "error file_malformed", "a byte after the relay")
write_desc("fail_file_descriptor_version", descriptor(1, "a", version=2), "error file_malformed", "version 2")
write_desc("fail_file_descriptor_relay", descriptor(1, "a", relay=bytes(range(32)) + u16(0) + bytes([1]) + b"a"),
           "error file_bad_relay", "relay port 0")
with open(os.path.join(HERE, "file_chunk_names.txt"), "w") as fh:
    fh.write("# chunk secrets and ids of chunks 0, 1 and 4096 of a file, from its secret\n")
    fh.write("direction: file_chunk\n")
    fh.write(f"secret: {file_secret.hex()}\n")
    parts = []
    for i in (0, 1, 4096):
        okm = hkdf(None, file_secret, b"hush/v2/chunk" + u32(i), 64)
        parts.append(f"{i}:{okm[:32].hex()}:{hashlib.sha256(okm[:32]).hexdigest()}")
    fh.write(f"expect: {' '.join(parts)}\n")

# Addresses.
pin = bytes(range(32))
import base64
pin_txt = base64.urlsafe_b64encode(pin).decode().rstrip("=")
def binary(host, port):
    """Section II.5.1: pin (32) || u16 port || u8 host length || canonical host."""
    h = host.encode()
    return pin + struct.pack(">HB", port, len(h)) + h

def accepted(name, text_host, port, canonical_host, note):
    """An address the text form accepts: its canonical text and binary form are given."""
    text = f"hush://{pin_txt}@{text_host}:{port}"
    canonical = f"hush://{pin_txt}@{canonical_host}:{port}"
    extra = [f"binary: {binary(canonical_host, port).hex()}"]
    if canonical != text:
        extra.insert(0, f"canonical: {canonical}")
    write(name, "address", text, f"address pin={pin.hex()} host={canonical_host} port={port}",
          note, extra)

label63 = "a" * 63
name253 = ".".join([label63, label63, label63, "b" * 61])  # 63*3 + 61 + 3 dots = 253
accepted("address_name", "relay.example.org", 4433, "relay.example.org", "DNS host")
accepted("address_ipv4", "192.0.2.1", 443, "192.0.2.1", "IPv4")
accepted("address_ipv6", "[2001:db8::1]", 4433, "[2001:db8::1]", "IPv6 in brackets")
accepted("address_name_upper", "Relay.EXAMPLE.org", 1, "relay.example.org",
         "a name is compared in lower case; its canonical form is lower case")
accepted("address_name_hyphens_digits", "xn--mgbh0fb.1st-relay.example", 65535,
         "xn--mgbh0fb.1st-relay.example",
         "inner hyphens, an A-label, a label starting with a digit, the largest port")
accepted("address_name_numeric_labels", "10.0.0.example", 4433, "10.0.0.example",
         "all-numeric labels are allowed when some label is not numeric")
accepted("address_name_single_label", "x", 4433, "x", "a one-character, one-label name")
accepted("address_name_253", name253, 4433, name253, "a name of exactly 253 bytes, labels of 63")
accepted("address_ipv6_long_form", "[2001:DB8:0:0:0:0:0:1]", 4433, "[2001:db8::1]",
         "IPv6 in full and upper case; canonical is RFC 5952")
accepted("address_ipv6_zero_runs", "[2001:0:0:1:0:0:0:1]", 4433, "[2001:0:0:1::1]",
         "RFC 5952: the longest run of zero groups is compressed")
accepted("address_ipv6_tie", "[2001:db8:0:0:1:0:0:1]", 4433, "[2001:db8::1:0:0:1]",
         "RFC 5952: of two equally long zero runs the first is compressed")
accepted("address_ipv6_single_zero", "[2001:db8:0:1:1:1:1:1]", 4433, "[2001:db8:0:1:1:1:1:1]",
         "RFC 5952: a single zero group is not compressed")
accepted("address_ipv6_loopback", "[::1]", 4433, "[::1]", "IPv6 loopback")
accepted("address_ipv6_mapped", "[::ffff:192.0.2.1]", 4433, "[::ffff:192.0.2.1]",
         "IPv4-mapped IPv6 ends in a dotted quad")
accepted("address_ipv6_mapped_hex", "[::ffff:c000:201]", 4433, "[::ffff:192.0.2.1]",
         "IPv4-mapped IPv6 written in hex; canonical form ends in a dotted quad")
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
    ("fail_address_trailing_dot", f"hush://{pin_txt}@relay.example.:1", "trailing dot (an empty label)"),
    ("fail_address_empty_label", f"hush://{pin_txt}@relay..example:1", "empty label"),
    ("fail_address_label_leading_hyphen", f"hush://{pin_txt}@-relay.example:1", "label starts with a hyphen"),
    ("fail_address_label_trailing_hyphen", f"hush://{pin_txt}@relay-.example:1", "label ends with a hyphen"),
    ("fail_address_underscore", f"hush://{pin_txt}@relay_1.example:1", "underscore is not LDH"),
    ("fail_address_label_64", f"hush://{pin_txt}@{'a' * 64}.example:1", "a 64-byte label"),
    ("fail_address_name_254", f"hush://{pin_txt}@{name253}c:1", "a 254-byte name"),
    ("fail_address_non_ascii", f"hush://{pin_txt}@\u0645\u062b\u0627\u0644.example:1", "a U-label: use its A-label (xn--...)"),
    ("fail_address_all_numeric", f"hush://{pin_txt}@1.2.3:1", "all-numeric name that is no IPv4 literal"),
    ("fail_address_ipv4_five_parts", f"hush://{pin_txt}@1.2.3.4.5:1", "five dotted numbers"),
    ("fail_address_ipv4_leading_zero", f"hush://{pin_txt}@192.0.2.01:1", "IPv4 octet with a leading zero"),
    ("fail_address_ipv4_octet_256", f"hush://{pin_txt}@192.0.2.256:1", "IPv4 octet above 255"),
    ("fail_address_ipv4_bracketed", f"hush://{pin_txt}@[192.0.2.1]:1", "IPv4 literal in brackets"),
    ("fail_address_ipv6_zone", f"hush://{pin_txt}@[fe80::1%25eth0]:1", "IPv6 zone identifier"),
    ("fail_address_ipv6_unterminated", f"hush://{pin_txt}@[::1:1", "unterminated IPv6 literal"),
    ("fail_address_port_leading_zero", f"hush://{pin_txt}@a.example:0443", "port with a leading zero"),
    ("fail_address_port_sign", f"hush://{pin_txt}@a.example:+443", "port with a sign"),
    ("fail_address_space", f"hush://{pin_txt}@a.example:443 ", "trailing white space (not trimmed)"),
    ("fail_address_userinfo", f"hush://{pin_txt}@user@a.example:443", "a second '@'"),
    ("fail_address_empty_host", f"hush://{pin_txt}@:443", "empty host"),
]:
    write(name, "address", addr, "error bad_address", note)

# Binary relay addresses (section II.5.1) that a decoder must reject: each is otherwise a
# well-formed pin || port || length || host.
for name, data, err, note in [
    ("fail_binary_address_upper", binary("Relay.example", 4433), "bad_address", "name not in lower case"),
    ("fail_binary_address_ipv6_long", binary("[2001:db8:0:0:0:0:0:1]", 4433), "bad_address", "IPv6 not in RFC 5952 form"),
    ("fail_binary_address_port_zero", binary("a.example", 0), "bad_address", "port 0"),
    ("fail_binary_address_empty_host", binary("", 4433), "bad_address", "host length 0"),
    ("fail_binary_address_unbracketed", binary("::1", 4433), "bad_address", "IPv6 without brackets"),
    ("fail_binary_address_not_utf8", pin + struct.pack(">HB", 4433, 2) + b"\xc3\x28", "bad_address", "host bytes are not text"),
    ("fail_binary_address_truncated", binary("a.example", 4433)[:-1], "address_truncated", "ends inside the host"),
    ("fail_binary_address_no_length", pin + struct.pack(">H", 4433), "address_truncated", "ends before the host length"),
]:
    write(name, "binary_address", data, f"error {err}", note)
accepted_binary = binary("relay.example.org", 4433) + b"\x07\x07"
write("binary_address_trailing", "binary_address", accepted_binary,
      f"address pin={pin.hex()} host=relay.example.org port=4433 rest=0707",
      "a decoder reads one address and returns the bytes after it to the enclosing structure")

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
           f"data stream=1 fin=true len={FRAME_LEN} sha256={sha(ping_frame)}",
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
    ("fail_cell_length_above_frame", cell(0x01, stream=1, length=FRAME_LEN + 1), f"length {FRAME_LEN + 1}"),
    ("fail_cell_length_on_stop", cell(0x03, stream=1, length=1, data=b"\0"), "STOP with a length"),
    ("fail_cell_data_stream_0", cell(0x01, flags=1, stream=0, data=b"x"), "DATA on stream 0"),
    ("fail_cell_close_with_stream", cell(0x04, stream=1), "CLOSE naming a stream"),
    ("fail_cell_empty_without_fin", cell(0x01, stream=1), "empty DATA without FIN"),
    ("fail_cell_code_on_data", cell(0x01, flags=1, stream=1, code=1, data=b"x"), "DATA with a code"),
    ("fail_cell_code_on_pad", cell(0x00, code=1), "PAD with a code"),
    ("fail_cell_padding", cell(0x01, stream=1, data=b"x")[:-1] + b"\x01", "a byte after the data is not zero"),
]:
    write_cell(name, data, "error bad_cell", note)

# Private routing (PROTOCOL.md II.4.2). The relay's certificate key is Ed25519; its pin is
# SHA-256 of the SPKI; its statement signs "hush/v2/forward-key" || pin || X25519 key.
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization

def spki_of(seed):
    k = Ed25519PrivateKey.from_private_bytes(seed)
    return k, k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

def x_public(secret):
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)

cert_key, spki = spki_of(bytes([0x5a]) * 32)
relay_pin = hashlib.sha256(spki).digest()
fwd_secret = bytes((i * 29 + 1) % 256 for i in range(32))
fwd_key = x_public(fwd_secret)
def statement_sig(key, pin=relay_pin, signer=cert_key):
    return signer.sign(b"hush/v2/forward-key" + pin + key)
sig = statement_sig(fwd_key)

def destination_field(host, port, p=relay_pin):
    h = host.encode()
    b = p + struct.pack(">HB", port, len(h)) + h
    return b + b"\0" * (DESTINATION_LEN - len(b))

dest_host = "relay.example.org"
dest = destination_field(dest_host, 4433)
dest_text = f"hush://{base64.urlsafe_b64encode(relay_pin).decode().rstrip('=')}@{dest_host}:4433"

def statement_body(spki_b, key, sig_b):
    return u16(len(spki_b)) + u16(len(sig_b)) + key + spki_b + sig_b

# Sealing one forwarded Deposit.
eph_secret = bytes((i * 53 + 7) % 256 for i in range(32))
eph = x_public(eph_secret)
request_id = "身份".encode() + bytes(range(10))  # any 16 bytes
inner_body = mb + envelope
inner = request_id + bytes([0x02, 0, 0, 0]) + inner_body + b"\0" * (INNER_BODY_LEN - len(inner_body))
assert len(inner) == INNER_REQUEST_LEN
dh = X25519PrivateKey.from_private_bytes(eph_secret).exchange(X25519PublicKey.from_public_bytes(fwd_key))
okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"hush/v2/forward").derive(dh + eph + fwd_key + relay_pin)
req_key, ans_key = okm[:32], okm[32:]
sealed = ChaCha20Poly1305(req_key).encrypt(b"\0" * 12, inner, None)
assert len(sealed) == SEALED_REQUEST_LEN
answer_nonce = bytes(range(0xa0, 0xac))
answer_plain = request_id + bytes([0x82, 0, 0, 0]) + u64(7)
sealed_answer = answer_nonce + ChaCha20Poly1305(ans_key).encrypt(answer_nonce, answer_plain, None)
refused_plain = request_id + bytes([0xff, 0, 0, 0]) + u16(0x0100) + u16(0) + u32(0)
refused_answer = answer_nonce + ChaCha20Poly1305(ans_key).encrypt(answer_nonce, refused_plain, None)

write("request_forward_key", "request", frame(0x0A), "forward_key", "ForwardKey: empty body")
write("request_fetch_forward_key", "request", frame(0x0B, dest), f"fetch_forward_key destination={dest_text}",
      "FetchForwardKey: the destination's binary address, zero-padded to 288 bytes")
write("request_forward", "request", frame(0x0C, dest + eph + sealed),
      f"forward destination={dest_text} ephemeral={eph.hex()} sealed_sha256={sha(sealed)}",
      "Forward: destination (288), ephemeral key (32), sealed request (4181); the largest request")
assert len(frame(0x0C, dest + eph + sealed)) == FRAME_LEN
write("request_deliver", "request", frame(0x0D, eph + sealed),
      f"deliver ephemeral={eph.hex()} sealed_sha256={sha(sealed)}", "Deliver: ephemeral key, sealed request")
write("response_forward_key", "response", frame(0x87, statement_body(spki, fwd_key, sig)),
      f"forward_key spki={spki.hex()} key={fwd_key.hex()} signature={sig.hex()}",
      "ForwardKey: SPKI length, signature length, X25519 key, SPKI, signature")
write("response_forwarded", "response", frame(0x88, sealed_answer), f"forwarded answer={sealed_answer.hex()}",
      "Forwarded: the destination's sealed answer (nonce, ciphertext, tag)")
write("response_error_forward_replay", "response", frame(0xff, u16(0x0503) + u16(0) + u32(0)),
      "error code=0x0503 arg=0", "Error: a replayed ephemeral key")
long_host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
write("request_forward_longest_destination", "request", frame(0x0C, destination_field(long_host, 65535) + eph + sealed),
      f"forward destination=hush://{base64.urlsafe_b64encode(relay_pin).decode().rstrip('=')}@{long_host}:65535 ephemeral={eph.hex()} sealed_sha256={sha(sealed)}",
      "Forward to a 253-byte host fills the frame exactly")
write("fail_forward_destination_padding", "request", frame(0x0C, dest[:-1] + b"\x01" + eph + sealed),
      "error padding_not_zero", "a byte after the destination address inside its field is not zero")
write("fail_forward_destination_port_zero", "request", frame(0x0C, destination_field(dest_host, 0) + eph + sealed),
      "error bad_field", "a destination address the binary form rejects (port 0)")
write("fail_fetch_forward_key_upper_case", "request", frame(0x0B, destination_field("Relay.example.org", 4433)),
      "error bad_field", "a destination host not in canonical form")
write("fail_forward_key_spki_len_0", "response", frame(0x87, u16(0) + u16(64) + fwd_key + sig),
      "error bad_count", "a statement with an empty SPKI")
write("fail_forward_key_signature_len_513", "response", frame(0x87, u16(len(spki)) + u16(513) + fwd_key + spki),
      "error bad_count", "a signature length above 512")
write("fail_forward_key_trailing", "response", frame(0x87, statement_body(spki, fwd_key, sig) + b"\x01"),
      "error padding_not_zero", "a byte after the signature")

def write_forward(name, fields, expect, note):
    with open(os.path.join(HERE, name + ".txt"), "w") as fh:
        fh.write(f"# {note}\n")
        fh.write("direction: forward\n")
        for k, v in fields:
            fh.write(f"{k}: {v.hex()}\n")
        fh.write(f"expect: {expect}\n")

base = [("pin", relay_pin), ("spki", spki), ("key", fwd_key), ("signature", sig)]
seal_fields = base + [("forward_secret", fwd_secret), ("ephemeral_secret", eph_secret),
                      ("request_id", request_id), ("inner", inner), ("sealed", eph + sealed),
                      ("answer_nonce", answer_nonce), ("answer", sealed_answer)]
write_forward("forward_seal_deposit", seal_fields,
              f"forward inner=deposit mailbox={mb.hex()} envelope_sha256={sha(envelope)} answer=deposited id=7",
              "a Deposit sealed to a verified forwarding key, opened by the relay, and its sealed answer")
write_forward("forward_seal_refused", seal_fields[:-1] + [("answer", refused_answer)],
              f"forward inner=deposit mailbox={mb.hex()} envelope_sha256={sha(envelope)} answer=error code=0x0100 arg=0",
              "the same request answered MailboxFull, sealed")
other_key, other_spki = spki_of(bytes([0x6b]) * 32)
substitute = x_public(bytes([0x77]) * 32)
for name, fields, note in [
    ("fail_forward_statement_other_relay", [("pin", relay_pin), ("spki", other_spki), ("key", fwd_key),
      ("signature", statement_sig(fwd_key, signer=other_key))],
     "a statement from another relay: its SPKI does not hash to the pin"),
    ("fail_forward_statement_substituted_key", [("pin", relay_pin), ("spki", spki), ("key", substitute), ("signature", sig)],
     "a relay on the way swapped the X25519 key, keeping the destination's signature"),
    ("fail_forward_statement_signed_for_other_pin", [("pin", relay_pin), ("spki", spki), ("key", fwd_key),
      ("signature", statement_sig(fwd_key, pin=hashlib.sha256(other_spki).digest()))],
     "the signature covers another pin"),
    ("fail_forward_statement_bad_signature", [("pin", relay_pin), ("spki", spki), ("key", fwd_key),
      ("signature", sig[:-1] + bytes([sig[-1] ^ 1]))], "one bit of the signature flipped"),
]:
    write_forward(name, fields, "error key_statement", note)
tampered = bytearray(eph + sealed)
tampered[100] ^= 0x01
write_forward("fail_forward_sealed_tampered", base + [("forward_secret", fwd_secret), ("sealed", bytes(tampered))],
              "error unsealable", "one ciphertext bit flipped: the relay cannot open it")
write_forward("fail_forward_sealed_wrong_relay", base + [("forward_secret", bytes([0x01]) * 32), ("sealed", eph + sealed)],
              "error unsealable", "a relay with another forwarding key cannot open it")

# Forwarded chunk requests (PROTOCOL.md II.4.4): ForwardChunk 0x13, DeliverChunk 0x14,
# ChunkForwarded 0x93; the inner chunk request and answer sealed under four keys from one
# exchange, the chunk after a put (or a get's answer) sealed with its tag inside the frame.
def chacha(key, nonce, data):
    out = ChaCha20Poly1305(key).encrypt(nonce, data, None)
    return out[:-16], out[-16:]

chunk_pattern = "分块 ملف 📦 chunk!".encode()[:32].ljust(32, b"~")
assert len(chunk_pattern) == 32
pattern_chunk = chunk_pattern * (CHUNK_LEN // 32)
assert len(pattern_chunk) == CHUNK_LEN

def chunk_keys(eph_s):
    e_pub = x_public(eph_s)
    dh = X25519PrivateKey.from_private_bytes(eph_s).exchange(X25519PublicKey.from_public_bytes(fwd_key))
    okm = HKDF(algorithm=hashes.SHA256(), length=128, salt=None, info=b"hush/v2/forward-chunk").derive(dh + e_pub + fwd_key + relay_pin)
    return e_pub, okm[:32], okm[32:64], okm[64:96], okm[96:]

def seal_chunk_request(eph_s, kind, name, chunk=None):
    e_pub, k_req, k_tr, k_ans, k_atr = chunk_keys(eph_s)
    trailer, ttag = (None, b"\0" * 16)
    if chunk is not None:
        trailer, ttag = chacha(k_tr, b"\0" * 12, chunk)
    inner = bytes([kind, 0, 0, 0]) + name + ttag
    assert len(inner) == 52
    ct, tag = chacha(k_req, b"\0" * 12, inner)
    flag = b"\x01" if chunk is not None else b"\x00"
    return e_pub + flag + ct + tag, inner, trailer, (k_ans, k_atr)

def seal_chunk_answer(keys, nonce, kind, body8=b"\0" * 8, chunk=None):
    k_ans, k_atr = keys
    trailer, ttag = (None, b"\0" * 16)
    if chunk is not None:
        trailer, ttag = chacha(k_atr, nonce, chunk)
    plain = bytes([kind, 0, 0, 0]) + body8 + ttag
    assert len(plain) == 28
    ct, tag = chacha(k_ans, nonce, plain)
    return nonce + ct + tag, plain, trailer

put_eph = bytes((i * 11 + 5) % 256 for i in range(32))
get_eph = bytes((i * 13 + 9) % 256 for i in range(32))
put_sealed, put_inner, put_trailer, put_keys = seal_chunk_request(put_eph, 0x10, chunk_id, pattern_chunk)
get_sealed, get_inner, _, get_keys = seal_chunk_request(get_eph, 0x11, chunk_secret)
chunk_nonce = bytes(range(0xb0, 0xbc))
put_answer, put_answer_plain, _ = seal_chunk_answer(put_keys, chunk_nonce, 0x90, b"\x01" + b"\0" * 7)
get_answer, get_answer_plain, get_answer_trailer = seal_chunk_answer(get_keys, chunk_nonce, 0x91, chunk=pattern_chunk)
assert len(put_sealed) == 32 + 1 + 68 and len(put_answer) == 56

write("request_forward_chunk", "request", frame(0x13, dest + put_sealed),
      f"forward_chunk destination={dest_text} ephemeral={put_sealed[:32].hex()} trailer=1 sealed_sha256={sha(put_sealed[33:])}",
      "ForwardChunk of a put: destination (288), ephemeral key (32), trailer flag 1, sealed chunk request (68); CHUNK_LEN bytes of sealed chunk follow the frame")
write("request_forward_chunk_get", "request", frame(0x13, dest + get_sealed),
      f"forward_chunk destination={dest_text} ephemeral={get_sealed[:32].hex()} trailer=0 sealed_sha256={sha(get_sealed[33:])}",
      "ForwardChunk of a get: trailer flag 0, nothing follows the frame")
write("request_deliver_chunk", "request", frame(0x14, put_sealed),
      f"deliver_chunk ephemeral={put_sealed[:32].hex()} trailer=1 sealed_sha256={sha(put_sealed[33:])}",
      "DeliverChunk: ephemeral key, trailer flag, sealed chunk request")
write("response_chunk_forwarded", "response", frame(0x93, b"\x01" + get_answer),
      f"chunk_forwarded trailer=1 answer={get_answer.hex()}",
      "ChunkForwarded of a get that found its chunk: trailer flag 1, sealed answer (56); CHUNK_LEN bytes of sealed chunk follow")
write("response_chunk_forwarded_no_trailer", "response", frame(0x93, b"\x00" + put_answer),
      f"chunk_forwarded trailer=0 answer={put_answer.hex()}",
      "ChunkForwarded of a put: trailer flag 0")
write("fail_forward_chunk_trailer_flag_2", "request", frame(0x13, dest + put_sealed[:32] + b"\x02" + put_sealed[33:]),
      "error bad_field", "a trailer flag other than 0 or 1")
write("fail_deliver_chunk_padding", "request", frame(0x14, put_sealed + b"\x01"),
      "error padding_not_zero", "a byte after the sealed chunk request")
write("fail_chunk_forwarded_trailer_flag_2", "response", frame(0x93, b"\x02" + put_answer),
      "error bad_field", "a trailer flag other than 0 or 1")
write("fail_forward_chunk_destination_port_zero", "request", frame(0x13, destination_field(dest_host, 0) + put_sealed),
      "error bad_field", "a destination address the binary form rejects (port 0)")

def write_forward_chunk(name, fields, expect, note):
    with open(os.path.join(HERE, name + ".txt"), "w") as fh:
        fh.write(f"# {note}\n")
        fh.write("direction: forward_chunk\n")
        for k, v in fields:
            fh.write(f"{k}: {v if isinstance(v, str) else v.hex()}\n")
        fh.write(f"expect: {expect}\n")

cbase = base + [("forward_secret", fwd_secret), ("chunk_pattern", chunk_pattern)]
write_forward_chunk("forward_chunk_seal_put", cbase + [
    ("ephemeral_secret", put_eph), ("inner", put_inner), ("sealed", put_sealed),
    ("sealed_trailer_sha256", sha(put_trailer)), ("answer_nonce", chunk_nonce),
    ("answer_inner", put_answer_plain), ("answer", put_answer)],
    f"forward_chunk inner=put_chunk id={chunk_id.hex()} chunk_sha256={sha(pattern_chunk)} answer=chunk_stored fresh=true",
    "a PutChunk and its chunk sealed to a verified forwarding key, opened by the destination, and its sealed answer")
write_forward_chunk("forward_chunk_seal_get", cbase + [
    ("ephemeral_secret", get_eph), ("inner", get_inner), ("sealed", get_sealed),
    ("answer_nonce", chunk_nonce), ("answer_inner", get_answer_plain), ("answer", get_answer),
    ("sealed_answer_trailer_sha256", sha(get_answer_trailer))],
    f"forward_chunk inner=get_chunk secret={chunk_secret.hex()} answer=chunk chunk_sha256={sha(pattern_chunk)}",
    "a GetChunk sealed, and the answer with the chunk (chunk_pattern repeated to CHUNK_LEN) sealed after it")
write_forward_chunk("fail_forward_chunk_trailer_flipped", cbase + [
    ("ephemeral_secret", put_eph), ("sealed", put_sealed),
    ("sealed_trailer_sha256", sha(put_trailer)), ("flip_trailer_byte", "131072")],
    "error unsealable", "the put's sealed chunk with bit 0 of byte 131072 flipped on the way: its tag, inside the sealed request, does not match")
bent = bytearray(put_sealed)
bent[40] ^= 0x01
write_forward_chunk("fail_forward_chunk_sealed_tampered", cbase + [("sealed", bytes(bent))],
    "error unsealable", "one bit of the sealed chunk request flipped")
write_forward_chunk("fail_forward_chunk_flag_mismatch", cbase + [("sealed", put_sealed[:32] + b"\x00" + put_sealed[33:])],
    "error unsealable", "a put whose trailer flag says no chunk follows")
write_forward_chunk("fail_forward_chunk_wrong_relay", base + [("forward_secret", bytes([0x01]) * 32), ("chunk_pattern", chunk_pattern), ("sealed", put_sealed)],
    "error unsealable", "a relay with another forwarding key cannot open it")
