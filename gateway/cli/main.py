"""The `lethe` command line: serve the gateway, prepare models, and operator clients."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from gateway.cli.client import OperatorClient
from gateway.cli.config_export import register as register_config
from gateway.cli.keys import register as register_keys
from gateway.cli.vault import register as register_vault
from gateway.config import ConfigError, LetheConfig, load_config
from gateway.home import private_dir
from gateway.jobs.guard_scorer import build_guard_scorer
from gateway.ledger.states import JOB_ACTIVE_STATES, ForgetStatus, JobState
from unlearn_jobs.cli import register as register_offline

log = logging.getLogger("lethe")


def _fail(message: str, code: int = 2) -> int:
    print(f"lethe: error: {message}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> LetheConfig:
    return load_config(getattr(args, "config", None))


# ---------------------------------------------------------------- models


def _prepare(config: LetheConfig, name: str, force: bool = False) -> Path:
    from tqdm import tqdm

    from gateway.weights.base_models import PREPARE_STEPS, prepare_model

    with tqdm(total=PREPARE_STEPS, desc=f"prepare {name}", unit="step", file=sys.stderr) as bar:

        def progress(message: str) -> None:
            bar.set_postfix_str(message[:60])
            bar.update(1)

        path = prepare_model(config.models_root, name, force=force, progress=progress)
        bar.update(bar.total - bar.n)
    return path


def cmd_models_prepare(args: argparse.Namespace) -> int:
    config = _load(args)
    name = args.name or config.engine.model
    path = _prepare(config, name, force=args.force)
    print(path)
    return 0


def cmd_models_local(args: argparse.Namespace) -> int:
    from gateway.chat.engines.base import MODEL_MARKER, model_version

    config = _load(args)
    found = sorted(p.parent for p in config.models_root.glob(f"*/{MODEL_MARKER}"))
    if not found:
        print(f"no prepared models under {config.models_root}; run `lethe models prepare`")
        return 0
    for folder in found:
        print(f"{folder.name}\t{model_version(folder)}\t{folder}")
    return 0


# ---------------------------------------------------------------- serve


def _ensure_model(config: LetheConfig) -> None:
    from gateway.weights.base_models import SOURCES

    if (config.model_path / "config.json").is_file():
        return
    if config.engine.model in SOURCES:
        print(f"lethe: preparing the default model {config.engine.model} (first run only)", file=sys.stderr)
        _prepare(config, config.engine.model)
        return
    raise ConfigError(
        f"model folder {config.model_path} has no config.json: set LETHE_MODEL to an HF safetensors "
        "folder or a prepared model name (`lethe models prepare`)"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    # The flags win over the file, as LETHE_* variables do (and reach every replica the same way).
    if getattr(args, "log_level", None):
        os.environ["LETHE_LOG_LEVEL"] = args.log_level
    if getattr(args, "log_json", False):
        os.environ["LETHE_LOG_FORMAT"] = "json"
    config = _load(args)
    _ensure_model(config)
    private_dir(config.home)  # 0700: the ledger, keys and versions under it hold what is being forgotten
    # Ray and the whole Serve app load only for `lethe serve`: the operator commands stay quick.
    from gateway.serve.runner import run_gateway

    return run_gateway(config)


# ---------------------------------------------------------------- operator clients


def _client(args: argparse.Namespace, timeout_s: float = 120.0) -> OperatorClient:
    return OperatorClient(args.url, args.token, timeout_s=timeout_s)


def _print_json(value: object) -> None:
    import json

    print(json.dumps(value, indent=2, ensure_ascii=False))


def _qa_pair(raw: str) -> dict[str, str]:
    question, sep, answer = raw.partition("=>")
    if not sep or not question.strip() or not answer.strip():
        raise argparse.ArgumentTypeError(f"--qa takes 'QUESTION => ANSWER', got {raw!r}")
    return {"question": question.strip(), "answer": answer.strip()}


def cmd_forget_add(args: argparse.Namespace) -> int:
    import json

    body: dict[str, Any] = {}
    if args.file:
        body = json.loads(Path(args.file).read_text())
    if args.subject:
        body["subject"] = args.subject
    for key, values in (("texts", args.text), ("qa", args.qa), ("literals", args.literal)):
        if values:
            body[key] = list(body.get(key, [])) + list(values)
    body.setdefault("reason", args.reason)
    body.setdefault("action", args.action)
    _print_json(_client(args).post("/v1/forget", body))
    return 0


def cmd_forget_list(args: argparse.Namespace) -> int:
    _print_json(_client(args).get("/v1/forget", status=args.status, limit=args.limit, offset=args.offset))
    return 0


def cmd_forget_show(args: argparse.Namespace) -> int:
    _print_json(_client(args).get(f"/v1/forget/{args.id}"))
    return 0


def cmd_forget_check(args: argparse.Namespace) -> int:
    result = _client(args).post("/v1/forget/check", {"text": args.text})
    _print_json(result)
    return 3 if result.get("match") else 0


def cmd_forget_certificate(args: argparse.Namespace) -> int:
    import json

    cert = _client(args).get(f"/v1/forget/{args.id}/certificate")
    if args.output:
        Path(args.output).write_text(json.dumps(cert, indent=2, ensure_ascii=False) + "\n")
        print(f"certificate of {args.id} written to {args.output} (key {cert['signature']['key_id']})")
        print(cert["statement"])
    else:
        _print_json(cert)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    listing = _client(args).get(
        "/v1/admin/audit", kind=args.kind, subject_id=args.subject, limit=args.limit, offset=args.offset
    )
    if args.json:
        _print_json(listing)
        return 0
    for e in listing["data"]:
        details = " ".join(f"{k}={v}" for k, v in (e["details"] or {}).items())
        print(f"{e['at']}  {e['kind']:<24} {e['subject_id'] or '-':<38} {e['actor']:<12} {details}")
    return 0


def cmd_forget_key(args: argparse.Namespace) -> int:
    key = _client(args).get("/v1/forget/certificates/key")
    if args.output:
        Path(args.output).write_text(key["public_key_pem"])
        print(f"public key {key['key_id']} ({key['algorithm']}) written to {args.output}")
    else:
        print(key["public_key_pem"], end="")
    return 0


def cmd_forget_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the certificate's signature holds, 5 when it does not. With --public-key nothing is
    asked of a server; otherwise the gateway's key is fetched and the check still runs here."""
    import json

    from gateway.forget.certificates import CertificateError, verify_certificate

    try:
        cert = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as exc:
        print(f"lethe: cannot read a certificate from {args.file}: {exc}", file=sys.stderr)
        return 2
    if args.public_key:
        pem = Path(args.public_key).read_text()
    else:
        pem = _client(args).get("/v1/forget/certificates/key")["public_key_pem"]
    try:
        fields = verify_certificate(cert, pem)
    except CertificateError as exc:
        print(f"INVALID: {exc}")
        return 5
    request = fields.get("forget_request", {})
    print(f"valid: forget request {request.get('id')}, issued {fields.get('issued_at')} by {fields.get('issuer')}")
    return 0


