"""The leads function's suppression key secret, and the DSR deadline alarm."""

from __future__ import annotations

from typing import Any

from tests.infrastructure.conftest import Synthesis


def test_the_suppression_key_is_generated_and_only_the_leads_functions_read_it(
    synthesis: Synthesis,
) -> None:
    secrets = synthesis.resources("AWS::SecretsManager::Secret", "Data")
    key_id, key = next((n, s) for n, s in secrets.items() if "SuppressionKey" in n)
    generate = key["Properties"]["GenerateSecretString"]
    assert (generate["GenerateStringKey"], generate["PasswordLength"]) == ("hmac_key", 64)

    readers = set()
    for name, policy in synthesis.resources("AWS::IAM::Policy", "Api").items():
        text = str(policy["Properties"]["PolicyDocument"])
        if "secretsmanager:GetSecretValue" in text and key_id in text:
            readers.add(name)
    assert readers, "no function may read the suppression key"
    # the leads route function and the CSV import ingestion function
    assert all("Leads" in name or "LeadImports" in name for name in readers), readers


def test_an_alarm_fires_when_a_data_subject_request_is_due_within_48_hours(
    synthesis: Synthesis,
) -> None:
    alarms = synthesis.resources("AWS::CloudWatch::Alarm", "Monitoring")
    alarm: dict[str, Any] = next(a for n, a in alarms.items() if "LeadsDsrDeadline" in n)[
        "Properties"
    ]

    assert alarm["MetricName"] == "LeadsDsrDueSoon"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # the job stopping hides deadlines: no count reported is an alarm too
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"]


def _send_statements(synthesis: Synthesis) -> dict[str, list[dict[str, Any]]]:
    """Each policy's statements that allow sending e-mail through SES, by policy name."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, policy in synthesis.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if any(action.startswith("ses:") for action in actions):
                found.setdefault(name, []).append(statement)
    return found


def _arn_text(arn: Any) -> str:
    """An ARN built with ``Fn::Join`` (partition, region, account), as plain text."""
    if isinstance(arn, str):
        return arn
    return "".join(
        part if isinstance(part, str) else f"<{next(iter(part))}>" for part in arn["Fn::Join"][1]
    )


def test_only_the_leads_function_may_send_email_and_only_as_its_sender(
    synthesis: Synthesis,
) -> None:
    sender = synthesis.config["outreach_sender"]
    domain = sender.rpartition("@")[2]

    senders = _send_statements(synthesis)

    assert len(senders) == 1, senders
    ((name, statements),) = senders.items()
    assert "FunctionsLeads" in name
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["ses:SendEmail", "ses:SendRawEmail"]
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": sender}}
    region = synthesis.config["region"]
    assert sorted(_arn_text(arn) for arn in statement["Resource"]) == [
        f"arn:aws:ses:{region}:<Ref>:identity/{identity}" for identity in sorted([domain, sender])
    ]
