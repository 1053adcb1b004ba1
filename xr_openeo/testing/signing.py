"""URL signing like openeo-python-driver's ``UrlSigner``: HMAC over (job, user, target, expiry)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from .clock import Clock


class UrlSigner:
    """Signs and checks ``…/{user_b64}/{signature}/…?expires=<unix seconds>`` URLs.

    ``clock`` (default :func:`time.time`) decides both when a new signature expires and whether a
    presented one has: a test moves a :class:`~xr_openeo.testing.clock.ManualClock` instead of sleeping.
    """

    def __init__(self, secret: bytes, clock: Clock = time.time) -> None:
        self._secret = secret
        self._clock = clock

    @staticmethod
    def encode_user(user: str) -> str:
        return base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")

    @staticmethod
    def decode_user(user_b64: str) -> str:
        return base64.urlsafe_b64decode(user_b64 + "=" * (-len(user_b64) % 4)).decode()

    def signature(self, job_id: str, user: str, target: str, expires: int) -> str:
        message = f"{job_id}|{user}|{target}|{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def expiry(self, validity: float, now: float | None = None) -> int:
        """The ``expires`` value of a signature made now (or at ``now``) that lasts ``validity`` seconds."""
        return int((self._clock() if now is None else now) + validity)

    def expired(self, expires: int) -> bool:
        """Whether a signature with this ``expires`` value has expired by the signer's clock."""
        return self._clock() > expires

    def check(self, job_id: str, user_b64: str, signature: str, target: str, expires: str | None) -> tuple[str, str]:
        """``(user, problem)`` where problem is ``""`` (valid), ``"invalid"`` or ``"expired"``."""
        try:
            user = self.decode_user(user_b64)
            exp = int(expires) if expires is not None else None
        except (ValueError, UnicodeDecodeError):
            return "", "invalid"
        if exp is None or not hmac.compare_digest(self.signature(job_id, user, target, exp), signature):
            return user, "invalid"
        if self.expired(exp):
            return user, "expired"
        return user, ""
