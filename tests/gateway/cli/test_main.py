"""The CLI's argument surface: the commands the docs and alert runbooks tell operators to type exist."""

import pytest

from gateway.cli import main as cli


def test_unlearn_list_is_status_with_a_state_filter():
    # deploy/prometheus/alerts.yml tells the operator: `lethe unlearn list --state failed`.
    args = cli.build_parser().parse_args(["unlearn", "list", "--state", "failed"])
    assert args.func is cli.cmd_unlearn_status and args.state == "failed" and args.id is None


def test_unknown_job_state_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["unlearn", "status", "--state", "finished"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