def cmd_unlearn_submit(args: argparse.Namespace) -> int:
    from unlearn_jobs.config import parse_assignments

    body: dict[str, object] = {
        "method": args.method,
        "params": parse_assignments(args.set or []),
        "gates": parse_assignments(args.gate or []),
    }
    if args.forget_id:
        body["forget_ids"] = args.forget_id
    job = _client(args).post("/v1/unlearn/jobs", body)
    if not args.wait:
        _print_json(job)
        return 0
    return _follow_job(args, job["id"])


def _follow_job(args: argparse.Namespace, job_id: str) -> int:
    from tqdm import tqdm

    client = _client(args)
    with tqdm(total=100, desc=f"job {job_id}", unit="%", file=sys.stderr) as bar:
        while True:
            job = client.get(f"/v1/unlearn/jobs/{job_id}")
            bar.set_postfix_str(f"{job['state']} step {job['step']} loss {job['loss']}")
            bar.update(max(0.0, job["progress"] - bar.n))
            if job["state"] not in JOB_ACTIVE_STATES:
                break
            time.sleep(1)
    _print_json(job)
    return 0 if job["state"] == JobState.PUBLISHED else 4


def cmd_unlearn_status(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.id:
        if args.wait:
            return _follow_job(args, args.id)
        _print_json(client.get(f"/v1/unlearn/jobs/{args.id}"))
    else:
        _print_json(client.get("/v1/unlearn/jobs", state=args.state))
    return 0


def cmd_unlearn_cancel(args: argparse.Namespace) -> int:
    _print_json(_client(args).post(f"/v1/unlearn/jobs/{args.id}/cancel"))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    listing = _client(args).get("/v1/admin/models/versions")
    if args.json:
        _print_json(listing)
        return 0
    print(f"{'':2}{'VERSION':<36} {'PARENT':<36} {'METHOD':<10} CREATED")
    for v in listing["data"]:
        mark = "* " if v["serving"] else "  "
        print(f"{mark}{v['id']:<36} {v['parent'] or '-':<36} {v['method'] or '-':<10} {v['created'] or '-'}")
    replicas = ", ".join(f"{r['replica']}={r['version']}" for r in listing["replicas"]) or "none reachable"
    print(f"\nserving: {listing['serving']}{' (a swap is in progress)' if listing['swapping'] else ''}")
    print(f"replicas: {replicas}")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    body = {"path": str(Path(args.path).expanduser().resolve()), "note": args.note}
    _print_json(_client(args, timeout_s=900).post("/v1/admin/models/versions", body))
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    _print_json(_client(args, timeout_s=900).post("/v1/admin/models/promote", {"version": args.version}))
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    _print_json(_client(args, timeout_s=900).post("/v1/admin/models/rollback"))
    return 0


def cmd_models_swaps(args: argparse.Namespace) -> int:
    _print_json(_client(args).get("/v1/admin/models/swaps", limit=args.limit)["data"])
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lethe", description="Lethe: a model-serving gateway that makes an LLM forget."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=argparse.SUPPRESS, help="YAML config (default: deploy/local.yaml, or $LETHE_CONFIG)"
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    parser.add_argument("--config", help="YAML config (default: deploy/local.yaml, or $LETHE_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--url", help="gateway URL (default $LETHE_URL or http://127.0.0.1:$LETHE_PORT)")
    remote.add_argument("--token", help="API key (default $LETHE_API_KEY, else $LETHE_ADMIN_TOKEN)")

    serve_p = sub.add_parser("serve", parents=[common], help="run the gateway on a local Ray (foreground)")
    serve_p.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: logs.level (INFO)"
    )
    serve_p.add_argument("--log-json", action="store_true", help="one JSON object per log line (clusters)")
    serve_p.set_defaults(func=cmd_serve)

    models = sub.add_parser("models", parents=[common], help="base models and weight versions")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    prep = models_sub.add_parser("prepare", parents=[common], help="provision the default model offline (idempotent)")
    prep.add_argument("name", nargs="?", help="model name (default: the configured model)")
    prep.add_argument("--force", action="store_true", help="convert again even if prepared")
    prep.set_defaults(func=cmd_models_prepare)
    local = models_sub.add_parser("local", parents=[common], help="list prepared base models")
    local.set_defaults(func=cmd_models_local)
    vlist = models_sub.add_parser("list", parents=[remote], help="weight versions; * marks the serving one")
    vlist.add_argument("--json", action="store_true", help="print the API's JSON")
    vlist.set_defaults(func=cmd_models_list)
    vimport = models_sub.add_parser(
        "import", parents=[remote], help="import a weight directory (config.json + *.safetensors) as a version"
    )
    vimport.add_argument("path", help="directory readable by the gateway")
    vimport.add_argument("--note", help="free text kept in the manifest")
    vimport.set_defaults(func=cmd_models_import)
    promote = models_sub.add_parser(
        "promote", parents=[remote], help="rolling swap of every LLM replica onto VERSION (verified first)"
    )
    promote.add_argument("version")
    promote.set_defaults(func=cmd_models_promote)
    rollback = models_sub.add_parser("rollback", parents=[remote], help="swap back to the previous serving version")
    rollback.set_defaults(func=cmd_models_rollback)
    swaps = models_sub.add_parser(
        "swaps", parents=[remote], help="promotions, rollbacks and failed swaps, newest first"
    )
    swaps.add_argument("--limit", type=int, default=20)
    swaps.set_defaults(func=cmd_models_swaps)

    forget = sub.add_parser("forget", help="file and inspect forget requests (operator API)")
    forget_sub = forget.add_subparsers(dest="forget_command", required=True)
    add = forget_sub.add_parser("add", parents=[remote], help="file a forget request; returns once enforced")
    add.add_argument("--subject", help="whose or what data this is")
    add.add_argument("--text", action="append", help="a text to forget (repeatable)")
    add.add_argument("--qa", action="append", type=_qa_pair, help="'QUESTION => ANSWER' (repeatable)")
    add.add_argument("--literal", action="append", help="an exact string: phone, e-mail, key (repeatable)")
    add.add_argument("--reason", default="gdpr", help="gdpr (default), secret, correction, …")
    add.add_argument("--action", default="block", choices=["block", "redact"])
    add.add_argument("--file", help="a JSON body to send (the flags above add to it)")
    add.set_defaults(func=cmd_forget_add)
    lst = forget_sub.add_parser("list", parents=[remote], help="list forget requests")
    lst.add_argument("--status", choices=[s.value for s in ForgetStatus])
    lst.add_argument("--limit", type=int, default=100)
    lst.add_argument("--offset", type=int, default=0)
    lst.set_defaults(func=cmd_forget_list)
    show = forget_sub.add_parser("show", parents=[remote], help="one forget request")
    show.add_argument("id")
    show.set_defaults(func=cmd_forget_show)
    check = forget_sub.add_parser(
        "check", parents=[remote], help="check a text with the live guard (exit 3 on a match)"
    )
    check.add_argument("text")
    check.set_defaults(func=cmd_forget_check)
    cert = forget_sub.add_parser("certificate", parents=[remote], help="a signed deletion certificate of a request")
    cert.add_argument("id")
    cert.add_argument("-o", "--output", help="write it to this file (default: print it)")
    cert.set_defaults(func=cmd_forget_certificate)
    key = forget_sub.add_parser("key", parents=[remote], help="the public key (PEM) that checks certificates")
    key.add_argument("-o", "--output", help="write it to this file (default: print it)")
    key.set_defaults(func=cmd_forget_key)
    verify = forget_sub.add_parser(
        "verify", parents=[remote], help="check a certificate's signature (exit 5 if it does not hold)"
    )
    verify.add_argument("file")
    verify.add_argument("--public-key", help="PEM file of the gateway's key: check offline, no server asked")
    verify.set_defaults(func=cmd_forget_verify)

    audit = sub.add_parser("audit", parents=[remote], help="the audit trail, newest first (operator API)")
    audit.add_argument("--kind", help="only events of this kind (forget.added, job.state, version.serving, …)")
    audit.add_argument("--subject", help="only events about this forget request, job or version id")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--offset", type=int, default=0)
    audit.add_argument("--json", action="store_true", help="print the API's JSON")
    audit.set_defaults(func=cmd_audit)

    unlearn = sub.add_parser("unlearn", help="unlearning jobs (HTTP API) and offline runs")
    unlearn_sub = unlearn.add_subparsers(dest="unlearn_command", required=True)
    submit = unlearn_sub.add_parser("submit", parents=[remote], help="submit a job to the running gateway")
    submit.add_argument("--method", default="rmu", help="rmu, npo, simnpo, grad_diff or edit (default rmu)")
    submit.add_argument("--forget-id", action="append", help="forget request id (repeatable; default: all enforced)")
    submit.add_argument("--set", action="append", metavar="KEY=VALUE", help="method hyperparameter override")
    submit.add_argument("--gate", action="append", metavar="KEY=VALUE", help="gate override")
    submit.add_argument("--wait", action="store_true", help="follow the job with a progress bar")
    submit.set_defaults(func=cmd_unlearn_submit)
    status = unlearn_sub.add_parser("status", aliases=["list"], parents=[remote], help="one job, or all jobs")
    status.add_argument("id", nargs="?")
    status.add_argument("--state", choices=[s.value for s in JobState], help="filter the list by state")
    status.add_argument("--wait", action="store_true", help="follow the job until it ends")
    status.set_defaults(func=cmd_unlearn_status)
    cancel = unlearn_sub.add_parser("cancel", parents=[remote], help="cancel a running job")
    cancel.add_argument("id")
    cancel.set_defaults(func=cmd_unlearn_cancel)

    # `lethe unlearn run`, `lethe finetune`; the offline jobs score generations with the gateway's guard.
    register_offline(sub, unlearn_subparsers=unlearn_sub, guard_scorer_factory=build_guard_scorer)
    register_config(sub, common)  # `lethe config export --serve`
    register_vault(sub, common)  # `lethe vault rewrap`
    register_keys(sub, remote)  # `lethe keys create|list|revoke`
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise for a CLI
    from gateway.cli.client import APIClientError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        return _fail(str(exc))
    except APIClientError as exc:
        return _fail(str(exc), 1)


if __name__ == "__main__":
    sys.exit(main())
