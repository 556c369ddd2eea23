"""Email addresses as mail carries them: internationalised domains in IDNA, and whether an
address can only travel with SMTPUTF8."""

from __future__ import annotations

from newsletter.config import ascii_domain
from newsletter.errors import InvalidInput


def smtp_address(address: str) -> str:
    """The address as mail carries it: the domain in IDNA (`user@bücher.example` →
    `user@xn--bcher-kva.example`), the local part as it is. The result is ASCII unless the
    local part is not; only a server that offers SMTPUTF8 (RFC 6531) takes that one.

    Raises InvalidInput when the domain has no IDNA form.
    """
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        raise InvalidInput(f"not an email address: {address[:80]!r}")
    try:
        return f"{local}@{ascii_domain(domain)}"
    except ValueError as error:
        raise InvalidInput(f"the domain of {address[:80]!r} has no IDNA form: {error}") from None


def needs_smtputf8(address: str) -> bool:
    """Whether an address (as `smtp_address` gives it) can only travel with SMTPUTF8."""
    return not address.isascii()
