"""Envelope encryption for forgotten content, and the crypto-shredding that destroys it.

Each forget request's plaintext (subject, texts, QA pairs, literals) is sealed with its own random
256-bit data key (AES-GCM); the data key is stored only wrapped by the master key (AES-GCM again). The
ledger keeps the ciphertext and the wrapped key side by side: deleting the wrapped key (`Ledger.shred`)
leaves ciphertext no one can open, whatever backups or free pages still hold it.

The master key comes from `LETHE_MASTER_KEY` (urlsafe base64 of 32 bytes; a Kubernetes Secret mounted
as that variable), else from `$LETHE_HOME/keys/master.key` (created on first use, 0600). Rotation: a
new current key plus the old ones as previous keys (`LETHE_MASTER_KEYS_PREVIOUS`, comma-separated, or
further lines of the key file), then `lethe vault rotate` (or `Ledger.rewrap`) re-wraps every data key
and secret under the current one; after that the old keys can be dropped. See docs/data.md.

>>> vault = Vault(Vault.new_key())
>>> sealed = vault.seal(b"text", aad=b"forget-1")
>>> vault.open(sealed, aad=b"forget-1")
b'text'
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_ENV = "LETHE_MASTER_KEY"
PREVIOUS_KEYS_ENV = "LETHE_MASTER_KEYS_PREVIOUS"
MASTER_KEY_FILE = Path("keys") / "master.key"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class VaultError(Exception):
    """A sealed value that cannot be opened: its key was shredded, is unknown here, or it was tampered with."""


@dataclass(frozen=True)
class Sealed:
    """A value sealed with its own data key, and that data key wrapped by master key `key_id`."""

    key_id: str
    wrapped_key: bytes
    ciphertext: bytes


def key_id(key: bytes) -> str:
    """A master key's public name (a hash: says which key, reveals nothing of it)."""
    return hashlib.sha256(b"lethe.master-key-id\x00" + key).hexdigest()[:16]


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode() + b"=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{where} is not urlsafe base64: {exc}") from None
    if len(key) != _KEY_BYTES:
        raise ValueError(f"{where} must be {_KEY_BYTES} bytes (urlsafe base64), not {len(key)}")
    return key


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise VaultError("sealed value does not open: tampered with, or sealed for another record") from None


class Vault:
    """The master key (and older ones, for rotation) and what it wraps."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        if len(current) != _KEY_BYTES:
            raise ValueError(f"the master key must be {_KEY_BYTES} bytes")
        self.key_id = key_id(current)
        self._keys = {key_id(k): k for k in previous}
        self._keys[self.key_id] = current

    @staticmethod
    def new_key() -> bytes:
        return AESGCM.generate_key(bit_length=8 * _KEY_BYTES)

    @classmethod
    def from_environment(cls, home: str | Path, env: Mapping[str, str] | None = None) -> Vault:
        """The master key from LETHE_MASTER_KEY (plus LETHE_MASTER_KEYS_PREVIOUS), else the key file under
        `home`, created with a fresh key on first use."""
        env = os.environ if env is None else env
        if env.get(MASTER_KEY_ENV):
            previous = [_decode(k, PREVIOUS_KEYS_ENV) for k in env.get(PREVIOUS_KEYS_ENV, "").split(",") if k.strip()]
            return cls(_decode(env[MASTER_KEY_ENV], MASTER_KEY_ENV), previous)
        path = Path(home).expanduser() / MASTER_KEY_FILE
        if not path.exists():
            write_key_file(path, [cls.new_key()], exclusive=True)  # two replicas at once: one key wins
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path} holds no key")
        keys = [_decode(line, str(path)) for line in lines]
        return cls(keys[0], keys[1:])

    def wrap(self, secret: bytes, aad: bytes) -> tuple[str, bytes]:
        return self.key_id, _encrypt(self._keys[self.key_id], secret, aad)

    def unwrap(self, wrapped_by: str, wrapped: bytes, aad: bytes) -> bytes:
        master = self._keys.get(wrapped_by)
        if master is None:
            raise VaultError(f"wrapped by master key {wrapped_by}, which this vault does not have")
        return _decrypt(master, wrapped, aad)

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=8 * _KEY_BYTES)
        wrapped_by, wrapped = self.wrap(data_key, aad)
        return Sealed(wrapped_by, wrapped, _encrypt(data_key, plaintext, aad))

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        data_key = self.unwrap(sealed.key_id, sealed.wrapped_key, aad)
        return _decrypt(data_key, sealed.ciphertext, aad)

    def rewrap(self, wrapped_by: str, wrapped: bytes, aad: bytes) -> tuple[str, bytes]:
        """The same secret wrapped by the current master key."""
        return self.wrap(self.unwrap(wrapped_by, wrapped, aad), aad)

    def __repr__(self) -> str:  # never a key
        return f"Vault(key_id={self.key_id}, keys={len(self._keys)})"


def write_key_file(path: Path, keys: Sequence[bytes], *, exclusive: bool = False) -> None:
    """Write master keys (current first) atomically: 0600 file in a 0700 directory, fsynced with its
    directory. `exclusive`: leave an existing file as it is (whoever created it first wins)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, "".join(encode_key(k) + "\n" for k in keys).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if exclusive:
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    else:
        os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
