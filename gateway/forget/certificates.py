"""Deletion certificates: a signed statement, built from the ledger, of what Lethe did with one forget request.

A certificate says when the request was enforced (and at which index version), which unlearning jobs took
it out of the weights (with any gate they ran under that differs from the defaults) and whether the weights
serving now descend from one of them — by the ledger's pointer and by each LLM replica's own version when
issued —, the guard's state (on or off, prompt mode, thresholds), what the latest leakage probe of the raw
weights found, when the request's plaintext was shredded, and the request's audit trail. It never repeats
the forgotten content (not its subject, texts, answers, literals, nor model outputs about it): it carries a
digest of it instead, which whoever filed the request can recompute from their copy (`content_digest`).

It is signed with Ed25519. The key is made on first use under `$LETHE_HOME/keys/` (mode 0600); its public
half is served by `GET /v1/forget/certificates/key`, so anyone can check a certificate offline
(`lethe forget verify`, or `verify_certificate` here).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.guard.settings import GuardSettings
from gateway.home import fsync_dir, private_dir
from gateway.ledger import Ledger
from unlearn_jobs.evaluate import Gates, redact_metrics

CERTIFICATE_FORMAT = "lethe.deletion_certificate.v1"
SIGNATURE_ALGORITHM = "ed25519"
KEY_FILE = "certificate-ed25519.pem"
# Audit events read per subject (the ledger's page size); a request's trail is a handful of events.
_MAX_EVENTS = 1_000


class CertificateError(ValueError):
    """A certificate that is malformed, tampered with, or signed by another key."""


def canonical_json(value: Any) -> bytes:
    """The bytes that are hashed and signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_digest(body: dict[str, Any]) -> str:
    """sha256 of a forget request's content (subject, texts, qa, literals) in canonical form.

    >>> content_digest({"subject": "A", "texts": ["x"], "qa": [], "literals": []})[:19]
    'sha256:70637a018593'
    """
    content = {
        "subject": body.get("subject") or None,
        "texts": list(body.get("texts") or []),
        "qa": [[q["question"], q["answer"]] if isinstance(q, dict) else list(q) for q in body.get("qa") or []],
        "literals": list(body.get("literals") or []),
    }
    return "sha256:" + hashlib.sha256(canonical_json(content)).hexdigest()


