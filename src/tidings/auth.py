"""End-user JWTs and backend API keys.

The accepted algorithms come from configuration, never from the token: the header's
``alg`` only selects among them, and picks the key of its family (HMAC secret, or the
PEM public key for RSA/EC), so a public key can never be used as an HMAC secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from tidings.errors import Unauthenticated
from tidings.models import Principal
from tidings.settings import Settings

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_TOKEN_LENGTH = 8192


class _KeyCheckedOnce(HMACAlgorithm):
    """HMAC whose key checks run once per key, not on every token.

    PyJWT checks an HMAC key on every decode (not a PEM, SSH or DER public key, not a
    JWK: its defence against algorithm confusion), by trying to parse it as each: most
    of what verifying a token cost on connect. The key is our configured secret, so its
    verdict never changes.
    """

    def __init__(self, hash_alg: Any) -> None:
        super().__init__(hash_alg)
        self._checked: dict[str | bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        found = self._checked.get(key)
        if found is None:
            found = super().prepare_key(key)  # raises for a key unfit for HMAC
            if len(self._checked) < 4:
                self._checked[key] = found
        return found


def _decoder() -> jwt.PyJWT:
    """A PyJWT decoder of its own whose HMAC algorithms check their key once."""
    decoder = jwt.PyJWT()
    # PyJWT registers algorithms per PyJWS; a PyJWT's own PyJWS has no public accessor.
    jws: jwt.PyJWS = decoder._jws
    for name, hash_alg in (
        ("HS256", HMACAlgorithm.SHA256),
        ("HS384", HMACAlgorithm.SHA384),
        ("HS512", HMACAlgorithm.SHA512),
    ):
        jws.unregister_algorithm(name)
        jws.register_algorithm(name, _KeyCheckedOnce(hash_alg))
    return decoder


class Authenticator:
    def __init__(
        self,
        *,
        secret: str | None,
        public_key: str | None = None,
        algorithms: list[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: int = 10,
        api_keys: list[str] | None = None,
    ) -> None:
        self.secret = secret
        self.public_key = _load_pem(public_key) if public_key else None
        self.algorithms = frozenset(algorithms or _default_algorithms(secret, self.public_key))
        self._secret_only = (
            sorted(self.algorithms & HMAC_ALGORITHMS) if self.public_key is None else None
        )
        """With no public key, the accepted HMAC algorithms: the header needs no first look."""
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self._api_keys = [key.encode() for key in api_keys or []]
        self._jwt = _decoder()

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(
            secret=settings.jwt_secret,
            public_key=settings.jwt_public_key,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway,
            api_keys=settings.api_keys,
        )

    def verify_token(self, token: str) -> Principal:
        """Decode an end-user JWT or raise :class:`Unauthenticated` saying why."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("missing or oversized token", code="invalid_token")
        key: Any
        algorithms: list[str]
        try:
            if self._secret_only is not None:  # PyJWT checks the header's alg against these
                key, algorithms = self.secret, self._secret_only
            else:
                algorithm = self._accepted(jwt.get_unverified_header(token).get("alg"))
                key, algorithms = self._key_for(algorithm), [algorithm]
            claims = self._jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", code="token_expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}", code="invalid_token") from None
        return _principal(claims)

    def _accepted(self, algorithm: object) -> str:
        """The header's ``alg`` if configured; anything else (a list, a number) is refused."""
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted")
        return algorithm

    def _key_for(self, algorithm: str) -> Any:
        key = self.secret if algorithm in HMAC_ALGORITHMS else self.public_key
        if key is None:
            raise jwt.InvalidAlgorithmError(f"no key configured for {algorithm}")
        return key

    def api_key_id(self, presented: str | None) -> str:
        """Return a stable id for a valid API key (for idempotency scoping), else raise."""
        if not presented:
            raise Unauthenticated("an API key is required: Authorization: Bearer <key>")
        candidate = presented.encode()
        valid = False
        for key in self._api_keys:  # compare against every key: no early exit
            valid |= hmac.compare_digest(candidate, key)
        if not valid:
            raise Unauthenticated("invalid API key", code="invalid_api_key")
        return hashlib.sha256(candidate).hexdigest()[:32]

    def mint(
        self,
        user: str,
        *,
        roles: list[str] | None = None,
        ttl: int = 3600,
        topics: list[str] | None = None,
        locale: str | None = None,
        publish: list[str] | None = None,
    ) -> str:
        """A development token signed with the HS256 secret."""
        if self.secret is None:
            raise RuntimeError("minting tokens needs TIDINGS_JWT_SECRET")
        claims: dict[str, Any] = {"sub": user, "exp": int(time.time()) + ttl}
        if roles:
            claims["roles"] = roles
        if topics:
            claims["topics"] = topics
        if publish:
            claims["publish"] = publish
        if locale:
            claims["locale"] = locale
        return jwt.encode(claims, self.secret, algorithm="HS256")


def bearer(header: str | None) -> str | None:
    """The credential in an ``Authorization: Bearer <x>`` header, if any."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _principal(claims: dict[str, Any]) -> Principal:
    user = claims.get("sub")
    if not isinstance(user, str) or not user or len(user) > 200 or "\x00" in user:
        raise Unauthenticated(
            "`sub` must be a non-empty string of at most 200 characters without U+0000",
            code="invalid_token",
        )
    roles = claims.get("roles") or []
    topics = claims.get("topics") or []
    publish = claims.get("publish") or []
    if not _strings(roles) or not _strings(topics) or not _strings(publish):
        raise Unauthenticated(
            "`roles`, `topics` and `publish` must be lists of strings", code="invalid_token"
        )
    locale = claims.get("locale")
    if locale is not None and not (isinstance(locale, str) and 0 < len(locale) <= 35):
        raise Unauthenticated(
            "`locale` must be a language tag (`de-AT`) of at most 35 characters",
            code="invalid_token",
        )
    return Principal(
        user=user,
        roles=frozenset(roles),
        topics=tuple(topics),
        publish=tuple(publish),
        expires_at=float(claims["exp"]),
        locale=locale,
    )


def _strings(value: Any) -> bool:
    """A list of non-empty strings the store can keep (PostgreSQL text holds no U+0000)."""
    return isinstance(value, list) and all(
        isinstance(v, str) and v and "\x00" not in v for v in value
    )


def _default_algorithms(secret: str | None, public_key: Any) -> list[str]:
    algorithms = ["HS256"] if secret else []
    if public_key is not None:
        algorithms += ["RS256", "ES256"]
    return algorithms


def _load_pem(value: str) -> str:
    if "-----BEGIN" in value:
        return value
    return Path(value).read_text()
