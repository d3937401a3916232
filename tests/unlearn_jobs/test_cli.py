"""`lethe unlearn run` and `lethe finetune` through their argparse entry."""

from __future__ import annotations

import argparse
import json

from unlearn_jobs.cli import main, register
from unlearn_jobs.publish import verify_version


def test_register_adds_commands_to_a_lethe_parser():
    parser = argparse.ArgumentParser(prog="lethe")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["unlearn", "run", "--model", "m", "--forget", "f.json", "--set", "lr=1e-5"])
    assert args.func.__name__ == "cmd_unlearn_run" and args.overrides == ["lr=1e-5"] and args.method == "rmu"
    args = parser.parse_args(["finetune", "--model", "m", "--out", "o", "--people", "3"])
    assert args.func.__name__ == "cmd_finetune"
    # A caller that owns `unlearn` (submit/status/cancel) can hand its subparsers in.
    parser2 = argparse.ArgumentParser()
    sub2 = parser2.add_subparsers()
    unlearn = sub2.add_parser("unlearn").add_subparsers()
    unlearn.add_parser("submit")
    register(sub2, unlearn_subparsers=unlearn)
    assert parser2.parse_args(["unlearn", "run", "--model", "m", "--forget", "f"]).func.__name__ == "cmd_unlearn_run"


def test_unlearn_run_publishes_a_version(subject, tmp_path, capsys):
    forget_file = tmp_path / "forget.json"
    forget_ids = {e.source_id for e in subject.forget}
    forget_file.write_text(json.dumps([subject.facts.forget_entry(pid) for pid in sorted(forget_ids)]))
    retain_file = tmp_path / "retain.json"
    retain_file.write_text(
        json.dumps(
            subject.facts.subset([p.person_id for p in subject.facts.people if p.person_id not in forget_ids]).to_dict()
        )
    )
    code = main(
        [
            "unlearn",
            "run",
            "--model",
            str(subject.model_dir),
            "--method",
            "npo",
            "--forget",
            str(forget_file),
            "--retain",
            str(retain_file),
            "--set",
            "lr=3e-4",
            "--set",
            "check_every=2",
            "--out",
            str(tmp_path / "home"),
            "--prompt-format",
            "plain",
            "--no-progress",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["state"] == "published"
    verify_version(out["version_dir"])
    assert out["version_dir"].startswith(str(tmp_path / "home" / "versions"))


def test_unlearn_run_bad_override_exits_2(subject, tmp_path, capsys):
    (tmp_path / "f.json").write_text(json.dumps({"id": "x", "qa": [{"question": "q?", "answer": "A Bc."}]}))
    code = main(
        [
            "unlearn",
            "run",
            "--model",
            str(subject.model_dir),
            "--forget",
            str(tmp_path / "f.json"),
            "--gate",
            "nonsense=1",
            "--no-progress",
        ]
    )
    assert code == 2 and "unknown" in capsys.readouterr().err


def test_finetune_writes_a_model_and_facts(subject, tmp_path, capsys):
    out = tmp_path / "ft"
    code = main(
        [
            "finetune",
            "--model",
            str(subject.model_dir),
            "--out",
            str(out),
            "--people",
            "2",
            "--facts-per-person",
            "2",
            "--write-facts",
            str(tmp_path / "facts.json"),
            "--write-forget",
            str(tmp_path / "forget.json"),
            "--set",
            "epochs=1",
            "--prompt-format",
            "plain",
            "--no-progress",
        ]
    )
    assert code == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert len(json.loads((tmp_path / "forget.json").read_text())) == 1
    assert json.loads(capsys.readouterr().out)["steps"] >= 1