class CertificateSigner:
    """The gateway's Ed25519 signing key, created once (atomically, 0600) and reused across restarts."""

    def __init__(self, key_dir: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = Path(key_dir) / KEY_FILE
        private_dir(path.parent)  # 0700, also when it already existed
        if not path.is_file():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, pem)
                os.fsync(fd)
                os.close(fd)
                # link, not replace: two processes starting together keep the first key written.
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
            fsync_dir(path.parent)  # the key's name is durable before any certificate is signed with it
        os.chmod(path, 0o600)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CertificateError(f"{path} is not an Ed25519 private key")
        self._key = key
        public = key.public_key()
        self.public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        self.key_id = key_id(public)

    def public_key(self) -> dict[str, str]:
        return {"algorithm": SIGNATURE_ALGORITHM, "key_id": self.key_id, "public_key_pem": self.public_pem}

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` plus a `signature` over its canonical JSON (every field but `signature`)."""
        unsigned = {k: v for k, v in body.items() if k != "signature"}
        value = self._key.sign(canonical_json(unsigned))
        return {
            **unsigned,
            "signature": {
                "algorithm": SIGNATURE_ALGORITHM,
                "key_id": self.key_id,
                "value": base64.b64encode(value).decode(),
            },
        }


def key_id(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def verify_certificate(certificate: Any, public_key_pem: str) -> dict[str, Any]:
    """Check the signature against a trusted public key; the certificate's fields when it holds.

    Raises CertificateError saying what is wrong (not a certificate, another key, altered content).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(certificate, dict) or certificate.get("format") != CERTIFICATE_FORMAT:
        raise CertificateError(f"not a Lethe deletion certificate (format {CERTIFICATE_FORMAT!r} expected)")
    signature = certificate.get("signature")
    if not isinstance(signature, dict) or signature.get("algorithm") != SIGNATURE_ALGORITHM:
        raise CertificateError("the certificate carries no Ed25519 signature")
    try:
        public = serialization.load_pem_public_key(public_key_pem.encode())
    except ValueError as exc:
        raise CertificateError(f"the public key is not a PEM key: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise CertificateError("the public key is not an Ed25519 key")
    if signature.get("key_id") != key_id(public):
        raise CertificateError(f"signed by key {signature.get('key_id')!r}, not by the key given ({key_id(public)})")
    try:
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except ValueError:
        raise CertificateError("the signature is not base64") from None
    unsigned = {k: v for k, v in certificate.items() if k != "signature"}
    try:
        public.verify(value, canonical_json(unsigned))
    except InvalidSignature:
        raise CertificateError("the signature does not match: the certificate was altered after signing") from None
    return unsigned


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _before(when: datetime, iso: str) -> bool:
    try:
        other = datetime.fromisoformat(iso)
    except ValueError:
        return False
    aware = [t if t.tzinfo is not None else t.replace(tzinfo=UTC) for t in (when, other)]
    return aware[0] <= aware[1]


def _all_jobs(ledger: Ledger) -> list[Any]:
    jobs: list[Any] = []
    while True:
        page = ledger.list_jobs(limit=1000, offset=len(jobs))
        jobs += page
        if len(page) < 1000:
            return jobs


def _lineage(ledger: Ledger, version_id: str | None) -> list[str]:
    """The serving version and its ancestors, newest first (versions chain: a job starts from the serving one)."""
    chain: list[str] = []
    while version_id is not None and version_id not in chain:
        chain.append(version_id)
        record = ledger.get_version(version_id)
        version_id = record.parent_id if record is not None else None
    return chain


def issuer() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"lethe {version('lethe')}"
    except PackageNotFoundError:
        return "lethe"


def guard_state(enabled: bool, prompt_mode: str, settings: GuardSettings | None = None) -> dict[str, Any]:
    """The guard as a certificate states it: on or off, prompt mode, and the thresholds it decides with."""
    settings = settings or GuardSettings()
    thresholds = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.name.startswith(_THRESHOLD_PREFIXES) and isinstance(getattr(settings, f.name), int | float)
    }
    return {"enabled": bool(enabled), "prompt_mode": prompt_mode, "thresholds": thresholds}


_THRESHOLD_PREFIXES = ("semantic_", "prompt_question_", "cooccur_", "ngram_", "digit_")


def gate_overrides(gates: Any) -> dict[str, dict[str, Any]]:
    """Each gate a job ran with that differs from the default: `{name: {"value", "default"}}`."""
    defaults = Gates().to_dict()
    try:
        effective = Gates.from_overrides(gates or {}).to_dict()
    except (TypeError, ValueError):  # not readable as gates: state every field as given
        return {str(k): {"value": v, "default": defaults.get(str(k))} for k, v in dict(gates or {}).items()}
    return {k: {"value": v, "default": defaults.get(k)} for k, v in effective.items() if v != defaults.get(k)}


def _job_views(after: Any) -> dict[str, dict[str, Any]]:
    """view -> {rate, chance, n} from a job's stored `metrics_after` (none for jobs before views)."""
    views = after.get("views") if isinstance(after, dict) else None
    if not isinstance(views, dict):
        return {}
    return {
        str(name): {"rate": v.get("rate"), "chance": v.get("chance"), "n": v.get("n")}
        for name, v in views.items()
        if isinstance(v, dict)
    }


def build_certificate(
    ledger: Ledger,
    forget_id: str,
    *,
    leakage: dict[str, Any] | None = None,
    serving: Any = None,
    guard: dict[str, Any] | None = None,
    replicas: Sequence[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """The unsigned certificate of one forget request, or None if the ledger has no such request.

    `serving`: the version serving now when the ledger has no promotion yet (the base model); by default
    the ledger's serving pointer. `guard`: the guard's state (`guard_state`); None when the caller does not
    know it, which the certificate says. `replicas`: each LLM replica's `{replica, version, verified}` at
    issue time; None when they did not answer, which the certificate says too.
    """
    record = ledger.get_forget(forget_id)
    if record is None:
        return None
    body = record.body()
    # The digest recorded at filing (salted); older requests have none and get the plain one. After
    # shredding the payload is empty: the counts recorded at filing are what the request held.
    digest = record.content_digest
    counts = dict(record.counts) if record.counts else {key: len(body[key]) for key in ("texts", "qa", "literals")}
    jobs = [j for j in _all_jobs(ledger) if forget_id in j.forget_ids]
    serving = ledger.serving_version() or serving
    lineage = _lineage(ledger, serving.id if serving is not None else None)
    unlearned_by = []
    for job in jobs:
        row: dict[str, Any] = {
            "job_id": job.id,
            "method": job.method,
            "state": job.state,
            "finished_at": _iso(job.finished_at),
            "version_id": job.version_id,
            "gates": (job.params or {}).get("gates"),
            "gate_overrides": gate_overrides((job.params or {}).get("gates")),
            "evaluation_before": redact_metrics((job.metrics or {}).get("before")),
            "evaluation_after": redact_metrics((job.metrics or {}).get("after")),
            # The leakage views the job's gates measured on the version it produced (rates only).
            "leakage_views": _job_views((job.metrics or {}).get("after")),
        }
        if job.version_id:
            version = ledger.get_version(job.version_id)
            if version is not None:
                row["version_manifest_sha256"] = hashlib.sha256(canonical_json(version.manifest)).hexdigest()
            row["in_serving_weights"] = job.version_id in lineage
        unlearned_by.append(row)
    in_weights = [r["version_id"] for r in unlearned_by if r.get("in_serving_weights")]
    unlearned_versions = {r["version_id"] for r in unlearned_by if r["version_id"] and r["state"] == "published"}
    live = None
    if replicas is not None:
        live = []
        for r in sorted(replicas, key=lambda r: str(r.get("replica"))):
            version = r.get("version")
            verified = bool(r.get("verified", True))
            descends = verified and bool(unlearned_versions & set(_lineage(ledger, version)))
            live.append({"replica": r.get("replica"), "version": version, "verified": verified, "unlearned": descends})
    # Only what every replica really serves counts: a replica on other weights (or refusing traffic) voids it.
    unlearned_live = bool(in_weights) and (live is None or (bool(live) and all(r["unlearned"] for r in live)))
    overridden = [r for r in unlearned_by if r["gate_overrides"]]

    ids = {forget_id, *(j.id for j in jobs), *(r["version_id"] for r in unlearned_by if r["version_id"])}
    trail = []
    for subject in sorted(ids):
        trail += ledger.list_audit(subject_id=subject, limit=_MAX_EVENTS)
    trail.sort(key=lambda e: e.id)
    audit = [e.to_dict() for e in trail]

    probe = None
    if leakage and leakage.get("at"):
        asked = bool(counts.get("texts") or counts.get("qa")) and _before(record.created_at, leakage["at"])
        row = (leakage.get("by_version") or {}).get(leakage.get("version")) or {}
        probe = {
            "at": leakage["at"],
            "version": leakage.get("version"),
            "probed": asked,
            "leaked": forget_id in (leakage.get("leaking_forget_ids") or []) if asked else None,
            "version_leakage_ratio": row.get("leakage_ratio"),
            # The same probe's leakage views for the version: each view's rate (accuracy for a choice
            # view, with chance) and whether this request leaked through it.
            "views": {
                name: {
                    "rate": v.get("rate"),
                    "chance": v.get("chance"),
                    "n": v.get("n"),
                    "leaked": forget_id in ((leakage.get("leaking_forget_ids_by_view") or {}).get(name) or [])
                    if asked
                    else None,
                }
                for name, v in (row.get("views") or {}).items()
            },
        }

    acks = [e for e in trail if e.kind == "forget.enforced" and e.subject_id == forget_id]
    # Every live ingress replica enforced it at the acknowledgement; before the event existed, the commit.
    enforced_at = acks[0].details.get("enforced_at") if acks else _iso(record.enforced_at)
    enforced = enforced_at is not None
    statement = [f"Forget request {forget_id} ({record.reason}) was received at {record.created_at.isoformat()}."]
    guard_on = guard is None or bool(guard.get("enabled"))
    if enforced and guard is not None and not guard_on:
        statement.append(
            f"From {enforced_at} (forget-index version {record.index_version}) the request was in the forget "
            "index, but the guard is OFF at issue time: prompts and responses are NOT checked against it."
        )
    elif enforced:
        statement.append(
            f"From {enforced_at} (forget-index version {record.index_version}) every prompt "
            f"and response of this gateway was checked against its content, with action '{record.action}'"
            + (" (the guard's state at issue time was not given to this certificate)." if guard is None else ".")
        )
    enforcer = "the guard alone enforces it" if guard_on else "nothing enforces it while the guard is off"
    if unlearned_live:
        where = (
            f"The weights every LLM replica serves at issue time ({', '.join(sorted({str(r['version']) for r in live}))})"
            if live is not None
            else f"The weights serving at issue time by the ledger's pointer ({lineage[0]}; the replicas' own "
            "versions were not available)"
        )
        statement.append(
            f"{where} descend from version(s) {', '.join(in_weights)}, "
            "published by unlearning jobs on this request that passed their evaluation gates."
        )
    elif in_weights and live is not None:
        off = [str(r["replica"]) for r in live if not r["unlearned"]] or ["all (no LLM replica answered)"]
        statement.append(
            f"The serving pointer ({lineage[0]}) descends from version(s) {', '.join(in_weights)}, but at issue "
            f"time replica(s) {', '.join(off)} did not serve weights unlearned on this request: {enforcer} there."
        )
    else:
        statement.append(f"No weights unlearned on this request serve at issue time: {enforcer}.")
    if overridden:
        statement.append(
            "Gates overridden: "
            + "; ".join(
                f"job {r['job_id']} ran with "
                + ", ".join(
                    f"{k}={v['value']} (default {v['default']})" for k, v in sorted(r["gate_overrides"].items())
                )
                for r in overridden
            )
            + "."
        )
    if probe is not None and probe["probed"]:
        statement.append(
            f"The leakage probe of {probe['at']} on the raw weights ({probe['version']}) "
            + ("still found its key facts." if probe["leaked"] else "did not find its key facts.")
        )
        through = sorted(name for name, v in probe["views"].items() if v["leaked"])
        if probe["views"]:
            statement.append(
                f"Asked in {len(probe['views'])} other way(s) ({', '.join(sorted(probe['views']))}), "
                + (f"it leaked through: {', '.join(through)}." if through else "it leaked through none.")
            )

    return {
        "format": CERTIFICATE_FORMAT,
        "issued_at": (now or datetime.now(UTC)).isoformat(),
        "issuer": issuer(),
        "forget_request": {
            "id": forget_id,
            "status": record.status,
            "reason": record.reason,
            "action": record.action,
            "received_at": record.created_at.isoformat(),
            "counts": counts,
            "content_digest": digest if digest is not None else content_digest(body),
            "shredded_at": _iso(record.shredded_at),
        },
        "enforcement": {
            "enforced": enforced,
            "enforced_at": enforced_at,
            "committed_at": _iso(record.enforced_at),
            "index_version": record.index_version,
            "current_index_version": ledger.index_version(),
        },
        "guard": guard,
        "weights": {
            "serving_version": lineage[0] if lineage else None,
            "serving_lineage": lineage,
            "replicas": live,
            "unlearned_in_serving_weights": unlearned_live,
            "unlearning_jobs": unlearned_by,
        },
        "raw_weights_probe": probe,
        "audit_trail": audit,
        "statement": " ".join(statement),
    }
