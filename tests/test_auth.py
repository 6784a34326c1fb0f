"""End-user JWTs and backend API keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tidings.auth import Authenticator, bearer
from tidings.errors import Unauthenticated

SECRET = "s" * 64


def hs256(claims: dict, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def valid_claims(**extra: object) -> dict:
    return {"sub": "alice", "exp": int(time.time()) + 60, **extra}


def pem_pair(private_key) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    private = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_a_valid_hs256_token_gives_the_user_roles_and_topics() -> None:
    auth = Authenticator(secret=SECRET)
    who = auth.verify_token(hs256(valid_claims(roles=["admin"], topics=["logs.*"])))
    assert who.user == "alice"
    assert who.roles == frozenset({"admin"})
    assert who.topics == ("logs.*",)
    assert who.expires_at is not None


@pytest.mark.parametrize(
    ("token_factory", "reason"),
    [
        (lambda: hs256(valid_claims(), "another-secret-entirely-000000000"), "bad signature"),
        (lambda: hs256({"sub": "alice", "exp": int(time.time()) - 60}), "expired"),
        (lambda: hs256({"sub": "alice"}), "no exp"),
        (lambda: hs256({"exp": int(time.time()) + 60}), "no sub"),
        (lambda: hs256(valid_claims(sub="")), "empty sub"),
        (lambda: hs256(valid_claims(roles="admin")), "roles not a list"),
        (lambda: hs256(valid_claims(sub="al\x00ice")), "U+0000 in sub"),
        (lambda: hs256(valid_claims(roles=["ad\x00min"])), "U+0000 in a role"),
        (lambda: jwt.encode(valid_claims(), SECRET, algorithm="HS512"), "unexpected algorithm"),
        (lambda: "not.a.token", "garbage"),
        (lambda: "", "empty"),
    ],
)
def test_bad_tokens_are_rejected(token_factory, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unauthenticated):
        Authenticator(secret=SECRET).verify_token(token_factory())


def test_alg_none_is_rejected() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(
        f'{{"sub":"alice","exp":{int(time.time()) + 60}}}'.encode()
    ).rstrip(b"=")
    with pytest.raises(Unauthenticated):
        Authenticator(secret=SECRET).verify_token(f"{header}.{body.decode()}.")


def test_the_token_expiry_has_a_small_leeway() -> None:
    auth = Authenticator(secret=SECRET, leeway=10)
    auth.verify_token(hs256({"sub": "alice", "exp": int(time.time()) - 3}))


def test_audience_and_issuer_are_checked_when_configured() -> None:
    auth = Authenticator(secret=SECRET, audience="tidings", issuer="https://app.test")
    good = hs256(valid_claims(aud="tidings", iss="https://app.test"))
    assert auth.verify_token(good).user == "alice"
    for claims in (valid_claims(aud="other", iss="https://app.test"), valid_claims(aud="tidings")):
        with pytest.raises(Unauthenticated):
            auth.verify_token(hs256(claims))


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ],
)
def test_public_key_tokens(key, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    private, public = pem_pair(key)
    auth = Authenticator(secret=None, public_key=public)
    assert (
        auth.verify_token(jwt.encode(valid_claims(), private, algorithm=algorithm)).user == "alice"
    )


def test_a_public_key_cannot_be_used_as_an_hmac_secret() -> None:
    _, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    auth = Authenticator(secret=None, public_key=public)
    forged = jwt.encode(valid_claims(), "whatever-secret-of-sufficient-length", algorithm="HS256")
    with pytest.raises(Unauthenticated):
        auth.verify_token(forged)


@pytest.mark.parametrize("alg", [["HS256"], {"HS256": 1}, 5, None], ids=repr)
def test_a_header_alg_that_is_not_a_name_is_refused_with_a_public_key_set(alg: object) -> None:
    """With a public key, the header picks the key: a list or a number there is a bad
    token (401), not an error of ours."""
    _, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    auth = Authenticator(secret=SECRET, public_key=public)

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    token = f"{part({'alg': alg, 'typ': 'JWT'})}.{part(valid_claims())}.c2ln"
    with pytest.raises(Unauthenticated):
        auth.verify_token(token)


def test_algorithms_come_from_configuration_only() -> None:
    auth = Authenticator(secret=SECRET, algorithms=["HS512"])
    with pytest.raises(Unauthenticated):
        auth.verify_token(hs256(valid_claims()))
    token = jwt.encode(valid_claims(), SECRET, algorithm="HS512")
    assert auth.verify_token(token).user == "alice"


def test_several_api_keys_are_accepted_and_identified_apart() -> None:
    auth = Authenticator(secret=SECRET, api_keys=["old-key", "new-key"])
    assert auth.api_key_id("old-key") != auth.api_key_id("new-key")
    for wrong in ("", None, "old-ke", "new-key "):
        with pytest.raises(Unauthenticated):
            auth.api_key_id(wrong)


def test_bearer_header_parsing() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer abc") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None


def test_an_asymmetric_key_is_never_taken_as_an_hmac_secret() -> None:
    """The key checks PyJWT makes run once per key here, but they still run."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    segments = [
        base64.urlsafe_b64encode(orjson.dumps(part)).rstrip(b"=")
        for part in ({"alg": "HS256", "typ": "JWT"}, valid_claims())
    ]
    signing_input = b".".join(segments)
    signature = hmac.new(pem.encode(), signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
    auth = Authenticator(secret=pem, algorithms=["HS256"])
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            auth.verify_token(token)
