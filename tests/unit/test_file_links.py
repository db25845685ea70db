"""Signed links to our files (app.storage.signing): their shape, their expiry rounded up to the
hour, and every way a link can fail its check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from app.db.settings import SharedSecret
from app.storage.signing import FILE_LINK_SECRET, FileLinks, signature

BASE = "https://gateway.example/"
SECRET = "a-test-secret-shared-by-every-instance"
NOW = 1_750_000_123.25  # a moment that is not on an hour boundary
TTL = 7 * 24 * 3600.0
OBJECT_ID = str(uuid.UUID(int=0x1234))


def links(secret: str | None = SECRET, *, base: str = BASE, ttl: float = TTL) -> FileLinks:
    # A configured SharedSecret has its value at once: no database is involved.
    return FileLinks(base, SharedSecret(FILE_LINK_SECRET, secret), ttl)


def parts(url: str) -> tuple[str, str, str, str]:
    """``(origin, path, exp, sig)`` of a link."""
    split = urlsplit(url)
    query = parse_qs(split.query, strict_parsing=True)
    assert set(query) == {"exp", "sig"}, url
    assert len(query["exp"]) == 1 and len(query["sig"]) == 1
    return f"{split.scheme}://{split.netloc}", split.path, query["exp"][0], query["sig"][0]


def test_the_url_names_the_file_under_the_public_base_url() -> None:
    url = links().url(OBJECT_ID, "result-1.png", now=NOW)
    origin, path, exp, sig = parts(url)
    assert url.startswith(f"https://gateway.example/files/{OBJECT_ID}/result-1.png?exp=")
    assert origin == "https://gateway.example" and path == f"/files/{OBJECT_ID}/result-1.png"
    assert exp.isdigit()
    assert sig == signature(SECRET, OBJECT_ID, "result-1.png", int(exp))


@pytest.mark.parametrize("base", ["https://gw.example", "https://gw.example/", "https://gw.example///"])
def test_the_base_url_may_end_with_slashes(base: str) -> None:
    url = links(base=base).url(OBJECT_ID, "a.png", now=NOW)
    assert url.startswith(f"https://gw.example/files/{OBJECT_ID}/a.png?")


def test_a_base_url_with_a_path_keeps_it() -> None:
    url = links(base="https://example.com/gateway/").url(OBJECT_ID, "a.png", now=NOW)
    assert url.startswith(f"https://example.com/gateway/files/{OBJECT_ID}/a.png?")


def test_a_name_with_spaces_and_symbols_is_quoted_but_signed_as_it_is() -> None:
    file_links = links()
    name = "my holiday #1?.png"
    url = file_links.url(OBJECT_ID, name, now=NOW)
    _, path, exp, sig = parts(url)
    assert path == f"/files/{OBJECT_ID}/{quote(name)}"
    assert "my%20holiday%20%231%3F.png" in url and " " not in url
    # The server sees the decoded name; the signature covers that, not the quoted form.
    assert file_links.check(OBJECT_ID, name, exp, sig, now=NOW) is None
    assert file_links.check(OBJECT_ID, quote(name), exp, sig, now=NOW) == "invalid"


def test_the_expiry_is_rounded_up_to_the_hour_and_at_least_the_ttl() -> None:
    for ttl in (1.0, 600.0, 3600.0, 86_400.0, TTL):
        for now in (NOW, 1_750_000_000.0, 1_749_999_600.0, 1_749_999_599.999):
            _, _, exp, _ = parts(links(ttl=ttl).url(OBJECT_ID, "a.png", now=now))
            expires = int(exp)
            assert expires % 3600 == 0, (ttl, now)
            assert now + ttl <= expires < now + ttl + 3600, (ttl, now, expires)


def test_an_expiry_already_on_the_hour_is_not_pushed_further() -> None:
    on_the_hour = 1_749_996_000.0  # a multiple of 3600
    assert on_the_hour % 3600 == 0
    _, _, exp, _ = parts(links(ttl=3600).url(OBJECT_ID, "a.png", now=on_the_hour - 3600))
    assert int(exp) == on_the_hour


def test_links_handed_out_within_the_hour_are_the_same() -> None:
    file_links = links(ttl=3600)
    hour = 1_749_996_000.0
    first = file_links.url(OBJECT_ID, "a.png", now=hour + 1)
    assert file_links.url(OBJECT_ID, "a.png", now=hour + 1800) == first
    assert file_links.url(OBJECT_ID, "a.png", now=hour + 3599.5) == first
    assert file_links.url(OBJECT_ID, "a.png", now=hour + 3601) != first


def test_a_fresh_link_checks_until_its_expiry_and_is_expired_after() -> None:
    file_links = links()
    _, _, exp, sig = parts(file_links.url(OBJECT_ID, "a.png", now=NOW))
    expires = int(exp)
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=NOW) is None
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=expires - 1) is None
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=expires) is None
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=expires + 0.5) == "expired"
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=expires + 365 * 86_400) == "expired"
    # Without ``now=`` it is checked against the clock: a link minted now is good now.
    _, _, exp_now, sig_now = parts(file_links.url(OBJECT_ID, "a.png"))
    assert file_links.check(OBJECT_ID, "a.png", exp_now, sig_now) is None


def test_expires_in_counts_down_to_the_expiry() -> None:
    file_links = links()
    _, _, exp, _ = parts(file_links.url(OBJECT_ID, "a.png", now=NOW))
    assert file_links.expires_in(exp, now=int(exp) - 90) == 90
    assert file_links.expires_in(exp, now=int(exp) + 90) == 0.0
    assert file_links.expires_in("not-a-number", now=NOW) == 0.0
    assert file_links.expires_in(None, now=NOW) == 0.0


def forge(sig: str) -> str:
    """The same signature with its last characters changed."""
    return sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")


def test_a_forged_or_misapplied_signature_is_invalid() -> None:
    file_links = links()
    _, _, exp, sig = parts(file_links.url(OBJECT_ID, "result-1.png", now=NOW))
    other_id = str(uuid.UUID(int=0x5678))
    assert file_links.check(OBJECT_ID, "result-1.png", exp, forge(sig), now=NOW) == "invalid"
    assert file_links.check(OBJECT_ID, "result-1.png", exp, sig[:-1], now=NOW) == "invalid"
    assert file_links.check(OBJECT_ID, "result-1.png", exp, sig + "A", now=NOW) == "invalid"
    assert file_links.check(OBJECT_ID, "result-1.png", exp, "é" + sig[1:], now=NOW) == "invalid"
    assert file_links.check(OBJECT_ID, "result-2.png", exp, sig, now=NOW) == "invalid"  # another name
    assert file_links.check(other_id, "result-1.png", exp, sig, now=NOW) == "invalid"  # another id
    # The expiry is signed too: it cannot be pushed later (nor earlier).
    later, earlier = str(int(exp) + 3600), str(int(exp) - 3600)
    assert file_links.check(OBJECT_ID, "result-1.png", later, sig, now=NOW) == "invalid"
    assert file_links.check(OBJECT_ID, "result-1.png", earlier, sig, now=NOW) == "invalid"


def test_a_forged_signature_is_invalid_even_when_expired() -> None:
    """A bad signature is not told apart from a good one by the expiry it claims."""
    file_links = links()
    _, _, exp, sig = parts(file_links.url(OBJECT_ID, "a.png", now=NOW))
    assert file_links.check(OBJECT_ID, "a.png", exp, forge(sig), now=int(exp) + 10) == "invalid"


@pytest.mark.parametrize("exp", ["soon", "1.5e9", "0x10", "12 34", "1750003600.0", "-"])
def test_an_expiry_that_is_not_an_integer_is_invalid(exp: str) -> None:
    file_links = links()
    _, _, _, sig = parts(file_links.url(OBJECT_ID, "a.png", now=NOW))
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=NOW) == "invalid"
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=0) == "invalid"


def test_an_absent_exp_or_sig_is_missing() -> None:
    file_links = links()
    _, _, exp, sig = parts(file_links.url(OBJECT_ID, "a.png", now=NOW))
    assert file_links.check(OBJECT_ID, "a.png", None, sig, now=NOW) == "missing"
    assert file_links.check(OBJECT_ID, "a.png", exp, None, now=NOW) == "missing"
    assert file_links.check(OBJECT_ID, "a.png", exp, "", now=NOW) == "missing"
    assert file_links.check(OBJECT_ID, "a.png", "", sig, now=NOW) == "missing"
    assert file_links.check(OBJECT_ID, "a.png", None, None, now=NOW) == "missing"


def test_a_link_does_not_verify_under_another_secret() -> None:
    _, _, exp, sig = parts(links().url(OBJECT_ID, "a.png", now=NOW))
    assert links(SECRET).check(OBJECT_ID, "a.png", exp, sig, now=NOW) is None
    assert links("another-secret").check(OBJECT_ID, "a.png", exp, sig, now=NOW) == "invalid"
    other_sig = parts(links("another-secret").url(OBJECT_ID, "a.png", now=NOW))[3]
    assert other_sig != sig


def test_without_a_loaded_secret_no_link_is_made_and_none_checks() -> None:
    unloaded = links(None)
    with pytest.raises(RuntimeError, match="not loaded"):
        unloaded.url(OBJECT_ID, "a.png", now=NOW)
    _, _, exp, sig = parts(links().url(OBJECT_ID, "a.png", now=NOW))
    assert unloaded.check(OBJECT_ID, "a.png", exp, sig, now=NOW) == "invalid"
    assert unloaded.check(OBJECT_ID, "a.png", None, sig, now=NOW) == "missing"


def test_the_secret_is_read_when_used_so_a_later_load_takes_effect() -> None:
    secret = SharedSecret(FILE_LINK_SECRET, None)
    file_links = FileLinks(BASE, secret, TTL)
    secret.value = SECRET  # what SharedSecret.load does once the database is ready
    _, _, exp, sig = parts(file_links.url(OBJECT_ID, "a.png", now=NOW))
    assert sig == signature(SECRET, OBJECT_ID, "a.png", int(exp))
    assert file_links.check(OBJECT_ID, "a.png", exp, sig, now=NOW) is None


def test_signature_is_an_unpadded_urlsafe_hmac_sha256_of_the_path_and_expiry() -> None:
    sig = signature(SECRET, OBJECT_ID, "a.png", 1_750_000_000)
    digest = hmac.new(SECRET.encode(), f"{OBJECT_ID}/a.png\n1750000000".encode(), hashlib.sha256).digest()
    assert sig == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert len(sig) == 43 and "=" not in sig and "+" not in sig and "/" not in sig
    assert signature(SECRET, OBJECT_ID, "a.png", 1_750_000_000) == sig  # deterministic
    assert signature(SECRET, OBJECT_ID, "a.png", 1_750_003_600) != sig
    assert signature(SECRET, OBJECT_ID, "b.png", 1_750_000_000) != sig
    assert signature("other", OBJECT_ID, "a.png", 1_750_000_000) != sig
